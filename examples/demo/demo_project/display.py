"""Show task records in the terminal: a live table of progress bars, and a final table."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

BAR_WIDTH = 24
COLORS = {"RUNNING": "33", "SUCCESSFUL": "32", "FAILED": "31", "CANCELED": "35"}


def short_name(task_name: str) -> str:
    """The function's name without its module path."""
    return task_name.rsplit(".", 1)[-1]


def bar(percent: float | None) -> str:
    """A text progress bar such as ``[#########...............]``."""
    filled = round(BAR_WIDTH * (percent or 0) / 100)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def percent_text(percent: float | None) -> str:
    """The percentage, right-aligned, or a dash without a total."""
    return "   -" if percent is None else f"{percent:3.0f}%"


def eta_text(record: Any) -> str:
    """Seconds left while running, as the record estimates them, or blanks."""
    eta = record.eta_seconds if record.status == "RUNNING" else None
    return "     " if eta is None else f"{eta:4.1f}s"


def duration(record: Any) -> str:
    """Seconds from the start of the last attempt to the end, or empty."""
    if not (record.started_at and record.finished_at):
        return ""
    return f"{(record.finished_at - record.started_at).total_seconds():.1f} s"


def outcome(record: Any, width: int = 60) -> str:
    """The error, or the result as JSON once successful, cut to ``width`` characters."""
    if record.error:
        text = record.error
    elif record.status == "SUCCESSFUL":
        text = json.dumps(record.result)
    else:
        return ""
    return text if len(text) <= width else text[: width - 3] + "..."


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns with a rule under the header."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


class LiveView:
    """Redraws a table in place on a terminal; prints a line per change otherwise."""

    def __init__(self, names: dict[str, str], stream: TextIO = sys.stdout) -> None:
        self.names = names  # object_id -> what to call the object
        self.stream = stream
        self.tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        self.color = self.tty and "NO_COLOR" not in os.environ
        self.name_width = max(map(len, names.values()), default=8)
        self.drawn = 0
        self.seen: dict[Any, tuple[str, int]] = {}

    def update(self, records: Sequence[Any], elapsed: float) -> None:
        """Show the records as they are now."""
        if self.tty:
            self.redraw(records, elapsed)
        else:
            self.print_changes(records, elapsed)

    def line(self, record: Any, width: int | None = None) -> str:
        """One record: task, object, bar, percent, status and message."""
        percent = record.progress_percent
        name = self.names.get(record.object_id, record.object_id)
        head = (
            f"{short_name(record.task_name):<18}  {name:<{self.name_width}}  "
            f"{bar(percent)}  {percent_text(percent)}  {eta_text(record)}  "
        )
        text = f"{head}{record.status:<10}  {record.error or record.progress_message}"
        # Cut to the terminal's width: a wrapped line would spoil the redraw.
        text = text[:width].rstrip()
        code = COLORS.get(record.status)
        if not (self.color and code):
            return text
        status = text[len(head) : len(head) + 10]
        return f"{head}\x1b[{code}m{status}\x1b[0m{text[len(head) + 10 :]}"

    def redraw(self, records: Sequence[Any], elapsed: float) -> None:
        """Draw the table again over the previous one."""
        width = max(shutil.get_terminal_size().columns - 1, 20)
        done = sum(record.is_finished for record in records)
        lines = [f"{elapsed:5.1f} s  {done} of {len(records)} finished"[:width]]
        lines += [self.line(record, width) for record in records]
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)

    def print_changes(self, records: Sequence[Any], elapsed: float) -> None:
        """Print a line for each record whose status or quarter of progress changed."""
        for record in records:
            key = (record.status, int(record.progress_percent or 0) // 25)
            if self.seen.get(record.pk) != key:
                self.seen[record.pk] = key
                print(f"{elapsed:5.1f} s  {self.line(record)}", file=self.stream, flush=True)
