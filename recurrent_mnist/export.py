"""A model as a TensorFlow Lite file, and the interpreter that classifies one image at a time from it.

For single images the exported file is the fastest call this project has: the
interpreter runs the frozen graph with none of TensorFlow's per-call dispatch,
a cost every call pays whatever the model (`benchmarks/latency.py --impls floor`
measures it); `--impls tflite torch` compares the file's calls with PyTorch's
eager call.

    from recurrent_mnist.export import export_tflite, TFLiteClassifier

    export_tflite(model, "model.tflite")            # a built RowSequenceClassifier
    logits = TFLiteClassifier("model.tflite")(images)  # (N, H, W) uint8 -> (N, classes)

TensorFlow only: the Keras model is traced by TensorFlow and its weights frozen
into the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from recurrent_mnist.errors import ModelFileError
from recurrent_mnist.runs.atomic import atomic_path

# Logits of the file against the Keras model's: float32 arithmetic in another order.
AGREEMENT = 1e-4


def export_tflite(model, path, *, rows: int | None = None, dtype: str = "uint8") -> Path:
    """Writes `model` as a TensorFlow Lite file that classifies one image per call.

    The graph is traced for one image of `rows` x the model's width and frozen,
    so the file holds the weights as they are now. The file is written to a
    temporary name and renamed: an interrupted export leaves no file.

    Args:
        model: a built `RowSequenceClassifier` (called once, or loaded); its
            dropout, which does nothing at inference, is left out of the file.
        path: the file to write, usually `*.tflite`.
        rows: H, the image's rows (time steps); None: as many as its width (square images).
        dtype: the input's dtype, `"uint8"` (pixels) or `"float32"`.

    Returns:
        The path written.

    Raises:
        ValueError: for a model that is not built, a backend other than
            TensorFlow, `rows` below 1 or another `dtype`.
    """
    if keras.backend.backend() != "tensorflow":
        backend = keras.backend.backend()
        raise ValueError(f"a TensorFlow Lite file is traced by TensorFlow; the Keras backend is {backend}")
    width = getattr(model, "_features", None)
    if not model.built or width is None:
        raise ValueError("`model` must be built before it is exported: call it once on images, or load it")
    rows = width if rows is None else rows
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"`rows` must be an integer of at least 1. Received: rows={rows!r}")
    if dtype not in ("uint8", "float32"):
        raise ValueError(f"`dtype` must be 'uint8' or 'float32'. Received: dtype={dtype!r}")
    import tensorflow as tf  # the backend: already loaded
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # A copy without dropout, which does nothing at inference but update a variable that the frozen
    # graph cannot hold.
    inference = type(model).from_config({**model.get_config(), "dropout": 0.0, "recurrent_dropout": 0.0})
    inference(np.zeros((1, rows, width), dtype))
    inference.set_weights(model.get_weights())
    traced = tf.function(lambda x: inference(x, training=False), autograph=False)
    concrete = traced.get_concrete_function(tf.TensorSpec((1, rows, width), dtype, name="images"))
    try:
        # Frozen weights: the stock layers' while loop would otherwise read resource variables, which the
        # interpreter cannot.
        frozen = convert_variables_to_constants_v2(concrete)
    except ValueError as error:
        raise ValueError(
            f"the model's graph cannot be frozen for TensorFlow Lite ({error}); a cell passed as a layer keeps "
            "its own dropout: export a copy built with that layer's dropout at 0"
        ) from None
    absl = logging.getLogger("absl")
    level = absl.level
    try:
        # tf.lite announces its move to the LiteRT package (a warning), and the converter asks for a
        # trackable object (an absl log line) that a frozen function does not need.
        absl.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
    finally:
        absl.setLevel(level)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path


class TFLiteClassifier:
    """Logits of images from a file written by `export_tflite`, one interpreter call per image.

    Args:
        path: the `.tflite` file.
        threads: the interpreter's threads; None: its default.

    Example:

    >>> classify = TFLiteClassifier("model.tflite", threads=1)
    >>> classify(images[:1]).shape
    (1, 10)
    """

    def __init__(self, path, threads: int | None = None):
        import tensorflow as tf

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such file (write one with `export_tflite`)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in export_tflite
            try:
                self._interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
            except ValueError as error:
                raise ValueError(f"{path} is not a TensorFlow Lite file: {error}") from None
        self._interpreter.allocate_tensors()
        source, target = self._interpreter.get_input_details()[0], self._interpreter.get_output_details()[0]
        self._input, self._output = source["index"], target["index"]
        self.image_shape = tuple(int(n) for n in source["shape"][1:])
        self.dtype = np.dtype(source["dtype"])
        self.num_classes = int(target["shape"][-1])

    def __call__(self, images) -> np.ndarray:
        """`(N, H, W)` or `(N, H, W, 1)` images -> `(N, num_classes)` logits, as numpy."""
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.shape[1:] != self.image_shape:
            expected = "(N, {}, {})".format(*self.image_shape)
            raise ValueError(f"`images` must be {expected}, as the file was exported. Received: {images.shape}")
        images = images.astype(self.dtype, copy=False)
        logits = []
        for image in images:
            self._interpreter.set_tensor(self._input, image[None])
            self._interpreter.invoke()
            logits.append(self._interpreter.get_tensor(self._output)[0])
        return np.stack(logits) if logits else np.zeros((0, self.num_classes), np.float32)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_file` wrote and how closely the file's logits follow the model's."""

    path: Path
    size_bytes: int
    image_shape: tuple[int, int]
    dtype: str
    images_checked: int
    max_abs_difference: float


