"""Progress bars (rich) for every long step, in one place so they look and behave alike.

Each factory returns a rich `Progress`; `enabled=False` (the CLI's --quiet, or a non-main process)
makes it print nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True, soft_wrap=True)  # progress and status messages; results go to stdout (the CLI's `out`)


def download_bar(enabled: bool) -> Progress:
    """Bytes received, speed and ETA of a download."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console, disable=not enabled, transient=True)


def counter(enabled: bool, what: str = "items") -> Progress:
    """A spinner and a count, for work whose total is unknown in advance (members of a compressed tar)."""
    return Progress(SpinnerColumn(), TextColumn(f"{{task.description}}: {{task.completed}} {what}"),
                    TimeElapsedColumn(), console=console, disable=not enabled, transient=True)


def task_bar(enabled: bool, unit: str = "", to: Console | None = None, transient: bool = True) -> Progress:
    """Description, bar, done/total (in `unit`), elapsed time and ETA; on `to` (default: the status console)."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=to or console, disable=not enabled, transient=transient)


@contextmanager
def phases(enabled: bool, to: Console | None = None) -> Iterator[Callable[[str, int], Callable[..., None]] | None]:
    """Yields `start(task, total) -> advance callback` for work done in phases (None when disabled)."""
    if not enabled:
        yield None
        return
    with task_bar(True, to=to, transient=False) as bars:
        def start(task: str, total: int):
            handle = bars.add_task(task, total=total)
            return lambda *_: bars.advance(handle)

        yield start


def train_bar(enabled: bool) -> Progress:
    """Steps, epoch, loss, throughput and memorization of a training run."""
    return Progress(
        TextColumn("step"), MofNCompleteColumn(), BarColumn(bar_width=12),
        TextColumn("ep {task.fields[epoch]:.1f} loss {task.fields[loss]:.4f} {task.fields[tps]:,.0f} tok/s "
                   "mem {task.fields[mem]:.2f}%"),
        TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled, transient=False)

