"""The benchmark project: settings, Celery app, one model and the tasks of each peer."""

from benchproj.celery_app import app as celery_app

__all__ = ["celery_app"]
