"""Serve the demo shop's web page: a real Celery worker, then ``runserver`` on 127.0.0.1.

Usage, from any folder: ``.venv/bin/python examples/demo/run_web.py [--port 8000]``
(or ``make demo-web``), then open http://127.0.0.1:8000/. Each start is afresh: a
new database with three products, in ``var/demo/`` or ``$BOOGIE_DEMO_VAR``.
Ctrl-C stops the server and the worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

# Importing run_demo points DJANGO_SETTINGS_MODULE at the plain demo settings;
# the page needs the web settings, set next (the worker inherits them).
import run_demo

os.environ["DJANGO_SETTINGS_MODULE"] = "demo_project.web_settings"

HOST = "127.0.0.1"  # local only: the page has no login


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the port to serve on."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("BOOGIE_DEMO_PORT", 8000)))
    return parser.parse_args(argv)


def interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into Ctrl-C, so that the worker is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Prepare the database, start the worker, serve until interrupted; return the exit code."""
    args = parse(argv)
    from django.core.management import call_command

    from demo_project.worker import Worker

    var = run_demo.prepare()
    run_demo.create_products()
    worker = Worker(var / "worker.log")
    signal.signal(signal.SIGTERM, interrupt)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C (kill -INT) should work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"Database and broker in {var}; starting a celery worker ...", flush=True)
        worker.start()
        worker.wait_ready()
        print(f"Worker ready (pid {worker.process.pid}, log in {worker.log}).", flush=True)
        print(f"Open http://{HOST}:{args.port}/ in a browser; Ctrl-C stops.", flush=True)
        call_command("runserver", f"{HOST}:{args.port}", use_reloader=False)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # the worker did not start
        print(f"{exc}\n{worker.output()[-3000:]}", file=sys.stderr)
        return 1
    finally:
        code = worker.stop()
        print(f"Worker stopped (exit code {code}).", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
