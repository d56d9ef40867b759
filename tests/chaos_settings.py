"""Settings of the chaos tests' workers and beats: a lost run shows up within seconds."""

from tests.settings import *  # noqa: F403

BOOGIE_TASKS_HEARTBEAT_INTERVAL = 0.5
BOOGIE_TASKS_STALE_AFTER = 3
BOOGIE_TASKS_REPUBLISH_AFTER = 2