def export_file(
    model_path: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    rows: int | None = None,
    dtype: str = "uint8",
    trust_legacy_h5: bool = False,
    imports: Iterable[str] = (),
    check_images: int = 8,
) -> ExportResult:
    """A saved model as a TensorFlow Lite file, checked against the model before it is kept.

    Loads `model_path` safely (`single.load_saved_model`), writes the file with
    `export_tflite`, then classifies `check_images` random images with both; a
    file whose logits differ from the model's by more than `AGREEMENT` is
    removed and refused.

    Args:
        model_path: a saved `.keras` model (a `RowSequenceClassifier`).
        output: the file to write; by default beside the model, `<stem>.tflite`.
        rows, dtype: as `export_tflite`.
        trust_legacy_h5: allow a legacy HDF5 model (see `saving.load_model`).
        imports: modules to import first, e.g. one that registers the model's custom cell.
        check_images: how many random images the check classifies.

    Raises:
        ModelFileError: the model cannot be loaded, is not a `RowSequenceClassifier`,
            cannot be exported, or the file does not give its logits.
    """
    from recurrent_mnist.model import RowSequenceClassifier
    from recurrent_mnist.single import load_saved_model

    model_path = Path(model_path)
    output = model_path.with_suffix(".tflite") if output is None else Path(output)
    model = load_saved_model(model_path, trust_legacy_h5=trust_legacy_h5, imports=imports)
    if not isinstance(model, RowSequenceClassifier):
        raise ModelFileError(f"{model_path} holds a {type(model).__name__}; only a RowSequenceClassifier exports")
    try:
        export_tflite(model, output, rows=rows, dtype=dtype)
    except ValueError as error:
        raise ModelFileError(f"{model_path} cannot be exported: {error}") from None
    classify = TFLiteClassifier(output)
    pixels = np.random.default_rng(0).integers(0, 256, size=(check_images, *classify.image_shape), dtype=np.uint8)
    images = pixels.astype(classify.dtype)
    difference = float(np.max(np.abs(classify(images) - keras.ops.convert_to_numpy(model(images)))))
    if not difference <= AGREEMENT:
        output.unlink()
        raise ModelFileError(
            f"{output}: the exported file's logits differ from {model_path}'s by {difference:.2g} "
            f"(more than {AGREEMENT:g}); nothing was kept"
        )
    return ExportResult(
        output, output.stat().st_size, classify.image_shape, str(classify.dtype), check_images, difference
    )
