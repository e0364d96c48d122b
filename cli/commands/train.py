"""`recurrent-mnist train`: train one model and save it (`recurrent_mnist.single.train_and_save`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import (
    console,
    fail,
    import_library,
    interruptible,
    raise_if_interrupted,
    user_errors,
)


@o.with_options({**o.TRAIN_OPTIONS, "seed": o.SeedOpt})
def train(
    cell: o.CellOpt = None,
    dataset: o.DatasetOpt = None,
    data_dir: o.DataDirOpt = None,
    imports: o.ImportOpt = None,
    preset: o.PresetOpt = None,
    tensorboard_dir: o.tensorboard_option(
        "the loss, accuracy and epoch times per epoch, and an HParams session with the configuration and final "
        "figures, under DIR/OUTPUT-STEM"
    ) = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where to save the trained model (.keras); its history and record go beside it. Default: model.keras.",
            rich_help_panel=o.OUTPUT,
            show_default=False,
        ),
    ] = None,
    *,
    given: dict,
) -> None:
    """Train one model and save it as .keras, with its history (CSV) and record (JSON) beside it.

    The record (model.metrics.json for model.keras) names the data set, which evaluate then uses by default.
    An interrupted training resumes from its last finished epoch when run again.
    """
    import_library()
    from recurrent_mnist_cli.views.events import dataset_lines

    from recurrent_mnist import settings
    from recurrent_mnist.cells import import_cell_modules, resolve_imports
    from recurrent_mnist.single import train_and_save, train_config

    output = output or Path("model.keras")
    with user_errors():
        import_cell_modules(resolve_imports(o.split_values(imports) or ()))
        config = train_config(preset.value if preset else None, cell=cell, **given)
        if output.suffix != ".keras":
            raise fail(f"--output {output} must end in .keras")

        def show(event):
            raise_if_interrupted()
            if event["event"] == "dataset":
                dataset_lines(console, event["dataset"])
            elif event["event"] == "epoch_end":
                logs = event["logs"]
                console.print(
                    f"epoch {event['epoch']}/{event['epochs']}: loss {logs.get('loss'):.4f} "
                    f"acc {logs.get('accuracy'):.4f} val_acc {logs.get('val_accuracy') or float('nan'):.4f} "
                    f"({event['epoch_time_s']:.1f} s)",
                    highlight=False,
                )

        stopped = f"Interrupted: progress is kept in {output}.backup; run the same command again to resume."
        with interruptible(contextlib.nullcontext(), stopped, at_once=True):
            outcome = train_and_save(
                dataset.value if dataset else settings.DATASET.default,
                config,
                output,
                data_dir=data_dir,
                emit=show,
                tensorboard_dir=tensorboard_dir,
            )
    row = outcome.row
    if row["status"] != "ok":
        raise fail(f"training failed: {row['error']}")
    console.print(
        f"[green]✓[/] test accuracy {row['test_accuracy']:.4f}, loss {row['test_loss']:.4f}; "
        f"saved {outcome.model_path} and {outcome.history_path}",
        highlight=False,
    )
