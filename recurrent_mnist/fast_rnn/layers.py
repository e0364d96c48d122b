"""The fast layers (`FastLSTM`, `FastGRU`, `FastSimpleRNN`, `FastIndRNN`), `parallel_chains` and `gate_matmul`.

Each subclasses the stock layer (Keras's, or the project's `IndRNN`) and replaces only `inner_loop()`: the
fast path when `fast_path_refusal` finds nothing against it, else the stock
loop. This module imports Keras only; the TensorFlow code (`driver.py` and
the cells' steps) is imported the first time a layer takes the fast path.
"""

from __future__ import annotations

import keras

from recurrent_mnist.fast_rnn import fallback, threads
from recurrent_mnist.fast_rnn.fallback import fast_path_refusal
from recurrent_mnist.fast_rnn.threads import check_parallel_chains, resolve_parallel_chains
from recurrent_mnist.fast_rnn.thresholds import PREDICT_XLA_MAX_UNITS
from recurrent_mnist.indrnn import IndRNN

__all__ = ["FastGRU", "FastIndRNN", "FastLSTM", "FastSimpleRNN", "check_parallel_chains", "predicts_faster_with_xla"]

# The forms of the recurrent product of the LSTM and the reset-after GRU (`gate_matmul`).
GATE_MATMUL_FORMS = ("auto", "fused", "per_gate")


def predicts_faster_with_xla(layers) -> bool:
    """Whether `predict` through these recurrent layers is compiled with XLA (`RowSequenceClassifier.predict`).

    True only where XLA's fusion of each unrolled step's element-wise work
    was measured to pay (`thresholds.PREDICT_XLA_MAX_UNITS` names the command):
    TensorFlow on one thread (one intra-op and one inter-op thread, as
    `limit_threads(1)` sets them), no GPU, and every layer a float32 fast layer
    of at most `PREDICT_XLA_MAX_UNITS` units running one chain. With more
    threads the graph's parallel chains win; other layers (`FastIndRNN`
    among them) and wrappers were not measured.
    """
    if keras.backend.backend() != "tensorflow" or not layers:
        return False
    if threads.thread_setting("intra") != 1 or threads.thread_setting("inter") != 1:
        return False
    return not fallback.gpu_available() and all(
        isinstance(layer, (FastLSTM, FastGRU, FastSimpleRNN))
        and layer.units <= PREDICT_XLA_MAX_UNITS
        and layer.compute_dtype == "float32"
        and resolve_parallel_chains(layer.parallel_chains) == 1
        for layer in layers
    )


def check_gate_matmul(gate_matmul):
    """`gate_matmul` as given, or ValueError."""
    if not isinstance(gate_matmul, str) or gate_matmul not in GATE_MATMUL_FORMS:
        forms = ", ".join(f'"{form}"' for form in GATE_MATMUL_FORMS)
        raise ValueError(f"`gate_matmul` must be one of {forms}. Received: gate_matmul={gate_matmul!r}")
    return gate_matmul


class _FastRNN:
    """What the fast layers share: the `parallel_chains` argument and the outline of `inner_loop`."""

    # The activation the fast path computes; `fast_path_refusal` leaves any other to the stock loop.
    fast_activation = "tanh"

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


class _GatedFastRNN(_FastRNN):
    """The LSTM's and the GRU's `gate_matmul` argument: which form of their recurrent product runs."""

    def __init__(self, *args, gate_matmul="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.gate_matmul = check_gate_matmul(gate_matmul)

    def get_config(self):
        return {**super().get_config(), "gate_matmul": self.gate_matmul}


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastLSTM(_GatedFastRNN, keras.layers.LSTM):
    """`keras.layers.LSTM` with a fast TensorFlow CPU path: same weights and results.

    Args:
        units: Positive integer, dimensionality of the output space.
        parallel_chains: `"auto"` (default) or an integer >= 1: how many
            independent recurrences the batch is cut into, for TensorFlow's
            inter-op threads to run side by side. `"auto"` is one per
            inter-op thread when TensorFlow runs one intra-op thread
            (`resolve_parallel_chains` says how many). No chain gets fewer
            than `chains.MIN_CHAIN_ROWS` rows of a batch of known size; one
            chain under XLA.
        gate_matmul: the form of the recurrent product, `"auto"` (default),
            `"fused"` (one product for all gates, then a split of its
            columns) or `"per_gate"` (one product per gate, no split or
            concatenation). `"auto"` is fused under XLA, which fuses the split
            itself, and per gate without XLA from
            `thresholds.PER_GATE_MIN_UNITS` units for batches of at least
            `thresholds.PER_GATE_MIN_BATCH` rows or of unknown size. Both forms
            give the same results.
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

        return lstm.recurrence(self.cell, batch, self.gate_matmul)


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastGRU(_GatedFastRNN, keras.layers.GRU):
    """`keras.layers.GRU` with a fast TensorFlow CPU path: same weights and results.

    Takes the arguments of `keras.layers.GRU`, `parallel_chains` and
    `gate_matmul` (see `FastLSTM`); with `reset_after=False` the GRU has one
    form and `gate_matmul` changes nothing.

    >>> FastGRU(4, return_sequences=True)(np.zeros((2, 28, 28), "float32")).shape
    TensorShape([2, 28, 4])
    """

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import gru

        return gru.recurrence(self.cell, batch, self.gate_matmul)


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastSimpleRNN(_FastRNN, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` with a fast TensorFlow CPU path: same weights and results.

    Takes the arguments of `keras.layers.SimpleRNN` and `parallel_chains` (see `FastLSTM`).

    >>> FastSimpleRNN(4)(np.zeros((2, 28, 28), "float32")).shape
    TensorShape([2, 4])
    """

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import simple_rnn

        return simple_rnn.recurrence(self.cell)


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastIndRNN(_FastRNN, IndRNN):
    """`recurrent_mnist.indrnn.IndRNN` with a fast TensorFlow CPU path: same weights and results.

    Takes the arguments of `IndRNN` and `parallel_chains` (see `FastLSTM`).
    A step has no matrix product (each unit's recurrence is one weight), so
    the time loop is all the work there is besides the input projection.

    >>> FastIndRNN(4)(np.zeros((2, 28, 28), "float32")).shape
    TensorShape([2, 4])
    """

    fast_activation = "relu"

    def _recurrence(self, batch):
        from recurrent_mnist.fast_rnn import indrnn

        return indrnn.recurrence(self.cell)


# Their public home, as saved models and result files name them (recurrent_mnist.fast_rnn.FastLSTM).
for _layer_class in (FastGRU, FastIndRNN, FastLSTM, FastSimpleRNN):
    _layer_class.__module__ = "recurrent_mnist.fast_rnn"
del _layer_class
