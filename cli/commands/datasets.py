"""`recurrent-mnist datasets`: list the data sets, or load and validate one."""

from __future__ import annotations

from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import console, err_console, import_library, user_errors
from recurrent_mnist_cli.views.events import unverified_warning

from recurrent_mnist import settings


def datasets(
    check: Annotated[
        o.DatasetName | None,
        typer.Option(
            help="Load and validate this data set, check it against the published data and print its checksums. "
            "Default: none (list the data sets).",
            rich_help_panel=o.DATA,
            show_default=False,
        ),
    ] = None,
    data_dir: o.DataDirOpt = None,
) -> None:
    """List the data sets, or validate one with --check.

    A set is verified when its decoded arrays have the SHA-256 digests of the published data (recorded in
    recurrent_mnist/datasets/published.py, with where they come from); files of another published set are
    refused, and a set of one's own loads unverified.
    """
    from rich.table import Table

    import_library()
    from recurrent_mnist import datasets as ds

    if check is None:
        table = Table(title="Data sets", title_justify="left")
        for column in ("name", "description", "on this machine", "licence"):
            table.add_column(column, overflow="fold")
        with console.status("Looking for each data set and checking the copies found"):
            found = [ds.availability(name) for name in settings.DATASET.choices]
        for here in found:
            info = ds.DATASETS[here.name]
            table.add_row(info.name, info.description, _where(here), info.licence)
        console.print(table)
        console.print(
            f"Keras cache: {ds.keras_cache_dirs()[0]}. A set not found here is downloaded on first use; "
            "--check NAME shows its checksums.",
            highlight=False,
        )
        return
    with user_errors():
        data = ds.load(check.value, data_dir)
    described = data.describe()
    console.print(
        f"[green]✓[/] {data.name}: {described['train_size']:,} train / {described['test_size']:,} test "
        f"images of {data.image_shape[0]}x{data.image_shape[1]}, {data.num_classes} classes",
        highlight=False,
    )
    console.print(f"  source: {data.source}\n  sha256: {data.sha256} (of the files read)", highlight=False)
    if data.verified:
        console.print(
            f"  [green]verified[/]: its decoded arrays are {ds.PUBLISHED[data.name].title} (SHA-256 of each array)",
            highlight=False,
        )
    else:
        err_console.print(unverified_warning(described), highlight=False)


def _where(here) -> str:
    """A set's presence in words: verified, not the published data, invalid, or not found."""
    if here.where is None:
        return "[dim]not found (downloaded on first use)[/]"
    if here.problem is not None:
        return f"[red]✗ does not load[/]: {here.problem}"
    state = "[green]✓ verified[/]" if here.verified else "[yellow]✓ present, not the published data[/]"
    return f"{state} in {here.where}"
