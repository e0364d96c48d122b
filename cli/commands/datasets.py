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
        for column in ("name", "description", "licence"):
            table.add_column(column)
        for name in settings.DATASET.choices:
            info = ds.DATASETS[name]
            table.add_row(info.name, info.description, info.licence)
        console.print(table)
        console.print(f"Keras cache: {ds.keras_cache_dirs()[0]}", highlight=False)
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
