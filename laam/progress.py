"""Progress bars (rich) for every long step, in one place so they look and behave alike.

Each factory returns a rich `Progress`; `enabled=False` (the CLI's --quiet, or a non-main process)
makes it print nothing. Where stderr is not a terminal (a log file, nohup, CI) rich draws no bars until the end,
so the bars also print a plain line per running task every LOG_EVERY seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    RenderableType,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from laam.figures import pct

console = Console(stderr=True, soft_wrap=True)  # progress and status messages; results go to stdout (the CLI's `out`)
LOG_EVERY = 60.0  # seconds between plain progress lines where the console is not a terminal


def _clock(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=int(seconds)))


def plain_line(task: Task) -> str:
    """One task as a line for a log: done/total, elapsed, ETA and its fields (loss, tokens/s...)."""
    # the share done rounded down (laam.figures): a step one item short never reads 100%
    done = f"{task.completed:,.0f}" + (f"/{task.total:,.0f} ({pct(task.percentage, 1)})" if task.total else "")
    fields = "".join(f", {name} {value:.4g}" if isinstance(value, float) else f", {name} {value}"
                     for name, value in task.fields.items())
    eta = f", ETA {_clock(task.time_remaining)}" if task.total else ""
    return f"{task.description}: {done}, {_clock(task.elapsed)} elapsed{eta}{fields}"


class LoggedProgress(Progress):
    """rich's Progress that, on a console which is not a terminal, prints `plain_line` for each running task
    every LOG_EVERY seconds. rich renders live bars only on terminals (elsewhere it prints the final state at
    most), so a run logged to a file would otherwise show nothing for hours; this is hooked into rendering,
    which rich's refresh thread calls ten times a second whatever the console."""

    def __init__(self, *columns, **kwargs):
        self._logged_at = None  # rich renders once while constructing, before `self.console` exists
        super().__init__(*columns, **kwargs)
        self._logged_at = time.monotonic()

    def get_renderable(self) -> RenderableType:
        now = time.monotonic()
        if self._logged_at is not None and not self.console.is_terminal and now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            for task in self.tasks:
                if task.started and not task.finished:
                    self.console.print(plain_line(task), markup=False, highlight=False)
        return super().get_renderable()


def download_bar(enabled: bool) -> Progress:
    """Bytes received, speed and ETA of a download."""
    return LoggedProgress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                          TransferSpeedColumn(), TimeRemainingColumn(), console=console, disable=not enabled,
                          transient=True)


def counter(enabled: bool, what: str = "items") -> Progress:
    """A spinner and a count, for work whose total is unknown in advance (members of a compressed tar)."""
    return LoggedProgress(SpinnerColumn(), TextColumn(f"{{task.description}}: {{task.completed}} {what}"),
                          TimeElapsedColumn(), console=console, disable=not enabled, transient=True)


def task_bar(enabled: bool, unit: str = "", to: Console | None = None, transient: bool = True) -> Progress:
    """Description, bar, done/total (in `unit`), elapsed time and ETA; on `to` (default: the status console)."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return LoggedProgress(*columns, console=to or console, disable=not enabled, transient=transient)


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
    return LoggedProgress(
        TextColumn("step"), MofNCompleteColumn(), BarColumn(bar_width=12),
        TextColumn("ep {task.fields[epoch]:.1f} loss {task.fields[loss]:.4f} {task.fields[tps]:,.0f} tok/s "
                   "mem {task.fields[mem]:.2f}%"),
        TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled, transient=False)

