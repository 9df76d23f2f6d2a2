"""Progress on a console that is not a terminal (a log file, nohup, CI) still says how far a step is."""

import io
import time

from rich.console import Console

from laam import progress


def _bar(monkeypatch, terminal: bool):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    out = io.StringIO()
    bars = progress.task_bar(True, unit="files", to=Console(file=out, force_terminal=terminal, width=200))
    return bars, out


def test_a_log_gets_plain_lines_with_counts_and_eta(monkeypatch):
    bars, out = _bar(monkeypatch, terminal=False)
    with bars:
        task = bars.add_task("regenerating", total=561)
        bars.advance(task, 40)
        time.sleep(0.01)
        bars.get_renderable()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("regenerating: ")]
    assert lines, out.getvalue()
    assert "40/561 (7.1%)" in lines[-1] and "elapsed" in lines[-1] and "ETA " in lines[-1]
    assert "\x1b[" not in out.getvalue()  # no terminal control codes in a log


def test_a_terminal_gets_the_bar_not_the_lines(monkeypatch):
    bars, out = _bar(monkeypatch, terminal=True)
    with bars:
        task = bars.add_task("regenerating", total=561)
        bars.advance(task, 40)
        bars.get_renderable()
    assert "regenerating: 40/561" not in out.getvalue()


def test_plain_line_shows_a_task_s_fields():
    bars = progress.train_bar(True)
    task = bars.add_task("training", total=1000, epoch=1.5, loss=0.25, tps=4395.2, mem=97.25)
    bars.start_task(task)
    bars.advance(task, 10)
    line = progress.plain_line(bars.tasks[0])
    assert line.startswith("training: 10/1,000 (1.0%)") and "loss 0.25" in line and "tps 4395" in line


def test_plain_line_never_rounds_an_unfinished_step_up_to_100():
    bars = progress.task_bar(True)
    task = bars.add_task("regenerating", total=5600)
    bars.start_task(task)
    bars.advance(task, 5599)
    assert progress.plain_line(bars.tasks[0]).startswith("regenerating: 5,599/5,600 (99.9%)")
