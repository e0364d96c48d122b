"""Why a fast layer leaves a call to the stock Keras loop: `fast_path_refusal`, the one place that decides."""

from __future__ import annotations

import contextlib
import contextvars

import keras

from recurrent_mnist.fast_rnn.thresholds import SERVE_STOCK_MAX_BATCH, UNROLL_MAX_STEPS

_serving = contextvars.ContextVar("serving", default=False)
_serve_stock_max_batch = contextvars.ContextVar("serve_stock_max_batch", default=SERVE_STOCK_MAX_BATCH)
_unroll_max_steps = contextvars.ContextVar("unroll_max_steps", default=UNROLL_MAX_STEPS)


@contextlib.contextmanager
def serving():
    """Marks the layers traced inside as `RowSequenceClassifier.serve`'s: inference only, under XLA."""
    token = _serving.set(True)
    try:
        yield
    finally:
        _serving.reset(token)


@contextlib.contextmanager
def serve_stock_up_to(max_batch: int):
    """For the graphs traced inside, `serve` hands batches of at most `max_batch` rows to the stock loop.

    The default is `SERVE_STOCK_MAX_BATCH`; 0 keeps the fast path at every
    batch size, as `benchmarks/latency.py --impls serve-fast` runs it to show
    what the rule saves.
    """
    token = _serve_stock_max_batch.set(max_batch)
    try:
        yield
    finally:
        _serve_stock_max_batch.reset(token)


@contextlib.contextmanager
def unroll_up_to(max_steps: int | None):
    """For the graphs traced inside, the fast path takes sequences of at most `max_steps` steps (None: any).

    The default is `UNROLL_MAX_STEPS`; `benchmarks/long_sequences.py` lifts it
    to measure the unrolled graph at every length.
    """
    token = _unroll_max_steps.set(max_steps)
    try:
        yield
    finally:
        _unroll_max_steps.reset(token)


def fast_path_refusal(layer, sequences, mask=None, training=False) -> str | None:
    """Why `layer` runs the stock Keras loop for this call, or None where it takes the fast path.

    Args:
        layer: a `FastLSTM`, `FastGRU`, `FastSimpleRNN` or `FastIndRNN`.
        sequences: the inputs, (batch, time steps, features).
        mask: the mask `inner_loop` receives, a tensor, a list or None.
        training: whether the call is in training mode.

    Returns:
        A short sentence that names the reason, or None.

    Example:

    >>> fast_path_refusal(FastLSTM(4, activation="relu"), np.zeros((2, 28, 28), "float32"))
    'activation=relu: the fast path computes tanh'
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        return f"the Keras backend is {backend}: the fast path is TensorFlow code"
    cell = layer.cell
    use_cudnn = getattr(layer, "use_cudnn", False)  # SimpleRNN has no cuDNN kernel
    if use_cudnn is True:
        return "use_cudnn=True asks for the stock layer's cuDNN kernel"
    cudnn_form = cell.use_bias and getattr(cell, "reset_after", True) and not layer.unroll
    if use_cudnn == "auto" and cudnn_form and gpu_available():
        return "the stock layer runs cuDNN on the GPU"
    if isinstance(mask, (list, tuple)):
        mask = mask[0] if mask else None
    if mask is not None:
        return "a mask: the fast path runs every step of every sequence"
    if sequences.shape[1] is None:
        return "the number of time steps is unknown when the graph is traced: the fast path unrolls the loop"
    max_steps = _unroll_max_steps.get()
    if max_steps is not None and sequences.shape[1] > max_steps:
        return (
            f"{sequences.shape[1]} time steps (more than {max_steps}): the stock loop traces once, "
            "where the fast path would unroll every step"
        )
    if sequences.shape[2] is None:
        return "the number of features is unknown when the graph is traced"
    if getattr(cell, "recurrent_dropout", 0):
        return f"recurrent_dropout={cell.recurrent_dropout}: the fast path has no recurrent dropout"
    if not _computes(cell.activation, layer.fast_activation):
        return f"activation={_name(cell.activation)}: the fast path computes {layer.fast_activation}"
    if hasattr(cell, "recurrent_activation") and not _computes(cell.recurrent_activation, "sigmoid"):
        return f"recurrent_activation={_name(cell.recurrent_activation)}: the fast path computes sigmoid"
    if training and getattr(cell, "dropout", 0) and getattr(cell, "dropout_mask_count", None):
        return "input dropout with implementation=1: one dropout mask per gate"
    batch, stock_max_batch = sequences.shape[0], _serve_stock_max_batch.get()
    if _serving.get() and batch is not None and batch <= stock_max_batch:
        return f"serving a batch of {batch} (at most {stock_max_batch}): the stock loop runs faster under XLA"
    return None


def gpu_available():
    import tensorflow as tf  # the backend: already loaded

    return bool(tf.config.list_logical_devices("GPU"))


def _computes(activation, name):
    import tensorflow as tf

    same = {
        "tanh": (keras.activations.tanh, keras.ops.tanh, tf.tanh, tf.math.tanh),
        "relu": (keras.activations.relu, keras.ops.relu, tf.nn.relu),
        "sigmoid": (keras.activations.sigmoid, keras.ops.sigmoid, tf.sigmoid, tf.math.sigmoid, tf.nn.sigmoid),
    }
    return activation in same[name]


def _name(activation):
    return getattr(activation, "__name__", repr(activation))
