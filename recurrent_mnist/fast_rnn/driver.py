"""The fast path's driver (TensorFlow): the sequence around a cell's steps, its gradient, and the batch chains.

A cell (`lstm.py`, `gru.py`, `simple_rnn.py`, `indrnn.py`) is a `Recurrence`: its forward
step, its backward step and the products over all steps. `run` does the rest
for every cell: input dropout, `go_backwards`, the time-major layout, the time
loop unrolled in Python (the number of steps is static), the hand-written
backward pass through `tf.custom_gradient`, and the split of the batch into
parallel chains.
"""

from __future__ import annotations

import functools
import itertools

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.chains import chain_count, chain_cuts
from recurrent_mnist.fast_rnn.threads import resolve_parallel_chains
from recurrent_mnist.fast_rnn.thresholds import PER_GATE_MIN_BATCH, PER_GATE_MIN_UNITS


def in_xla():
    """True while tracing inside a jit_compile=True tf.function."""
    get = getattr(tf.__internal__, "get_enclosing_xla_context", None)
    return get is not None and get() is not None


def per_gate(units, batch=None, gate_matmul="auto"):
    """Whether the LSTM's or the reset-after GRU's recurrent product is done per gate.

    Args:
        units: the layer's units.
        batch: the static batch size, or None.
        gate_matmul: the layer's `gate_matmul`: `"fused"`, `"per_gate"`, or
            `"auto"`: fused under XLA (XLA fuses the gate split for free, and
            compiles the per-gate form to slower code), per gate without XLA
            from `PER_GATE_MIN_UNITS` units (the strided split / concat copies
            then cost more than the extra products), except for batches known
            to be smaller than `PER_GATE_MIN_BATCH` rows (a few images: there
            the extra calls cost more). Read when a graph is traced.
    """
    if gate_matmul == "auto":
        return units >= PER_GATE_MIN_UNITS and not in_xla() and (batch is None or batch >= PER_GATE_MIN_BATCH)
    return gate_matmul == "per_gate"


class Recurrence:
    """One cell's arithmetic, step by step; `run` drives it.

    Built inside the custom gradient from the time-major inputs and the
    weights. The driver calls `forward_step` for t = 0 .. T-1; when a gradient
    is asked for, `backward_step` for t = T-1 .. 0, then `gradients` once.
    The forward step keeps the derivative factors the backward step needs
    (cheaper than recomputing them in the backward pass; inference graphs
    prune them).
    """

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        self.x_tm = x_tm
        self.kernel = kernel
        self.recurrent_kernel = recurrent_kernel
        self.bias = bias
        self.with_bias = bias is not None
        self.time_steps = x_tm.shape[0]

    @functools.cached_property
    def recurrent_kernel_t(self):
        """The transposed recurrent kernel, made on first use (by the backward pass)."""
        return tf.transpose(self.recurrent_kernel)

    def forward_step(self, t, states):
        """The states after step t, the step's output first, from the states before it."""
        raise NotImplementedError

    def backward_step(self, t, d_states, d_prev_output):
        """The gradients of the states before step t from the gradients of the states after it.

        `d_prev_output` is the gradient that the returned sequence sends to
        the output of step t - 1, or None; the step adds it to the gradient of
        that output (the first state).
        """
        raise NotImplementedError

    def gradients(self, h_prev_tm):
        """dx, d_kernel, d_recurrent_kernel, d_bias (None without a bias) once the backward steps are done.

        `h_prev_tm` holds the output before each step, (T, B, U).
        """
        raise NotImplementedError


class OneStateRecurrence(Recurrence):
    """A cell whose one state is its output, `h_t = activation(x_t @ kernel + bias + recurrent(h_{t-1}))`.

    Subclasses give the activation, its gradient from the output, and the
    recurrent term and its gradient (a matrix product for the SimpleRNN, one
    weight per unit for IndRNN); the steps and the bookkeeping are here.
    """

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        self.xps = all_steps.projected_steps(x_tm, kernel, bias)
        self.outputs = []
        self.dz = [None] * self.time_steps

    def activation(self, z):
        raise NotImplementedError

    def activation_grad(self, y, dy):
        """d(loss)/dz from the output y = activation(z) and d(loss)/dy."""
        raise NotImplementedError

    def recurrent(self, h):
        raise NotImplementedError

    def recurrent_grad(self, dz):
        """d(loss)/d(h_{t-1}) through the recurrent term, from d(loss)/dz."""
        raise NotImplementedError

    def forward_step(self, t, states):
        (h,) = states
        h = self.activation(self.xps[t] + self.recurrent(h))
        self.outputs.append(h)
        return [h]

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        dz = self.activation_grad(self.outputs[t], dh)
        self.dz[t] = dz
        dh = self.recurrent_grad(dz)
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh]


