"""The demo project runs end to end on its embedded default (SQLite, filesystem broker)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.worker


def test_demo_runs_and_shows_the_finished_records(tmp_path):
    # The test settings must not leak into the demo; its files go to tmp_path.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["BOOGIE_DEMO_VAR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo" / "run_demo.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    rows = done.stdout.splitlines()
    assert any(
        re.search(r"^summarize_reviews\s+Teapot\s+SUCCESSFUL\s+1\s.*\"average\": 4\.2", row)
        for row in rows
    ), done.stdout
    assert any(
        re.search(r"^reprice\s+Toaster\s+FAILED\s+1\s.*Toaster is discontinued", row)
        for row in rows
    ), done.stdout
    assert "price_tag.call(Teapot, currency='EUR'): 'Teapot: 25.20 EUR'" in done.stdout
    assert "All went as expected" in done.stdout
    assert (tmp_path / "var" / "demo.sqlite3").exists()
