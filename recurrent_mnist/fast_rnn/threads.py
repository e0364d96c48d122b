"""How many batch chains a fast layer runs, from its `parallel_chains` setting and TensorFlow's thread pools.

The layers check the setting when they are made (`check_parallel_chains`); the
driver resolves it when a graph is traced (`resolve_parallel_chains`). This
module imports Keras only; TensorFlow, the backend, is read once Keras has
loaded it.
"""

from __future__ import annotations

import numbers
import os

import keras

from recurrent_mnist.fast_rnn.chains import MAX_CHAINS

__all__ = ["check_parallel_chains", "resolve_parallel_chains", "thread_setting"]


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
        The number, at most `MAX_CHAINS`; 1 on other Keras backends. A layer
        also runs no chain thinner than `MIN_CHAIN_ROWS` rows of a batch of
        known size (`chains.batch_chains`), and one chain under XLA.

    Example:

    >>> resolve_parallel_chains(3)
    3
    """
    parallel_chains = check_parallel_chains(parallel_chains)
    if keras.backend.backend() != "tensorflow":
        return 1
    if parallel_chains != "auto":
        return min(parallel_chains, MAX_CHAINS)
    inter_op = thread_setting("inter")
    if thread_setting("intra") == 1 and inter_op > 1:
        return min(inter_op, MAX_CHAINS)
    return 1


def thread_setting(kind):
    """TensorFlow's intra- or inter-op thread count as configured: 0 = its default (all cores)."""
    import tensorflow as tf  # the backend: already loaded

    value = getattr(tf.config.threading, f"get_{kind}_op_parallelism_threads")()
    if value:
        return value
    try:
        return max(0, int(os.environ.get(f"TF_NUM_{kind.upper()}OP_THREADS", "0")))
    except ValueError:
        return 0
