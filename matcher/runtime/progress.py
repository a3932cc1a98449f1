"""Progress of long work: named stages, their elapsed time, and how far Spark's running work is.

The pipeline wraps its stages; a stage may hold steps, each lasting until the next step
or the end of its stage (one line each, no re-indented block)::

    with stage("train"):                    # "train"
        step("u estimation")                # "train › u estimation"
        ...
        step("EM")                          # closes "u estimation"
    with stage("write matches", total=n):   # advance(k) as rows are done, when counted in the driver
        ...

While a stage is open a daemon thread polls Spark's status tracker for the tasks of the
running Spark stages. On a terminal (stderr a TTY) a ``rich`` display draws one line per open
stage: spinner, name, a bar (the rows or Spark tasks done of a known total), elapsed time;
each finished stage leaves one line with its time. Elsewhere (Glue, CI, a pipe) the
``matcher.progress`` logger writes plain INFO lines, at most one per :data:`HEARTBEAT_S`
per stage between its start and its end::

    stage train › u estimation started
    stage train › u estimation: 12/40 Spark tasks, 31 s
    stage train › u estimation done in 45.2 s

Only stage names and counts are shown, never record values. Each stage is also the Spark
job description of the jobs it runs (Spark UI). ``MATCHER_PROGRESS`` chooses the display:
``auto`` (default: bars on a terminal, lines elsewhere), ``bar``, ``lines`` or ``off``
(``matcher --no-progress`` sets ``off``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

log = logging.getLogger("matcher.progress")

SEPARATOR = " › "
HEARTBEAT_S = 10.0  # plain lines: at most one heartbeat per stage this often
POLL_S = 0.5  # how often the Spark status tracker is read
MODES = ("auto", "bar", "lines", "off")

Tasks = tuple[int, int]  # Spark tasks (done, total) of the running Spark stages


@dataclass(eq=False)
class Stage:
    """One open stage: its path (``train › u estimation``), what it counts, when it began."""

    path: str
    started: float
    total: int | None = None
    unit: str = "rows"
    is_step: bool = False
    done: int = 0
    last_line: float = 0.0
    depth: int = 0
    bar: int | None = field(default=None, repr=False)  # its line in the rich display


def detail(stage: Stage, tasks: Tasks | None) -> str:
    """What is done: ``300/1,000 rows`` and/or ``12/40 Spark tasks`` (empty when nothing is known)."""
    parts = []
    if stage.total is not None:
        parts.append(f"{stage.done:,}/{stage.total:,} {stage.unit}")
    elif stage.done:
        parts.append(f"{stage.done:,} {stage.unit}")
    if tasks is not None:
        parts.append(f"{tasks[0]:,}/{tasks[1]:,} Spark tasks")
    return ", ".join(parts)


class Display(Protocol):
    def started(self, stage: Stage) -> None: ...
    def update(self, stage: Stage, tasks: Tasks | None, now: float) -> None: ...
    def finished(self, stage: Stage, seconds: float, failed: bool) -> None: ...
    def close(self) -> None: ...


class Silent:
    """``MATCHER_PROGRESS=off``: stages are timed and named in Spark, nothing is shown."""

    def started(self, stage: Stage) -> None: ...
    def update(self, stage: Stage, tasks: Tasks | None, now: float) -> None: ...
    def finished(self, stage: Stage, seconds: float, failed: bool) -> None: ...
    def close(self) -> None: ...


class Lines(Silent):
    """Plain log lines: start, a heartbeat at most every :data:`HEARTBEAT_S`, end."""

    def started(self, stage: Stage) -> None:
        log.info("stage %s started", stage.path)

    def update(self, stage: Stage, tasks: Tasks | None, now: float) -> None:
        if now - stage.last_line < HEARTBEAT_S:
            return
        stage.last_line = now
        done = detail(stage, tasks)
        log.info("stage %s: %s%.0f s", stage.path, f"{done}, " if done else "", now - stage.started)

    def finished(self, stage: Stage, seconds: float, failed: bool) -> None:
        counted = f" ({detail(stage, None)})" if stage.done else ""
        log.info("stage %s %s %.1f s%s", stage.path, "failed after" if failed else "done in", seconds, counted)


class Bars:
    """A ``rich`` display on ``console``: one line per open stage, a line per finished one."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(), console=console, transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self.progress.start()

    def started(self, stage: Stage) -> None:
        name = stage.path.rsplit(SEPARATOR, 1)[-1]
        stage.bar = self.progress.add_task("  " * stage.depth + name, total=stage.total, detail="")

    def update(self, stage: Stage, tasks: Tasks | None, now: float) -> None:
        if stage.bar is None:
            return
        if stage.total is not None:
            total, completed = stage.total, stage.done
        elif tasks is not None:
            completed, total = tasks
        else:
            total, completed = None, 0
        self.progress.update(stage.bar, total=total, completed=completed, detail=detail(stage, tasks))

    def finished(self, stage: Stage, seconds: float, failed: bool) -> None:
        if stage.bar is not None:
            self.progress.remove_task(stage.bar)
        mark = "[red]✗[/]" if failed else "[green]✓[/]"
        self.console.print(f"{mark} {escape(stage.path)} [dim]{seconds:.1f} s[/]", highlight=False)

    def close(self) -> None:
        self.progress.stop()


_console: Console | None = None


def console() -> Console:
    """The one console of the process (stderr): progress bars and log lines share it."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


_chosen: str | None = None  # set_mode's choice, over MATCHER_PROGRESS


def set_mode(chosen: str | None) -> None:
    """Choose the display (one of :data:`MODES`) for this process; None: ``MATCHER_PROGRESS``'s."""
    global _chosen
    _chosen = chosen


