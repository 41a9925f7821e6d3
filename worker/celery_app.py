"""Worker entry point: `celery -A worker.celery_app worker` (or `cytoscore worker`)."""

from shared.queue import make_celery
from shared.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks", "worker.lifecycle"]
