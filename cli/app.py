"""The `recurrent-mnist` command: compare recurrent cells on images read row by row.

This module only assembles the app: each command lives in its own module under
`commands/`, parses its options (shared ones from `options`), calls one library
function and renders the result with `views/`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from recurrent_mnist_cli._support import Command, Group, VariadicCommand, console
from recurrent_mnist_cli.commands.bench import bench
from recurrent_mnist_cli.commands.compare import compare
from recurrent_mnist_cli.commands.datasets import datasets
from recurrent_mnist_cli.commands.evaluate import evaluate
from recurrent_mnist_cli.commands.export import export
from recurrent_mnist_cli.commands.report import report
from recurrent_mnist_cli.commands.train import train
from recurrent_mnist_cli.commands.tune import tune

app = typer.Typer(
    name="recurrent-mnist",
    help="Compare recurrent cells (LSTM, GRU, SimpleRNN) on images read as sequences of rows.",
    cls=Group,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)


def _version_callback(value: bool) -> None:
    if value:
        try:
            console.print(f"recurrent-mnist {version('recurrent-mnist')}", highlight=False)
        except PackageNotFoundError:
            console.print("recurrent-mnist (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    version_: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Compare recurrent cells (LSTM, GRU, SimpleRNN) on images read as sequences of rows."""


# Commands with repeatable options (--cells, --seeds, --import) take several values after one flag.
app.command(cls=VariadicCommand)(bench)
app.command(cls=VariadicCommand)(tune)
app.command(cls=Command)(report)
app.command(cls=Command)(compare)
app.command(cls=VariadicCommand)(train)
app.command(cls=VariadicCommand)(evaluate)
app.command(cls=VariadicCommand)(export)
app.command(cls=Command)(datasets)


def main() -> None:
    """Entry point of the `recurrent-mnist` console script (and of `python -m recurrent_mnist`)."""
    app(prog_name="recurrent-mnist")


if __name__ == "__main__":
    main()
