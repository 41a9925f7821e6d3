"""The Celery worker: takes job ids off the queue and scores them."""
