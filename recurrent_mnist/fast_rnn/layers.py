"""The fast layers: `FastLSTM`, `FastGRU` and `FastSimpleRNN`, and their `parallel_chains` argument.

Each subclasses the stock Keras layer and replaces only `inner_loop()`: the
fast path when `fast_path_refusal` finds nothing against it, else the stock
loop. This module imports Keras only; the TensorFlow code (`driver.py` and
the cells' steps) is imported the first time a layer takes the fast path.
"""

from __future__ import annotations

import numbers
import os

import keras

from recurrent_mnist.fast_rnn import fallback
from recurrent_mnist.fast_rnn.fallback import fast_path_refusal

# The most chains a layer runs, whatever its setting.
MAX_CHAINS = 16

# `RowSequenceClassifier.predict` compiles with XLA on one thread for fast layers of at most this many units:
# there it measured 7 to 18 % faster than the graph; at 128 units level or slower for the GRU and SimpleRNN
# (benchmarks/gate_matmul_inference.py; docs/speed.md, "What the default path does", item 6).
PREDICT_XLA_MAX_UNITS = 127


def check_parallel_chains(parallel_chains):
    """`parallel_chains` as given ("auto" or an int), or ValueError (the layers' and the model's check)."""
    if isinstance(parallel_chains, str) and parallel_chains == "auto":
        return parallel_chains
    if isinstance(parallel_chains, bool) or not isinstance(parallel_chains, numbers.Integral) or parallel_chains < 1:
        raise ValueError(
            f'`parallel_chains` must be "auto" or an integer >= 1. Received: parallel_chains={parallel_chains!r}'
        )
    return int(parallel_chains)


def resolve_parallel_chains(parallel_chains="auto") -> int:
    """How many batch chains a fast layer with this `parallel_chains` runs, at most.

    Args:
        parallel_chains: `"auto"` (default) or an integer >= 1. `"auto"` is
            TensorFlow's inter-op thread count when it runs one intra-op
            thread (as `recurrent_mnist.environment.limit_threads(n)` sets it),
            else 1; it is read from TensorFlow's settings (or its
            `TF_NUM_*OP_THREADS` variables) now.

    Returns:
        The number, at most 16; 1 on other Keras backends. A layer also runs
        no chain thinner than 8 rows of a batch of known size, and one chain
        under XLA.

    Example:

    >>> resolve_parallel_chains(3)
    3
    """
    parallel_chains = check_parallel_chains(parallel_chains)
    if keras.backend.backend() != "tensorflow":
        return 1
    if parallel_chains != "auto":
        return min(parallel_chains, MAX_CHAINS)
    inter_op = _thread_setting("inter")
    if _thread_setting("intra") == 1 and inter_op > 1:
        return min(inter_op, MAX_CHAINS)
    return 1


def predicts_faster_with_xla(layers) -> bool:
    """Whether `predict` through these recurrent layers is compiled with XLA (`RowSequenceClassifier.predict`).

    True only where it was measured faster: TensorFlow on one thread (one
    intra-op and one inter-op thread, as `limit_threads(1)` sets them), no
    GPU, and every layer a float32 fast layer of at most
    `PREDICT_XLA_MAX_UNITS` units running one chain. With more threads the
    graph's parallel chains win; other layers and wrappers were not measured.
    """
    if keras.backend.backend() != "tensorflow" or not layers:
        return False
    if _thread_setting("intra") != 1 or _thread_setting("inter") != 1:
        return False
    return not fallback.gpu_available() and all(
        isinstance(layer, _FastRNN)
        and layer.units <= PREDICT_XLA_MAX_UNITS
        and layer.compute_dtype == "float32"
        and resolve_parallel_chains(layer.parallel_chains) == 1
        for layer in layers
    )


def _thread_setting(kind):
    """TensorFlow's intra- or inter-op thread count as configured: 0 = its default (all cores)."""
    import tensorflow as tf  # the backend: already loaded

    value = getattr(tf.config.threading, f"get_{kind}_op_parallelism_threads")()
    if value:
        return value
    try:
        return max(0, int(os.environ.get(f"TF_NUM_{kind.upper()}OP_THREADS", "0")))
    except ValueError:
        return 0


class _FastRNN:
    """What the three fast layers share: the `parallel_chains` argument and the outline of `inner_loop`."""

    def __init__(self, *args, parallel_chains="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.parallel_chains = check_parallel_chains(parallel_chains)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if fast_path_refusal(self, sequences, mask, training) is not None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        from recurrent_mnist.fast_rnn import driver

        return driver.run(self, sequences, initial_state, training, self._recurrence(sequences.shape[0]))

    def _recurrence(self, batch):
        """The cell's `driver.Recurrence` subclass for a static batch size (None: unknown)."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "parallel_chains": self.parallel_chains}


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastLSTM(_FastRNN, keras.layers.LSTM):
    """`keras.layers.LSTM` with a fast TensorFlow CPU path: same weights and results.

    Args:
        units: Positive integer, dimensionality of the output space.
        parallel_chains: `"auto"` (default) or an integer >= 1: how many
            independent recurrences the batch is cut into, for TensorFlow's
            inter-op threads to run side by side. `"auto"` is one per
            inter-op thread when TensorFlow runs one intra-op thread
            (`resolve_parallel_chains` says how many). No chain gets fewer
            than 8 rows of a batch of known size; one chain under XLA.
        **kwargs: the other arguments of `keras.layers.LSTM`.

    Call arguments and returns: those of `keras.layers.LSTM`.

    Example:

    >>> inputs = np.zeros((32, 28, 28), "float32")
    >>> output, h, c = FastLSTM(4, return_state=True, parallel_chains=2)(inputs)
    >>> output.shape, c.shape
    (TensorShape([32, 4]), TensorShape([32, 4]))
    """

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import lstm

        return lstm.recurrence(self.cell, batch)


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastGRU(_FastRNN, keras.layers.GRU):
    """`keras.layers.GRU` with a fast TensorFlow CPU path: same weights and results.

    Takes the arguments of `keras.layers.GRU` and `parallel_chains` (see `FastLSTM`).

    >>> FastGRU(4, return_sequences=True)(np.zeros((2, 28, 28), "float32")).shape
    TensorShape([2, 28, 4])
    """

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import gru

        return gru.recurrence(self.cell, batch)


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastSimpleRNN(_FastRNN, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` with a fast TensorFlow CPU path: same weights and results.

    Takes the arguments of `keras.layers.SimpleRNN` and `parallel_chains` (see `FastLSTM`).

    >>> FastSimpleRNN(4)(np.zeros((2, 28, 28), "float32")).shape
    TensorShape([2, 4])
    """

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import simple_rnn

        return simple_rnn.recurrence(self.cell, batch)
