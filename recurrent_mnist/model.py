"""RowSequenceClassifier: a Keras model that reads an image row by row through a recurrent cell.

Each of the H rows of an `(H, W)` image is one time step of W features (28 x 28
for MNIST). A stack of recurrent layers encodes the sequence, and a dense head
maps the last hidden state to class logits (no softmax: train with
`SparseCategoricalCrossentropy(from_logits=True)`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import numbers

import keras
import numpy as np

from recurrent_mnist import readings, settings
from recurrent_mnist.cells import canonical_cell_name, get_cell_factory
from recurrent_mnist.fast_rnn.layers import check_parallel_chains, predicts_faster_with_xla

__all__ = ["RowSequenceClassifier"]


def _check_num_classes(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`num_classes` must be an integer >= 1. Received: num_classes={value!r}")
    return int(value)


def _bidirectional(layer, name):
    """`keras.layers.Bidirectional(layer)` with its backward copy built here, from the layer's class.

    Bidirectional builds the copy by deserializing the layer's config; while
    `keras.saving.load_model` runs, that returns the forward layer itself (Keras
    shares objects deserialized from one config) and the wrapper refuses it.
    """
    config = {**layer.get_config(), "go_backwards": not layer.go_backwards, "name": f"backward_{layer.name}"}
    backward = type(layer).from_config(config)
    return keras.layers.Bidirectional(layer, backward_layer=backward, name=name, dtype=layer.dtype_policy)


@contextlib.contextmanager
def _global_dtype_policy(policy):
    """Keras's global dtype policy set to `policy` for a while, in this thread (Keras keeps it per thread).

    So that a cell factory, which takes no `dtype`, builds its layer in the model's policy: in the
    process that loads the model as in the one that saved it, whatever its own global policy.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _static_shape(shape) -> tuple | None:
    """A static shape as a tuple; None when there is no shape or its rank is unknown (TensorFlow)."""
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(shape)


def _row_shape(shape: tuple) -> tuple | None:
    """`(N, H, W)` of an image shape `(N, H, W)` or `(N, H, W, 1)` (channels unknown as yet count as 1); else None."""
    if len(shape) == 4 and shape[3] in (1, None):
        return shape[:3]
    return shape if len(shape) == 3 else None


