"""Fast drop-in recurrent layers for Keras 3 on the TensorFlow backend (CPU).

`FastLSTM`, `FastGRU` and `FastSimpleRNN` subclass the stock Keras layers, and
`FastIndRNN` the project's `recurrent_mnist.indrnn.IndRNN`, so
weights (names, shapes, gate order i,f,c,o / z,r,h), config (plus
`parallel_chains`, and `gate_matmul` for the LSTM and GRU), serialization and
every Keras feature are those of the stock layers. Only `inner_loop()` is
replaced: when `fast_path_refusal` finds nothing against it, the
recurrence runs through a fast TensorFlow path:

* the input projection of all time steps is one matmul before the recurrence;
* the time loop is unrolled in Python (the number of time steps is static);
* gate arithmetic is fused (few, large element-wise ops per step; LSTM: one
  tanh for all four gates; IndRNN: no product at all in a step);
* the backward pass is written by hand (`tf.custom_gradient`, BPTT): per step
  only a few element-wise ops and one ``dz @ recurrent_kernel^T`` matmul; the
  derivative factors it needs are produced per step by the forward pass; the
  gradients of `kernel`, `recurrent_kernel`, `bias` and of the inputs are each
  ONE matmul over all time steps at the end (bias folded into the kernel
  matmul);
* under XLA (``model.compile(jit_compile=True)``, detected at trace time) one
  recurrent matmul per step with the gate split fused by XLA; without XLA and
  from `thresholds.PER_GATE_MIN_UNITS` units, one matmul per gate (avoids
  strided split/concat copies); the `gate_matmul` argument chooses otherwise;
* the batch runs as `parallel_chains` independent recurrences, side by side
  on TensorFlow's inter-op threads.

Input dropout is applied to the sequence (one mask for all steps, as the
stock layers and the cuDNN path do) before the fast path. Every tuned
threshold is in `thresholds`, with the benchmark command that set it; the
figures are in docs/speed.md.

The modules, each importing only those after it: `layers` (the four
layers), then the TensorFlow code, imported the first time a layer takes the
fast path: the cells' forward and backward steps in `lstm`, `gru`,
`simple_rnn` and `indrnn`, `driver` (the sequence, its custom gradient and the batch
chains) and `all_steps` (the products over all time steps); then `fallback`
(`fast_path_refusal`) and `threads` (`resolve_parallel_chains`); last, with
no Keras and no TensorFlow, `chains` (how a batch is cut) and `thresholds`.
This package imports nothing until one of its names is used, so that a
process without Keras can import `chains` and `thresholds`.

The layers are registered as `recurrent_mnist>FastLSTM` (and so on), so models
that use them save and load with `safe_mode=True` in any process that has
imported `recurrent_mnist`. On other Keras backends they are the stock layers.
"""

from recurrent_mnist.lazy import lazy_names

# The public names, and the module of each: the four layers, the refusal rule, the chain count.
_NAMES = {
    **dict.fromkeys(("FastGRU", "FastIndRNN", "FastLSTM", "FastSimpleRNN"), "layers"),
    "fast_path_refusal": "fallback",
    "resolve_parallel_chains": "threads",
}
__getattr__ = lazy_names(__name__, _NAMES)


__all__ = sorted(_NAMES)
