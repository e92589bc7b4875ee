"""Progress bars for long commands, drawn by rich on stderr when it is a terminal.

Anywhere else (a pipe, a file, a cron log, a test) :func:`progress` draws nothing
and costs nothing: logs keep only the ``[monitoring]`` lines.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, Protocol


class Update(Protocol):
    """``update(completed=..., total=..., description=...)``: move the bar."""

    def __call__(
        self,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
    ) -> None: ...


def _nothing(**_: Any) -> None:
    return None


def on_terminal() -> bool:
    """Whether stderr is a terminal (someone watching), not a pipe or a log file."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextlib.contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Update]:
    """A bar for the ``with`` block; ``total`` None draws a pulsing bar (steps of unknown
    length). Lines printed on stderr meanwhile appear above the bar, which disappears
    at the end."""
    if not on_terminal():
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if total is not None:
        columns.append(MofNCompleteColumn())
    columns.append(TimeElapsedColumn())
    console = Console(file=sys.stderr)
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def update(
            *,
            completed: float | None = None,
            total: float | None = None,
            description: str | None = None,
        ) -> None:
            bar.update(task, completed=completed, total=total, description=description)
            bar.refresh()

        yield update
