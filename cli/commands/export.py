"""`recurrent-mnist export`: a saved model as a TensorFlow Lite file (`recurrent_mnist.export.export_file`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import console, held_back_stderr, import_library, user_errors


class InputDtype(StrEnum):
    uint8 = "uint8"
    float32 = "float32"


def export(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A saved .keras model.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="The TensorFlow Lite file to write. Default: beside the model, e.g. model.tflite for model.keras.",
            rich_help_panel=o.OUTPUT,
            show_default=False,
        ),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="INTEGER",
            help="The image's rows (time steps) the file takes. Default: as many as its width (square images).",
            rich_help_panel=o.MODEL,
            show_default=False,
        ),
    ] = None,
    input_dtype: Annotated[
        InputDtype,
        typer.Option(help="The pixels' type the file takes.", rich_help_panel=o.MODEL),
    ] = InputDtype.uint8,
    imports: o.ImportOpt = None,
    trust_legacy_h5: o.TrustLegacyH5Opt = False,
) -> None:
    """Write a saved model as a TensorFlow Lite file that classifies one image per call.

    The fastest way this project has to answer one image at a time: the interpreter runs the frozen
    graph without TensorFlow's per-call dispatch (the documentation's Speed page). The model is loaded
    with Keras's safe_mode=True; the file is checked against it on random images before it is kept.
    Read it with recurrent_mnist.export.TFLiteClassifier.
    """
    import_library()
    from recurrent_mnist.errors import RecurrentMnistError
    from recurrent_mnist.export import AGREEMENT, export_file

    # The converter's and the interpreter's notices ("Created TensorFlow Lite XNNPACK delegate") are held back.
    with user_errors(), held_back_stderr(unless=(RecurrentMnistError, OSError)):
        result = export_file(
            model_path,
            output,
            rows=rows,
            dtype=input_dtype.value,
            trust_legacy_h5=trust_legacy_h5,
            imports=o.split_values(imports) or (),
        )
    rows_, width = result.image_shape
    console.print(
        f"Wrote {result.path} ({result.size_bytes / 1024:,.0f} KiB): one {rows_} x {width} {result.dtype} image per "
        f"call; on {result.images_checked} random images its logits are the model's within "
        f"{result.max_abs_difference:.1e} (at most {AGREEMENT:g} is kept). "
        "Read it with recurrent_mnist.export.TFLiteClassifier.",
        highlight=False,
    )
