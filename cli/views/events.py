"""What the progress displays share: a rich `Progress`, events dispatched to `_on_<event>` methods."""

from __future__ import annotations

import time

from recurrent_mnist_cli._support import err_console, raise_if_interrupted
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Progress(Progress):
    """A `Progress` that calls `before_render` each time it draws (several times a second)."""

    def __init__(self, *columns, before_render=None, **kwargs):
        self._before_render = before_render  # before Progress's own set-up, which may draw
        super().__init__(*columns, **kwargs)

    def get_renderables(self):
        if self._before_render is not None:
            self._before_render()
        yield from super().get_renderables()


class StepClock:
    """Where a running fit is within its epochs, between the progress events that say so.

    Keras reports a step only when a call into the compiled graph returns, every
    `steps_per_execution` steps: 50 steps of a 784-step sequence take over a
    minute on a small machine. From the pace of the calls seen so far, `estimate`
    advances the step count in between, never past the call that is running; the
    first call of a fit (tracing and compilation) sets no pace.
    """

    def __init__(self):
        self.seconds_per_step = None
        self.epoch = 1
        self.steps = None
        self.step = 0
        self.chunk = 1
        self._at = time.monotonic()
        self._paced = False

    def epoch_begins(self, epoch: int, steps: int, chunk: int = 1) -> None:
        self.epoch, self.steps, self.step, self.chunk = epoch, steps, 0, max(1, chunk)
        self._at = time.monotonic()

    def reached(self, epoch: int, step: int, steps: int) -> None:
        now = time.monotonic()
        if epoch != self.epoch:
            self.epoch_begins(epoch, steps, self.chunk)
        elif step > self.step:
            if self._paced:
                self.seconds_per_step = (now - self._at) / (step - self.step)
            self._paced = True  # the first call of a fit compiles: the pace starts after it
        self.steps, self.step, self._at = steps, step, now

    def estimate(self) -> float:
        """The step the running epoch has reached by now, as a fractional count."""
        if self.seconds_per_step is None or not self.steps or self.step >= self.steps:
            return float(self.step)
        ahead = (time.monotonic() - self._at) / max(self.seconds_per_step, 1e-9)
        # Never past the call that is running, nor to the epoch's end before Keras says so.
        ceiling = min(self.step + self.chunk, self.steps) - 0.5
        return max(float(self.step), min(self.step + ahead, ceiling))


class EventView:
    """Receives the library's progress events (dicts with an `"event"` key) and shows them.

    A subclass handles an event named `x` in a method `_on_x`; events it has no
    method for are ignored. Used as a context manager around the library call.
    """

    def __init__(self, console: Console, *, eta: bool):
        self.console = console
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        columns += [TaskProgressColumn()] if eta else []
        columns += [MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn()]
        columns += [TextColumn("ETA"), TimeRemainingColumn()] if eta else []
        self.overall = None
        self.current = None
        self.clock = None
        self._done_before = 0.0  # the overall bar's count before the running unit (variant or trial)
        self.progress = _Progress(
            *columns, console=console, transient=False, speed_estimate_period=24 * 3600, before_render=self._interpolate
        )
        self.run_dir = None
        self.finished = 0
        self._epochs = 1

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, event: dict) -> None:
        raise_if_interrupted()
        handler = getattr(self, "_on_" + event["event"], None)
        if handler is not None:
            handler(event)

    def start_unit(self, description: str, done_before: float) -> None:
        """A new running variant or trial: its own bar, and a fresh clock for its steps."""
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.current = self.progress.add_task(description, total=None, status="starting")
        self.clock = StepClock()
        self._done_before = done_before

    def end_unit(self) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
        self.current = None
        self.clock = None

    def epoch_begins(self, epoch: int, steps: int, chunk: int = 1) -> None:
        if self.clock is not None:
            self.clock.epoch_begins(epoch, steps, chunk)
            self._interpolate()

    def step_reached(self, epoch: int, step: int, steps: int) -> None:
        if self.clock is not None:
            self.clock.reached(epoch, step, steps)
            self._interpolate()

    def _interpolate(self) -> None:
        """Sets the running unit's bar, and the overall bar's fraction of it, to the clock's estimate."""
        clock = self.clock
        if clock is None or self.current is None or not clock.steps:
            return
        total = self._epochs * clock.steps
        done = min(total, (clock.epoch - 1) * clock.steps + clock.estimate())
        self.progress.update(self.current, total=total, completed=done)
        if self.overall is not None:
            self.progress.update(self.overall, completed=self._done_before + done / total)

    def dataset_line(self, data: dict) -> None:
        """The data set a run trains on, as the first line of its display."""
        dataset_lines(self.console, data)


def dataset_lines(console: Console, data: dict) -> None:
    """A data set's line (`Dataset.describe()`), and a warning on stderr when it is not the published set."""
    shape = f" {data['image_shape'][0]}x{data['image_shape'][1]}" if "image_shape" in data else ""
    console.print(
        f"Data set [bold]{data['name']}[/]: {data['train_size']:,} train / {data['test_size']:,} test "
        f"images{shape} from {data['source']}",
        highlight=False,
    )
    if data.get("verified") is False:
        err_console.print(unverified_warning(data), highlight=False)


def unverified_warning(data: dict) -> str:
    from recurrent_mnist.datasets import PUBLISHED

    published = PUBLISHED.get(data["name"])
    title = published.title if published else data["name"]
    return (
        f"[yellow]Warning:[/] the {data['name']} data in {data['source']} is not {title} as published: its "
        "decoded arrays do not all have the published SHA-256 digests (a set of your own?). The results are "
        "recorded with dataset_verified: false."
    )
