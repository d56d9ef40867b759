"""The status vocabulary shared by the model, the JSON API and the admin."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class TaskStatus(models.TextChoices):
    """The life of a record: Django's four ``django.tasks`` states and three of ours."""

    PAUSED = "PAUSED", _("Paused")
    SCHEDULED = "SCHEDULED", _("Scheduled")
    READY = "READY", _("Ready")
    RUNNING = "RUNNING", _("Running")
    SUCCESSFUL = "SUCCESSFUL", _("Successful")
    FAILED = "FAILED", _("Failed")
    CANCELED = "CANCELED", _("Canceled")

    @classmethod
    def final(cls) -> frozenset["TaskStatus"]:
        """Return the states that are never left once reached."""
        return _FINAL

    @classmethod
    def waiting(cls) -> frozenset["TaskStatus"]:
        """Return the states of a record that has not started yet."""
        return _WAITING


_FINAL = frozenset({TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELED})
_WAITING = frozenset({TaskStatus.PAUSED, TaskStatus.SCHEDULED, TaskStatus.READY})
