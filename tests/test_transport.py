"""The filesystem transport: messages reach a consumer whole, never half-written."""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from boogie_tasks import transport

TRANSPORT = "boogie_tasks.transport:FilesystemTransport"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "control").mkdir()
    return tmp_path


def _connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
    }
    return Connection("filesystem://", transport=TRANSPORT, transport_options=options)


def test_messages_go_through_and_leave_nothing_behind(folder):
    with _connection(folder) as connection:
        queue = connection.SimpleQueue("jobs")
        for number in range(3):
            queue.put({"n": number})
        received = []
        for _ in range(3):
            message = queue.get(timeout=1)
            received.append(message.payload["n"])
            message.ack()
        queue.close()
    # Oldest first by the millisecond; within one millisecond in any order, as in kombu.
    assert sorted(received) == [0, 1, 2]
    assert [p.name for p in folder.iterdir() if p.is_file()] == []


def test_a_consumer_never_sees_a_message_before_it_is_whole(folder, monkeypatch):
    """At the last moment before the rename, the message is invisible to a consumer."""
    seen_mid_write = []
    real_replace = os.replace

    with _connection(folder) as connection:
        channel = connection.default_channel
        assert isinstance(channel, transport.FilesystemChannel)

        def replace(source, target):
            # The payload is fully written here, but not yet under its final name.
            assert Path(source).read_bytes().startswith(b"{")
            try:
                seen_mid_write.append(channel._get("jobs"))
            except Empty:
                seen_mid_write.append(None)
            real_replace(source, target)

        monkeypatch.setattr(transport.os, "replace", replace)
        channel._put("jobs", {"body": "x" * 10_000})
        monkeypatch.undo()
        assert seen_mid_write == [None]
        assert channel._get("jobs") == {"body": "x" * 10_000}


def test_a_failed_write_raises_a_channel_error_and_leaves_no_file(folder, monkeypatch):
    from kombu.exceptions import ChannelError

    def replace(source, target):
        raise OSError(28, "No space left on device")

    with _connection(folder) as connection:
        channel = connection.default_channel
        monkeypatch.setattr(transport.os, "replace", replace)
        with pytest.raises(ChannelError, match="Cannot add file"):
            channel._put("jobs", {"body": 1})
    assert [p.name for p in folder.iterdir() if p.is_file()] == []
