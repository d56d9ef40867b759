"""The demo's Django project; importing it loads the Celery app, as Celery's docs advise."""

from demo_project.celery import app as celery_app

__all__ = ["celery_app"]
