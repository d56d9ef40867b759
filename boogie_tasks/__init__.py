"""Tracked background tasks for Django, run by Celery."""

from boogie_tasks.exceptions import BoogieTasksError, TaskCanceled, TaskFailed
from boogie_tasks.progress import progress
from boogie_tasks.status import TaskStatus
from boogie_tasks.task import Task, task

__all__ = [
    "BoogieTasksError",
    "Task",
    "TaskCanceled",
    "TaskFailed",
    "TaskStatus",
    "progress",
    "task",
]

__version__ = "0.1.0"
