"""Exceptions raised by boogie_tasks, all under one base class."""


class BoogieTasksError(Exception):
    """Base class of every boogie_tasks exception."""


class TaskFailed(BoogieTasksError):
    """Raised inside a task to fail on purpose: the message is kept, no traceback."""


class TaskCanceled(BoogieTasksError):
    """Raised by ``progress`` inside a run whose record was cancelled or taken over."""


class InvalidTask(BoogieTasksError, TypeError):
    """A function or option that cannot become a task."""


class InvalidTaskArguments(BoogieTasksError, TypeError, ValueError):
    """Arguments refused at call time; nothing was written.

    Both a ``TypeError`` and a ``ValueError``, so either ``except`` catches it.
    """


class InvalidResult(BoogieTasksError, TypeError):
    """A task returned something that is not JSON."""


class InvalidState(BoogieTasksError, RuntimeError):
    """An action that the record's current status does not allow."""


class UnknownTask(BoogieTasksError, LookupError):
    """A record names a task that is not registered in this process."""


class ObjectDeleted(BoogieTasksError, LookupError):
    """The model instance a record was made for no longer exists."""


class WorkerLost(BoogieTasksError):
    """Kept in a record's history for an attempt whose worker stopped sending heartbeats."""


class MigrationsNotApplied(BoogieTasksError, RuntimeError):
    """boogie_tasks' tables are missing: ``migrate`` was not run on the records' database."""
