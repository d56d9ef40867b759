"""Who may see or cancel a record through the HTTP views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from django.utils.module_loading import import_string

from boogie_tasks.conf import settings

if TYPE_CHECKING:
    from boogie_tasks.models import TaskRecord

Action = Literal["view", "cancel"]

__all__ = ["Action", "default_permission", "has_permission"]

# Model permissions that allow each action, for users who are neither owner nor
# staff. As in the admin, who may change records may also see them.
_CODENAMES: dict[str, tuple[str, ...]] = {
    "view": ("view_taskrecord", "change_taskrecord"),
    "cancel": ("change_taskrecord",),
}


def default_permission(user: Any, record: TaskRecord, action: Action) -> bool:
    """The rule of the status endpoint, the widget and the admin's actions alike.

    A record is seen by its owner, by staff and by users with
    ``boogie_tasks.view_taskrecord`` (or the change permission, as in the
    admin); it is cancelled by its owner and by users with
    ``boogie_tasks.change_taskrecord`` (superusers have every permission).
    Anonymous and inactive users get nothing.
    """
    if action not in _CODENAMES:
        raise ValueError(f"unknown action {action!r}: expected 'view' or 'cancel'")
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if record.owner_id is not None and record.owner_id == user.pk:
        return True
    if action == "view" and user.is_staff:
        return True  # staff see every record; cancelling takes the change permission
    return any(user.has_perm(f"boogie_tasks.{codename}") for codename in _CODENAMES[action])


def has_permission(user: Any, record: TaskRecord, action: Action) -> bool:
    """Apply ``BOOGIE_TASKS_PERMISSION`` when set, else :func:`default_permission`."""
    path = settings.PERMISSION
    if not path:
        return default_permission(user, record, action)
    rule = import_string(path) if isinstance(path, str) else path
    return bool(rule(user, record, action))