def _shape_text(shape) -> str:
    """A shape as Keras writes it in messages: `(8, 28, 28)`, `(None, 28, 28, 1)`, `<unknown rank>`."""
    shape = _static_shape(shape)
    if shape is None:
        return "<unknown rank>"
    return str(tuple(None if d is None else int(d) for d in shape))


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class RowSequenceClassifier(keras.Model):
    """Classifies images by reading their rows as a sequence through a recurrent cell.

    Args:
        cell: a registered cell name, `"lstm"` (default), `"gru"` or
            `"simple_rnn"` (aliases `"rnn"`, `"simplernn"`; see
            `recurrent_mnist.register_cell`), or a Keras RNN layer instance
            such as `keras.layers.LSTM(64, dropout=0.1)`, which then sets the
            units and dropouts itself and must have `return_sequences=False`.
        units: hidden units of each recurrent layer. Defaults to 128 for a
            named cell; must be left unset with a layer instance.
        num_classes: number of output logits. Defaults to 10.
        num_layers: recurrent layers stacked on each other. Defaults to 1.
            With a layer instance, the lower layers are copies of its
            configuration with `return_sequences=True`.
        bidirectional: wrap each recurrent layer in
            `keras.layers.Bidirectional`. Defaults to False.
        dropout: fraction of each recurrent layer's inputs dropped while
            training. Defaults to 0.
        recurrent_dropout: fraction of the recurrent state dropped while
            training. Defaults to 0.
        rescale: factor applied to the pixels inside the model, so that raw
            0..255 values can be fed directly. Defaults to `1 / 255`; `None`
            switches scaling off (feed inputs already scaled).
        parallel_chains: for the built-in fast cells (`"lstm"`, `"gru"`,
            `"simple_rnn"`), how many independent slices of each batch run
            side by side, one per CPU thread (same results, see
            `recurrent_mnist.fast_rnn`). Defaults to `"auto"`: TensorFlow's
            inter-op thread count when each operation runs on one thread
            (`recurrent_mnist.environment.limit_threads`), else 1. Other
            cells ignore it.
        reading: how an image becomes a sequence (`recurrent_mnist.readings`):
            `"rows"` (default; H steps of W pixels), `"pixels"` (H * W steps
            of one pixel, row after row: sequential MNIST) or
            `"permuted-pixels"` (the same pixels in one fixed shuffled order:
            permuted sequential MNIST).
        permutation_seed: the seed the permuted order is drawn from when the
            model is built. Defaults to 0.
        permutation: the pixel order itself, as a list of indices; set by
            `build` from `permutation_seed` and kept in the model's config, so
            that a saved model reads pixels in the order it was trained with.
        **kwargs: passed to `keras.Model` (`name`, `dtype`, ...). The
            recurrent layers of a named cell are made in the model's dtype
            policy (Keras's global policy unless `dtype` is given); under
            mixed precision the logits stay float32.

    Call arguments:
        inputs: images `(N, H, W)` or `(N, H, W, 1)`, uint8 or float, in any
            order over the model's life. H is the number of time steps and may
            change from call to call; W, the features per step, is fixed by the
            first call (or `build`). Any other shape is a `ValueError`:
            `predict`, `evaluate` and `fit` check arrays and tensors before
            they start, and each call checks the shape it is traced with. A
            TensorFlow graph traced for a shape of unknown rank or width (Keras
            relaxes the shapes of its `tf.function`s when they change, as when
            `fit` gets a `tf.data` dataset of the other rank) reads both ranks
            and checks the shape as it runs: the same message, as an
            `InvalidArgumentError`.
        training: whether dropout is active.

    Returns:
        Logits of shape `(N, num_classes)`.

    Example:

    >>> import numpy as np, keras
    >>> model = RowSequenceClassifier("gru", units=32)
    >>> model(np.zeros((2, 28, 28), dtype="uint8")).shape
    TensorShape([2, 10])
    >>> model.compile(
    ...     optimizer="adam",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"],
    ... )

    As a layer of a bigger model:

    >>> inputs = keras.Input((28, 28))
    >>> logits = RowSequenceClassifier("lstm", units=16)(inputs)
    >>> probabilities = keras.layers.Softmax()(logits)
    >>> keras.Model(inputs, probabilities).output_shape
    (None, 10)
    """

    def __init__(
        self,
        cell="lstm",
        units=None,
        num_classes=10,
        num_layers=1,
        bidirectional=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        rescale=1.0 / 255.0,
        parallel_chains="auto",
        reading=settings.READING.default,
        permutation_seed=settings.PERMUTATION_SEED.default,
        permutation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.reading = readings.check_reading(reading)
        self.permutation_seed = readings.check_permutation_seed(permutation_seed)
        if permutation is not None and self.reading != "permuted-pixels":
            raise ValueError(
                f"`permutation` orders the pixels of reading='permuted-pixels' only. Received: reading={reading!r}"
            )
        self.permutation = None if permutation is None else readings.check_permutation(permutation)
        self.num_classes = _check_num_classes(num_classes)
        self.num_layers = settings.LAYERS.check(num_layers, argument="num_layers")
        self.bidirectional = settings.BIDIRECTIONAL.check(bidirectional)
        self.dropout = settings.DROPOUT.check(dropout)
        self.recurrent_dropout = settings.RECURRENT_DROPOUT.check(recurrent_dropout)
        self.parallel_chains = check_parallel_chains(parallel_chains)
        if rescale is not None and (
            isinstance(rescale, bool)
            or not isinstance(rescale, numbers.Real)
            or not math.isfinite(rescale)
            or rescale <= 0
        ):
            raise ValueError(f"`rescale` must be a positive number or None. Received: rescale={rescale!r}")
        self.rescale = None if rescale is None else float(rescale)

        if isinstance(cell, keras.layers.Layer):
            layers = self._layers_from_instance(cell, units)
            # Kept as JSON text: as an attribute the layer itself would be tracked twice.
            self._cell_config = json.dumps(keras.saving.serialize_keras_object(cell))
            self.cell = None
            self.units = None
        elif isinstance(cell, str):
            self.cell = canonical_cell_name(cell)
            self._cell_config = None
            self.units = settings.UNITS.default if units is None else settings.UNITS.check(units)
            layers = self._layers_from_name(self.cell)
        else:
            raise ValueError(
                "`cell` must be a cell name or a Keras RNN layer instance. "
                f"Received: cell={cell!r} of type {type(cell).__name__}"
            )
        if self.bidirectional:
            layers = [_bidirectional(layer, name=f"bidirectional_{i}") for i, layer in enumerate(layers)]
        self.recurrent_layers = layers
        self._features = None  # W, the values per row: set by `build`
        self._serve_functions = {}  # the compiled calls of `serve` (small batches or not), made on first use
        self._xla_predict = None  # `predict`'s function where it compiles with XLA, made on first use
        self.head = keras.layers.Dense(self.num_classes, name="logits", dtype=self._head_dtype())

    # -- construction ---------------------------------------------------------------

    def _layers_from_name(self, name):
        factory = get_cell_factory(name)
        with _global_dtype_policy(self.dtype_policy):
            layers = [
                factory(
                    self.units,
                    return_sequences=i < self.num_layers - 1,
                    dropout=self.dropout,
                    recurrent_dropout=self.recurrent_dropout,
                    name=f"{name}_{i}",
                )
                for i in range(self.num_layers)
            ]
        for layer in layers:
            if hasattr(layer, "parallel_chains"):  # the fast layers; any other cell has no such setting
                layer.parallel_chains = self.parallel_chains
        return layers

    def _layers_from_instance(self, layer, units):
        if units is not None:
            raise ValueError(
                f"`units` comes from the layer instance passed as `cell`; leave it unset. Received: units={units!r}"
            )
        if self.dropout or self.recurrent_dropout:
            raise ValueError(
                "`dropout` and `recurrent_dropout` come from the layer instance passed as `cell`; "
                f"set them on the layer. Received: dropout={self.dropout}, "
                f"recurrent_dropout={self.recurrent_dropout}"
            )
        if not hasattr(layer, "return_sequences"):
            raise ValueError(
                "`cell` must be a Keras RNN layer (such as keras.layers.LSTM) mapping (N, T, F) "
                f"to (N, units). Received a {type(layer).__name__}"
            )
        if layer.return_sequences or getattr(layer, "return_state", False):
            raise ValueError(
                "The layer passed as `cell` must have return_sequences=False and return_state=False; "
                f"use `num_layers` to stack layers. Received: {layer.name} with "
                f"return_sequences={layer.return_sequences}"
            )
        if self.num_layers > 1 and not isinstance(layer, keras.layers.RNN):
            raise ValueError(
                "Stacking (`num_layers` > 1) copies the layer passed as `cell`, which needs a "
                f"keras.layers.RNN subclass. Received a {type(layer).__name__}"
            )
        lower = []
        for i in range(self.num_layers - 1):
            config = copy.deepcopy(layer.get_config())
            config.update(return_sequences=True, name=f"{layer.name}_{i}")
            lower.append(type(layer).from_config(config))
        return [*lower, layer]

    def _head_dtype(self):
        # Under mixed precision, keep the logits (and so the loss) in float32.
        if self.dtype_policy.compute_dtype in ("float16", "bfloat16"):
            return "float32"
        return self.dtype_policy

    # -- Keras API ------------------------------------------------------------------

    def _sequence_shape(self, input_shape):
        """`(N, H, W)` from the shape of images `(N, H, W)` or `(N, H, W, 1)`, or ValueError."""
        shape = _static_shape(input_shape)
        shape = None if shape is None else _row_shape(shape)
        if shape is None:
            raise ValueError(
                "`input_shape` must be that of images (N, H, W) or (N, H, W, 1). "
                f"Received: input_shape={_shape_text(input_shape)}"
            )
        if shape[2] is None:
            raise ValueError(
                "`input_shape` must give the image width W (the features per time step). "
                f"Received: input_shape={_shape_text(input_shape)}"
            )
        return shape

    def build(self, input_shape):
        batch, height, width = self._sequence_shape(input_shape)
        self._features = int(width)
        if self.reading == "permuted-pixels":
            self._settle_permutation(height, width)
        shape = (batch, *readings.sequence_shape(height, width, self.reading))
        for layer in self.recurrent_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.head.build(shape)
        self.built = True

    def _settle_permutation(self, height, width):
        """Draws the pixel order from the seed, or checks a stored one, for images of `height` x `width`."""
        if height is None:
            raise ValueError(
                "`input_shape` must give the image height H for reading='permuted-pixels': its pixel order is "
                "drawn for one image size."
            )
        if self.permutation is None:
            self.permutation = readings.draw_permutation(height * width, self.permutation_seed)
        readings.check_permutation(self.permutation, height * width)

    def as_sequences(self, images):
        """The sequences the recurrent layers read from `images`, before rescaling.

        Args:
            images: `(N, H, W)` or `(N, H, W, 1)`.

        Returns:
            `(N, H, W)` for the `rows` reading; `(N, H * W, 1)` for `pixels`
            (row after row) and `permuted-pixels` (in the model's stored order).
        """
        rows = self._rows(images)
        if self.reading == "rows":
            return rows
        _, height, width = _static_shape(rows.shape) or (None, None, None)
        if height is None or width is None:
            pixels = keras.ops.reshape(rows, (keras.ops.shape(rows)[0], -1, 1))
        else:
            pixels = keras.ops.reshape(rows, (-1, height * width, 1))
        if self.reading == "pixels":
            return pixels
        if height is not None and width is not None and height * width != len(self.permutation):
            readings.check_permutation(self.permutation, height * width)  # raises: the message says why
        return keras.ops.take(pixels, np.asarray(self.permutation, "int32"), axis=1)

    def call(self, inputs, training=False):
        x = self.as_sequences(inputs)
        x = keras.ops.cast(x, self.compute_dtype)
        if self.rescale is not None:
            x = keras.ops.multiply(x, keras.ops.cast(self.rescale, self.compute_dtype))
        for layer in self.recurrent_layers:
            x = layer(x, training=training)
        return self.head(x)

    def _readable(self, shape) -> bool:
        """Whether images of this static shape (None: unknown as yet) can be read as `(N, H, W)` rows."""
        rows = _row_shape(shape)
        return rows is not None and (self._features is None or rows[2] in (self._features, None))

    def _input_error(self, argument, shape) -> str:
        width = "" if self._features is None else f" with W={self._features}, the width {self.name} was built with"
        return (
            f"`{argument}` must be images (N, H, W) or (N, H, W, 1){width} (H may vary). "
            f"Received: {argument}.shape={shape}"
        )

    def _rows(self, inputs):
        """The images as sequences `(N, H, W)`, or ValueError for a shape the model cannot read."""
        self._check_images(inputs, "inputs")
        shape = _static_shape(inputs.shape)
        if shape is not None and None not in shape[2:]:
            return keras.ops.squeeze(inputs, axis=-1) if len(shape) == 4 else inputs
        return self._rows_checked_as_the_graph_runs(inputs)

    def _rows_checked_as_the_graph_runs(self, inputs):
        """`_rows` for a shape that is known only when the graph runs: its rank, channels or width.

        Only TensorFlow traces such shapes (Keras relaxes the shapes of `predict`,
        `fit` and `evaluate` when it retraces them); JAX and PyTorch always call
        with concrete shapes. The result has a static rank and width; H stays
        unknown, so the fast layers leave such a trace to the stock loop.
        """
        import tensorflow as tf  # the backend: already loaded

        shape = tf.shape(inputs)
        padded = tf.concat([shape, tf.ones([4], shape.dtype)], axis=0)  # index 0 to 3 exist at any rank
        rank = tf.rank(inputs)
        readable = ((rank == 3) | ((rank == 4) & (padded[3] == 1))) & (padded[2] == self._features)
        check = tf.debugging.Assert(readable, [self._input_error("inputs", ""), shape], summarize=8)
        with tf.control_dependencies([check]):
            return tf.reshape(inputs, tf.stack([padded[0], padded[1], self._features]))

    # -- Keras's loops: array inputs checked before they start ------------------------
    # Inside them a shape can be out of Python's reach (a TensorFlow graph), and an error in a step can cost
    # the weights: under JAX, Keras's loops hold the variables' values outside the variables during a step
    # and write them back only when it returns.

    def _check_images(self, x, argument):
        """ValueError for an array or tensor `x` of a shape the model cannot read; other inputs
        (datasets, generators) and shapes of unknown rank are checked by `call` as they come."""
        shape = _static_shape(getattr(x, "shape", None))
        if shape is not None and not self._readable(shape):
            raise ValueError(self._input_error(argument, _shape_text(shape)))

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, with the images of `x` and `validation_data` checked before it starts."""
        self._check_images(x, "x")
        validation_data = kwargs.get("validation_data")
        if isinstance(validation_data, (tuple, list)) and validation_data:
            self._check_images(validation_data[0], "validation_data")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with the images of `x` checked before it starts."""
        self._check_images(x, "x")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, with the images of `x` checked before it starts.

        On one thread, with fast layers of at most `fast_rnn.thresholds.PREDICT_XLA_MAX_UNITS` units, it
        compiles with XLA, whose fused steps are faster there (`fast_rnn.layers.predicts_faster_with_xla`);
        `predict_on_batch` keeps the model's `jit_compile`.
        """
        self._check_images(x, "x")
        if self.run_eagerly or self.jit_compile or not predicts_faster_with_xla(self.recurrent_layers):
            return super().predict(x, *args, **kwargs)
        own = self.predict_function, self._jit_compile
        self.predict_function, self._jit_compile = self._xla_predict, True
        try:
            return super().predict(x, *args, **kwargs)
        finally:
            self._xla_predict = self.predict_function  # made by Keras on the first call, with jit_compile=True
            self.predict_function, self._jit_compile = own

    def serve(self, images):
        """Logits of a few images, as numpy, through one compiled call: the fast way to classify single images.

        `predict_on_batch` runs Keras's per-call machinery (data adapters, output
        conversion) around the model on every call, which a call of one image
        cannot spread over many. On TensorFlow this calls the model compiled with
        XLA. A batch of up to `fast_rnn.thresholds.SERVE_STOCK_MAX_BATCH` images
        is padded to the next power of two and compiled at that size (one
        compilation per power of two, image shape and dtype; the recurrent layers
        then run the stock loop, which XLA compiles to faster code at such
        sizes); larger batches share one compilation of any size. On other
        backends it is `predict_on_batch`. Dropout is off.

        Args:
            images: `(N, H, W)` or `(N, H, W, 1)`, uint8 or float.

        Returns:
            A numpy array of logits `(N, num_classes)`.
        """
        self._check_images(images, "images")
        if keras.backend.backend() != "tensorflow":
            return keras.ops.convert_to_numpy(self.predict_on_batch(images))
        import tensorflow as tf  # the backend: already loaded

        from recurrent_mnist.fast_rnn.fallback import serving
        from recurrent_mnist.fast_rnn.thresholds import SERVE_STOCK_MAX_BATCH

        count = len(images)
        small = count <= SERVE_STOCK_MAX_BATCH
        if small:
            images = keras.ops.convert_to_numpy(images)
            padded = 1 << max(count - 1, 0).bit_length()
            if padded > count:
                images = np.concatenate([images, np.zeros((padded - count, *images.shape[1:]), images.dtype)])
        images = tf.convert_to_tensor(images)
        # A small batch calls its concrete function directly, without tf.function's dispatch, which
        # matches the arguments to a trace on every call: a cost of the call, not of the model.
        key = (tuple(images.shape), images.dtype) if small else None
        with serving():
            if key not in self._serve_functions:
                compiled = tf.function(
                    lambda x: self(x, training=False), jit_compile=True, reduce_retracing=not small, autograph=False
                )
                spec = tf.TensorSpec(images.shape, images.dtype)
                self._serve_functions[key] = compiled.get_concrete_function(spec) if small else compiled
            return self._serve_functions[key](images).numpy()[:count]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        cell = self.cell if self._cell_config is None else json.loads(self._cell_config)
        return {
            **super().get_config(),
            "cell": cell,
            "units": self.units,
            "num_classes": self.num_classes,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "rescale": self.rescale,
            "parallel_chains": self.parallel_chains,
            "reading": self.reading,
            "permutation_seed": self.permutation_seed,
            "permutation": self.permutation,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        if isinstance(config.get("cell"), dict):
            config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
