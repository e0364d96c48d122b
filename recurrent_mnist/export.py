"""A model as a TensorFlow Lite file, and the interpreter that classifies one image at a time from it.

For single images the exported file is the fastest call this project has: the
interpreter runs the frozen graph with none of TensorFlow's per-call dispatch,
which costs about 0.14 ms a call on the development machine whatever the model
(`benchmarks/latency.py --impls floor`); `--impls tflite torch` compares the
file's calls with PyTorch's eager call.

    from recurrent_mnist.export import export_tflite, TFLiteClassifier

    export_tflite(model, "model.tflite")            # a built RowSequenceClassifier
    logits = TFLiteClassifier("model.tflite")(images)  # (N, H, W) uint8 -> (N, classes)

TensorFlow only: the Keras model is traced by TensorFlow and its weights frozen
into the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np

from recurrent_mnist.runs.atomic import atomic_path


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite announces its move to the LiteRT package
        flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
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
