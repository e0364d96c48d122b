"""`recurrent-mnist evaluate`: score a saved model on a test split (`recurrent_mnist.single.evaluate_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import command_line, console, import_library, user_errors

from recurrent_mnist import settings


def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A saved .keras model.", show_default=False)],
    dataset: o.setting_option(
        settings.DATASET,
        o.DATA,
        help=f"{settings.DATASET.help} Default: the one the model was trained on, from its record "
        "(model.metrics.json beside model.keras, written by train and tune).",
    ) = None,
    data_dir: o.DataDirOpt = None,
    imports: o.ImportOpt = None,
    trust_legacy_h5: o.TrustLegacyH5Opt = False,
    measure_inference: o.MeasureInferenceOpt = True,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the evaluation (.json). Default: beside the model, e.g. model.evaluation.json "
            "for model.keras.",
            rich_help_panel=o.OUTPUT,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate a saved model on a data set's test split: accuracy, loss, confusion matrix and timing.

    The model is loaded with Keras's safe_mode=True (a file that would run code is refused) before
    any data is read; a model with a custom cell needs --import of the module that registers it.
    The evaluation is written as JSON, with the environment it was measured in.
    """
    import_library()
    from recurrent_mnist_cli.views.bench import confusion_table
    from recurrent_mnist_cli.views.events import dataset_lines

    from recurrent_mnist.single import evaluate_model

    with user_errors():
        result = evaluate_model(
            model_path,
            dataset.value if dataset else None,
            data_dir=data_dir,
            trust_legacy_h5=trust_legacy_h5,
            measure=measure_inference,
            output=output,
            command=command_line(),
            imports=o.split_values(imports) or (),
        )
    dataset_lines(console, result.data)
    console.print(
        f"{model_path} on {result.dataset} test ({result.samples:,} images): "
        f"accuracy [bold]{result.accuracy:.4f}[/], loss {result.loss:.4f}",
        highlight=False,
    )
    if result.infer_samples_per_s is not None:
        console.print(
            f"inference {result.infer_samples_per_s:,.0f} images/s; single-image latency "
            f"p50 {result.latency_ms_p50:.2f} ms, p95 {result.latency_ms_p95:.2f} ms",
            highlight=False,
        )
    console.print(confusion_table(result.confusion, result.class_names))
    console.print(f"Wrote {result.output}", highlight=False)
