import os

# Every Guardian process (web, workers, commands) runs as one of several processes on its cores:
# BLAS threads on top of them only contend. Set before anything imports numpy; an explicit
# setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .celery import app as celery_app

__all__ = ["celery_app"]
