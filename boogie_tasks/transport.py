"""Kombu's ``filesystem://`` transport, with messages that are never read half-written.

Kombu's own transport creates a message file and then writes into it; a
consumer polling the folder at that moment can take the empty file, fail to
decode it, and the worker stops with "Unrecoverable error: JSONDecodeError"
(celery/kombu#1551). Here each message is written under a name no consumer
looks at and then renamed into place, which is atomic on one filesystem.

Use it for development and tests without a broker server::

    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "boogie_tasks.transport:FilesystemTransport"
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["FilesystemChannel", "FilesystemTransport"]


class FilesystemChannel(filesystem.Channel):
    """A filesystem channel whose messages appear in the folder whole, or not at all."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu's consumer looks for: "<ms>_<uuid>.<queue>.msg", oldest first.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: "<anything>.tmp" never matches ".<queue>.msg" in kombu's filter.
        partial = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class FilesystemTransport(filesystem.Transport):
    """``filesystem://`` with atomic writes; see the module's documentation."""

    Channel = FilesystemChannel
