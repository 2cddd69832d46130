"""Output a person can read: one line per step on the terminal, everything in a log file.

A command's terminal output is its results, not the chatter of the libraries under it.
:func:`setup` (called once per command by the app's callback) sends every log record,
warning and captured tool output, full-length and redacted, to
``<state_dir>/logs/<command>-<timestamp>.log`` (see ``shipway.cli.logs``); the terminal
gets Shipway's own messages, first-party warnings and every error. ``--verbose`` shows
the rest on the terminal too.

The pieces a command uses:

* ``with step("train <usecase>") as s: ...; s.ok("v3, gate passed")`` prints one line
  with a mark, the result and the elapsed time (``✗`` and the error's type when the
  block raises); steps nest, and a live spinner shows what runs meanwhile (terminals only).
* ``for row in progress(rows, "replay"):`` draws a progress bar for long work.
* ``with captured("feast"):`` sends what code prints to the log (terminal: --verbose).
* ``say(markup)``: a line for the user (and the log); ``detail(text)``: a line for the
  log file (terminal: --verbose); ``logs.to_log(text)``: the log file only.
* ``with pipeline_steps():`` shows a kfp.local run as one line per component.
* ``announce_log()`` prints where the log file is.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.table import Table
from rich.text import Text

from shipway.cli import logs
from shipway.cli.logs import log_path, to_log

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


@dataclass
class _State:
    verbose: bool = False
    announced: bool = False
    steps: list[Step] = field(default_factory=list)
    live: Progress | None = None


_state = _State()


def setup(command: str, *, verbose: bool, log_dir: Path | None) -> Path | None:
    """Prepare one command's output: the log file and terminal routing (``logs``), and
    the consoles pinned to the streams of this moment, so code that redirects
    ``sys.stdout`` later (the kfp.local capture) cannot swallow the step lines."""
    _state.verbose, _state.announced, _state.steps = verbose, False, []
    console.file, err_console.file = sys.stdout, sys.stderr
    return logs.configure(command, verbose=verbose, log_dir=log_dir, terminal=err_console)


def teardown() -> None:
    """Close the log file and unpin the consoles (the next command, or a test, starts
    from its own streams)."""
    logs.close()
    console.file = None  # type: ignore[assignment]  # rich: None means "sys.stdout, live"
    err_console.file = None  # type: ignore[assignment]


def verbose() -> bool:
    """Whether the user asked for everything on the terminal (``--verbose``)."""
    return _state.verbose


def announce_log() -> None:
    """Print, once per command, where the full log goes."""
    path = log_path()
    if path is not None and not _state.announced:
        _state.announced = True
        console.print(f"[dim]log: {escape(_display(path))}[/]", highlight=False)


def _display(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def say(text: str, source: str = "say") -> None:
    """A line of rich markup for the user, and the same words in the log file.

    Word-wrapped on a terminal; one line, however long, when the output is a pipe or a
    file (rich would otherwise cut it at 80 columns there)."""
    console.print(text, highlight=False, soft_wrap=not console.is_terminal)
    to_log(Text.from_markup(text).plain.strip(), source)


def detail(text: str, source: str = "shipway") -> None:
    """A line for the log file only (and the terminal with --verbose)."""
    to_log(text, source)
    if _state.verbose:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to :func:`detail`."""

    def __init__(self, source: str) -> None:
        self.source, self._partial = source, ""

    def write(self, s: str) -> int:
        *done, self._partial = (self._partial + s).split("\n")
        for line in done:
            detail(line, self.source)
        return len(s)

    def close(self) -> None:
        if self._partial:
            detail(self._partial, self.source)
            self._partial = ""
        super().close()


@contextlib.contextmanager
def captured(source: str) -> Iterator[None]:
    """Send what Python code prints inside the block (stdout and stderr) to the log
    file, line by line, e.g. a library's ``print`` progress. Child processes write to
    the file descriptors directly: capture their output with ``subprocess`` instead."""
    sink = _Lines(source)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        sink.close()


# ---------------------------------------------------------------- steps and progress
MARKS = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}


