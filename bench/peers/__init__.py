"""MLflow and BentoML timed on cytoscore's model and files: `make bench-peers` (see run.py)."""
