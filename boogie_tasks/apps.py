"""App configuration: wiring and autodiscovery of ``tasks`` modules, no queries."""

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules
from django.utils.translation import gettext_lazy as _


class BoogieTasksConfig(AppConfig):
    """Import our Celery tasks and every installed app's ``tasks`` module."""

    name = "boogie_tasks"
    verbose_name = _("Tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Defines boogie_tasks.run as a shared task; the Celery app itself is
        # resolved only when a message is published.
        from django.db.models.signals import post_migrate

        from boogie_tasks import checks, runner  # noqa: F401
        from boogie_tasks.scheduling import ensure_dispatcher, quiet_ticks

        # The dispatcher's beat entry is made by migrate: ready() runs no query.
        post_migrate.connect(ensure_dispatcher, sender=self)
        quiet_ticks()
        autodiscover_modules("tasks")
