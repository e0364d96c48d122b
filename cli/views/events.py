"""What the progress displays share: a rich `Progress`, events dispatched to `_on_<event>` methods."""

from __future__ import annotations

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
        self.progress = Progress(*columns, console=console, transient=False)
        self.overall = None
        self.current = None
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