def mode() -> str:
    """The display (auto, bar, lines, off; ``MATCHER_PROGRESS`` unless :func:`set_mode` chose),
    resolved: ``auto`` is ``bar`` on a terminal, else ``lines``."""
    chosen = (_chosen or os.environ.get("MATCHER_PROGRESS", "auto")).strip().lower()
    if chosen not in MODES:
        chosen = "auto"
    if chosen == "auto":
        return "bar" if _is_terminal() else "lines"
    return chosen


def _is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def default_display() -> Display:
    chosen = mode()
    if chosen == "bar":
        return Bars(console())
    return Lines() if chosen == "lines" else Silent()


def _spark_context():
    from pyspark import SparkContext

    return SparkContext._active_spark_context


def spark_tasks() -> Tasks | None:
    """Tasks done and in all of the Spark stages running now, or None when none runs."""
    sc = _spark_context()
    if sc is None:
        return None
    tracker = sc.statusTracker()
    infos = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
    infos = [i for i in infos if i is not None]
    if not infos:
        return None
    return sum(i.numCompletedTasks for i in infos), sum(i.numTasks for i in infos)


def _describe_spark_jobs(description: str | None) -> None:
    sc = _spark_context()
    if sc is not None:
        sc.setJobDescription(description)


class Tracker:
    """The open stages of this process, their display, and the thread that polls Spark."""

    def __init__(
        self, display: Callable[[], Display] = default_display, *, clock: Callable[[], float] = time.monotonic,
        tasks: Callable[[], Tasks | None] = spark_tasks, poll_s: float | None = POLL_S,
        describe: Callable[[str | None], None] = _describe_spark_jobs,
    ):
        self._new_display, self._clock, self._tasks, self._poll_s, self._describe = display, clock, tasks, poll_s, describe
        self._lock = threading.RLock()
        self._open: list[Stage] = []
        self._display: Display = Silent()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.timings: dict[str, float] = {}  # seconds per finished stage path, this process

    def open(self, name: str, total: int | None, unit: str, is_step: bool) -> Stage | None:
        """Open a stage under the innermost open one (a step: None when there is none)."""
        with self._lock:
            self._close_steps()
            if is_step and not self._open:
                return None
            if not self._open:
                self._start()
            parent = self._open[-1] if self._open else None
            path = f"{parent.path}{SEPARATOR}{name}" if parent else name
            now = self._clock()
            stage = Stage(path, now, total, unit, is_step, last_line=now, depth=len(self._open))
            self._open.append(stage)
            self._display.started(stage)
        self._describe(f"matcher: {path}")
        return stage

    def close(self, stage: Stage, failed: bool = False) -> None:
        """Close ``stage`` and whatever is still open inside it."""
        poller = None
        with self._lock:
            while stage in self._open:
                self._finish(self._open.pop(), failed)
            parent = self._open[-1].path if self._open else None
            if not self._open:
                poller = self._end()
        if poller is not None and poller is not threading.current_thread():
            poller.join()  # outside the lock: a poll may be waiting for it
        self._describe(f"matcher: {parent}" if parent else None)

    def advance(self, n: int) -> None:
        with self._lock:
            if self._open:
                self._open[-1].done += n

    def tick(self) -> None:
        """Show the innermost stage's elapsed time and the running Spark tasks."""
        tasks = self._tasks()
        with self._lock:
            if self._open:
                self._display.update(self._open[-1], tasks, self._clock())

    def _close_steps(self) -> None:
        while self._open and self._open[-1].is_step:
            self._finish(self._open.pop(), False)

    def _finish(self, stage: Stage, failed: bool) -> None:
        seconds = self._clock() - stage.started
        self.timings[stage.path] = round(seconds, 3)
        self._display.finished(stage, seconds, failed)

    def _start(self) -> None:
        self._display = self._new_display()
        if self._poll_s is None:
            return
        self._stop = threading.Event()  # its own: an old poll thread still ending keeps the set one
        self._thread = threading.Thread(target=self._poll, name="matcher-progress", daemon=True)
        self._thread.start()

    def _end(self) -> threading.Thread | None:
        """Close the display and tell the poll thread to stop; returns it, to join."""
        poller, self._thread = self._thread, None
        self._stop.set()
        self._display.close()
        self._display = Silent()
        return poller

    def _poll(self) -> None:
        stop = self._stop
        while not stop.wait(self._poll_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - progress must never fail a run (e.g. Spark stopping)
                log.debug("progress poll failed", exc_info=True)


tracker = Tracker()


@contextmanager
def stage(name: str, *, total: int | None = None, unit: str = "rows") -> Iterator[Stage]:
    """Show the work inside as stage ``name`` (nested under the open stage: ``train › u estimation``)."""
    opened = tracker.open(name, total, unit, is_step=False)
    try:
        yield opened
    except BaseException:
        tracker.close(opened, failed=True)
        raise
    tracker.close(opened)


def step(name: str, *, total: int | None = None, unit: str = "rows") -> None:
    """Begin step ``name`` of the open stage; it ends at the next step or stage, or with its stage.
    Without an open stage (a notebook calling a stage's function) nothing happens."""
    tracker.open(name, total, unit, is_step=True)


def advance(n: int = 1) -> None:
    """Count ``n`` more rows (or the stage's unit) done in the innermost open stage."""
    tracker.advance(n)
