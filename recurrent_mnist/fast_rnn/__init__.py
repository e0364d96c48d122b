"""Fast drop-in recurrent layers for Keras 3 on the TensorFlow backend (CPU).

`FastLSTM`, `FastGRU` and `FastSimpleRNN` subclass the stock Keras layers, so
weights (names, shapes, gate order i,f,c,o / z,r,h), config (plus
`parallel_chains`), serialization and every Keras feature are those of the
stock layers. Only `inner_loop()`
is replaced: when `fast_path_refusal` finds nothing against it, the
recurrence runs through a fast TensorFlow path:

* the input projection of all time steps is one matmul before the recurrence;
* the time loop is unrolled in Python (the number of time steps is static);
* gate arithmetic is fused (few, large element-wise ops per step; LSTM: one
  tanh for all four gates);
* the backward pass is written by hand (`tf.custom_gradient`, BPTT): per step
  only a few element-wise ops and one ``dz @ recurrent_kernel^T`` matmul; the
  derivative factors it needs are produced per step by the forward pass; the
  gradients of `kernel`, `recurrent_kernel`, `bias` and of the inputs are each
  ONE matmul over all time steps at the end (bias folded into the kernel
  matmul);
* under XLA (``model.compile(jit_compile=True)``, detected at trace time) one
  recurrent matmul per step with the gate split fused by XLA; without XLA and
  for units >= 128, one matmul per gate (avoids strided split/concat copies);
* the batch runs as `parallel_chains` independent recurrences, side by side
  on TensorFlow's inter-op threads.

Input dropout is applied to the sequence (one mask for all steps, as the
stock layers and the cuDNN path do) before the fast path. The numbers behind
every choice are in docs/speed.md.

The modules: `layers` (the three layers and `resolve_parallel_chains`),
`fallback` (`fast_path_refusal`), and the TensorFlow code, imported the first
time a layer takes the fast path: `driver` (the sequence, its custom gradient
and the batch chains), `all_steps` (the products over all time steps), and
the cells' forward and backward steps in `lstm`, `gru` and `simple_rnn`.

The layers are registered as `recurrent_mnist>FastLSTM` (and so on), so models
that use them save and load with `safe_mode=True` in any process that has
imported `recurrent_mnist`. On other Keras backends they are the stock layers.
"""

from recurrent_mnist.fast_rnn.fallback import fast_path_refusal
from recurrent_mnist.fast_rnn.layers import FastGRU, FastLSTM, FastSimpleRNN, resolve_parallel_chains

__all__ = ["FastGRU", "FastLSTM", "FastSimpleRNN", "fast_path_refusal", "resolve_parallel_chains"]

# Their public home, as saved models and result files name them (recurrent_mnist.fast_rnn.FastLSTM).
for _layer_class in (FastGRU, FastLSTM, FastSimpleRNN):
    _layer_class.__module__ = __name__
del _layer_class
