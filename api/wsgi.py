"""gunicorn target: `gunicorn api.wsgi:app`."""

import gc

from api import create_app

app = create_app()
# What is loaded by now (about 230,000 objects: the libraries, the models' metadata) lives as long as the process.
# Frozen, it is left out of the collector's full passes, each of which would otherwise walk all of it and stall a
# request for over 100 ms on a 2-core machine.
gc.freeze()