def run(layer, sequences, initial_state, training, recurrence):
    """What `inner_loop` returns, computed by `recurrence` (a `Recurrence` subclass) for `layer`."""
    cell = layer.cell
    x = sequences
    if training and getattr(cell, "dropout", 0):  # IndRNN drops its inputs itself, before the loop
        # One mask for all steps, as the stock layers and cuDNN use.
        x = x * tf.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), axis=1)
    if layer.go_backwards:
        x = tf.reverse(x, axis=[1])
    x_tm = tf.transpose(x, [1, 0, 2])
    weights = [cell.kernel, cell.recurrent_kernel, *([cell.bias] if cell.use_bias else [])]
    weights = [tf.cast(tf.convert_to_tensor(w), x_tm.dtype) for w in weights]
    if not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    states = [tf.cast(s, x_tm.dtype) for s in initial_state]
    sequence = _differentiable(recurrence, layer.return_sequences, len(states))
    chains = _chain_count(layer.parallel_chains, x_tm.shape[1])
    out = _in_chains(sequence, chains, x_tm, states, weights, layer.return_sequences)
    if layer.return_sequences:
        seq_tm, *last = out
        outputs = tf.transpose(seq_tm, [1, 0, 2])
    else:
        last = out
        outputs = tf.expand_dims(last[0], axis=1)
    return last[0], outputs, last


def _differentiable(recurrence, return_sequences, n_states):
    """f(x_tm, *states, *weights) -> [sequence (T, B, U) if return_sequences, *last states], with its gradient."""

    @tf.custom_gradient
    def sequence(x_tm, *tensors):
        states, weights = list(tensors[:n_states]), tensors[n_states:]
        steps = recurrence(x_tm, *weights)
        outputs = []
        for t in range(steps.time_steps):
            states = steps.forward_step(t, states)
            outputs.append(states[0])

        def grad(*dys):
            if return_sequences:
                d_seq, *d_states = dys
                d_outputs = tf.unstack(d_seq, num=steps.time_steps)
                d_states[0] = d_outputs[-1] + d_states[0]
            else:
                d_states, d_outputs = list(dys), None
            for t in range(steps.time_steps - 1, -1, -1):
                d_prev_output = d_outputs[t - 1] if d_outputs is not None and t > 0 else None
                d_states = steps.backward_step(t, d_states, d_prev_output)
            dx, *d_weights = steps.gradients(tf.stack([tensors[0], *outputs[:-1]]))
            return [dx, *d_states, *d_weights[: len(weights)]]

        if return_sequences:
            return [tf.stack(outputs), *states], grad
        return list(states), grad

    return sequence


def _chain_count(setting, batch):
    """How many chains for a `parallel_chains` setting and a static batch size (None: unknown)."""
    if in_xla():  # XLA runs one cluster on one thread.
        return 1
    return chain_count(batch, resolve_parallel_chains(setting))


def _in_chains(sequence, chains, x_tm, states, weights, return_sequences):
    """`sequence` over `chains` slices of the batch, its outputs concatenated.

    The slices share nothing until the weight gradients are summed, so
    TensorFlow's inter-op threads run them side by side, with two hand-offs
    per step where intra-op threads would split every small product.
    """
    if chains == 1:
        return sequence(x_tm, *states, *weights)
    cuts = chain_cuts(tf.shape(x_tm)[1], chains)
    outs = [sequence(x_tm[:, lo:hi], *[s[lo:hi] for s in states], *weights) for lo, hi in itertools.pairwise(cuts)]
    joined = zip(*outs, strict=True)
    return [tf.concat(parts, axis=1 if (return_sequences and j == 0) else 0) for j, parts in enumerate(joined)]
