"""`recurrent-mnist evaluate`: score a saved model on a test split (`recurrent_mnist.single.evaluate_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import console, import_library, user_errors

from recurrent_mnist import settings


def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A saved .keras model.", show_default=False)],
    dataset: o.DatasetOpt = None,
    data_dir: o.DataDirOpt = None,
    trust_legacy_h5: Annotated[
        bool,
        typer.Option(
            "--trust-legacy-h5",
            help="Allow a legacy HDF5 (.h5) model. Safe mode does not cover HDF5: "
            "only for files from a source you trust.",
        ),
    ] = False,
) -> None:
    """Evaluate a saved model on a data set's test split: accuracy, loss and confusion matrix.

    The model is loaded with Keras's safe_mode=True: a file that would run code is refused.
    """
    import_library()
    from recurrent_mnist_cli.views.bench import confusion_table

    from recurrent_mnist.single import evaluate_model

    name = dataset.value if dataset else settings.DATASET.default
    with user_errors():
        result = evaluate_model(model_path, name, data_dir=data_dir, trust_legacy_h5=trust_legacy_h5)
    console.print(
        f"{model_path} on {result.dataset} test ({result.samples:,} images): "
        f"accuracy [bold]{result.accuracy:.4f}[/], loss {result.loss:.4f}",
        highlight=False,
    )
    console.print(confusion_table(result.confusion, result.class_names))
