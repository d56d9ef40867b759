"""The Celery app of the benchmark project, configured from Django's settings."""

import os

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")

app = Celery("benchproj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect(weak=False)
def _count_completion(sender=None, state=None, **kwargs):
    # After the task and its result write (django-celery-results stores before
    # task_postrun), for every peer alike: one Redis round trip.
    from benchproj import completion

    completion.mark_done(getattr(sender, "name", ""), state)