def elapsed_text(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m 05s``, ``1h 02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


@dataclass
class Step:
    """One unit of work on the terminal; set its outcome with :meth:`ok`, :meth:`warn`
    or :meth:`fail` (a step that raises fails with the exception's type)."""

    title: str
    depth: int
    started: float = field(default_factory=time.monotonic)
    state: str = "ok"
    result: str = ""
    total: int | None = None
    done: int = 0
    has_children: bool = False
    task: Any = None

    def ok(self, result: str = "") -> None:
        self.state, self.result = "ok", result

    def warn(self, result: str) -> None:
        self.state, self.result = "warn", result

    def fail(self, result: str) -> None:
        self.state, self.result = "fail", result

    def set_total(self, total: int) -> None:
        """Show a bar of ``total`` parts (e.g. a pipeline's components)."""
        self.total = total
        if _state.live is not None and self.task is not None:
            _state.live.update(self.task, total=total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if _state.live is not None and self.task is not None:
            _state.live.update(self.task, completed=self.done)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        """The step's terminal line (rich markup; title and result escaped)."""
        result = f": {escape(self.result)}" if self.result else ""
        return (
            f"{'  ' * self.depth}{MARKS[self.state]} {escape(self.title)}{result} "
            f"[dim]({elapsed_text(self.seconds)})[/]"
        )


class _BarIfCounted(ProgressColumn):
    """A bar and ``done/total`` for counted work; nothing for a step without parts."""

    def __init__(self) -> None:
        super().__init__()
        self.bar = BarColumn(bar_width=24)

    def render(self, task: Task) -> RenderableType:
        if task.total is None:
            return Text("")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self.bar.render(task), Text(f"{int(task.completed)}/{int(task.total)}"))
        return grid


class _Elapsed(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(elapsed_text(task.elapsed or 0.0), style="dim")


def _live() -> Progress | None:
    """The one live display of spinners and bars (terminals only; one at a time)."""
    if _state.live is None and console.is_terminal:
        _state.live = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            _BarIfCounted(),
            _Elapsed(),
            console=console,
            transient=True,
        )
        _state.live.start()
    return _state.live


def _stop_live_if_idle() -> None:
    live = _state.live
    if live is not None and not _state.steps and not live.tasks:
        live.stop()
        _state.live = None


def begin(title: str, total: int | None = None) -> Step:
    """Start a step (prefer :func:`step`; this is for work reported by callbacks)."""
    parent = _state.steps[-1] if _state.steps else None
    if parent is not None and not parent.has_children:
        parent.has_children = True  # its closing line comes after theirs: title it now
        say(f"{'  ' * parent.depth}[bold]{escape(parent.title)}[/]", "step")
    s = Step(title, depth=len(_state.steps), total=total)
    live = _live()
    if live is not None:
        s.task = live.add_task(f"{'  ' * s.depth}{escape(title)}", total=total)
    _state.steps.append(s)
    return s


def end(s: Step) -> None:
    """Finish a step: remove its spinner, print its line, advance its parent."""
    if s in _state.steps:
        _state.steps.remove(s)
    if _state.live is not None and s.task is not None:
        _state.live.remove_task(s.task)
    say(s.line(), "step")
    if _state.steps and _state.steps[-1].total is not None:
        _state.steps[-1].advance()
    _stop_live_if_idle()


@contextlib.contextmanager
def step(title: str, total: int | None = None) -> Iterator[Step]:
    """One line for the work inside the block: ``✓ title: result (elapsed)``.

    An exception marks the step ``✗`` with the exception's type and propagates: whoever
    handles it says what went wrong (the CLI's error line), so it is not said twice.
    """
    s = begin(title, total)
    try:
        yield s
    except BaseException as exc:
        if s.state != "fail":
            s.fail(type(exc).__name__)
        raise
    finally:
        end(s)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar under the running steps (terminals only;
    elsewhere it is the plain iteration)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    live = _live()
    if live is None:
        yield from items
        return
    depth = len(_state.steps)
    task = live.add_task(f"{'  ' * depth}{escape(description)}", total=total)
    try:
        for item in items:
            yield item
            live.advance(task)
    finally:
        live.remove_task(task)
        _stop_live_if_idle()


# ---------------------------------------------------------------- kfp.local runs
class PipelineSteps:
    """Shows a kfp.local run (``pipelines.runner.TaskReporter``): every line it prints
    goes to the log file, and each component becomes a step line with its time."""

    def __init__(self) -> None:
        self._open: dict[str, Step] = {}
        self._sized: list[Step] = []
        """Steps whose bar counts components (a retraining may run a second pipeline)."""

    def output(self, line: str) -> None:
        detail(line, "kfp")

    def pipeline_started(self, name: str, tasks: int) -> None:
        """The enclosing step counts the components, unless it counts something else."""
        parent = _state.steps[-1] if _state.steps else None
        if parent is not None and (parent.total is None or parent in self._sized):
            parent.set_total(parent.done + tasks)
            self._sized.append(parent)

    def task_started(self, task: str) -> None:
        self._open[task] = begin(task)

    def task_finished(self, task: str, ok: bool, seconds: float) -> None:
        s = self._open.pop(task, None) or begin(task)
        s.started = time.monotonic() - seconds
        if not ok:
            s.fail("failed")
        end(s)


@contextlib.contextmanager
def pipeline_steps() -> Iterator[None]:
    """Within the block, every kfp.local run (``pipelines.runner.run_local``, also when
    called deep inside e.g. the retraining trigger) reports through :class:`PipelineSteps`."""
    from pipelines.runner import reporting  # kfp is heavy: only pipeline commands load it

    with reporting(PipelineSteps()):
        yield
