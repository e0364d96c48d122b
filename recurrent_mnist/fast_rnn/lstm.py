"""The LSTM's forward and backward steps for the fast path (TensorFlow); gate order i, f, c, o, as in Keras.

Two forms of the same arithmetic, which `driver.per_gate` chooses between:
`LSTMSteps` does one recurrent product per step for all four gates and one
tanh for all four gate activations; `LSTMPerGateSteps` does one (U, U)
product per gate, without splitting and concatenating gate blocks.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import Recurrence, per_gate


def recurrence(cell, batch, gate_matmul="auto"):
    """The steps for a `keras.layers.LSTMCell`, a static batch size (None: unknown) and a `gate_matmul` form."""
    return LSTMPerGateSteps if per_gate(cell.units, batch, gate_matmul) else LSTMSteps


def _cell_update(i, f, g, o, c_prev):
    """h and c after a step, and the derivative factors of its backward step, from the gate values."""
    c = f * c_prev + i * g
    tc = tf.tanh(c)
    h = o * tc
    gate_factors = (
        tf.raw_ops.SigmoidGrad(y=i, dy=g),
        tf.raw_ops.SigmoidGrad(y=f, dy=c_prev),
        tf.raw_ops.TanhGrad(y=g, dy=i),
        tf.raw_ops.SigmoidGrad(y=o, dy=tc),
    )
    return h, c, gate_factors, tf.raw_ops.TanhGrad(y=tc, dy=o)


class LSTMSteps(Recurrence):
    """One (U, 4U) recurrent product per step and one tanh over all four gates."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        # sigmoid(z) = 0.5 + 0.5 * tanh(z / 2): the i, f and o columns are halved
        # here and one tanh serves all four gates (as fast as separate sigmoid
        # and tanh ops, and fewer ops for XLA to compile).
        units = recurrent_kernel.shape[0]
        half = tf.constant([0.5] * (2 * units) + [1.0] * units + [0.5] * units, recurrent_kernel.dtype)
        half_kernel, self.half_recurrent_kernel = kernel * half, recurrent_kernel * half
        half_bias = None if bias is None else bias * half
        self.xps = all_steps.projected_steps(x_tm, half_kernel, half_bias)
        self.saved = []
        self.dz = [None] * self.time_steps

    def forward_step(self, t, states):
        h, c = states
        z = self.xps[t] + tf.matmul(h, self.half_recurrent_kernel)
        ti, tf_, g, to = tf.split(tf.tanh(z), 4, axis=1)
        i = 0.5 + 0.5 * ti
        f = 0.5 + 0.5 * tf_
        o = 0.5 + 0.5 * to
        h, c, gate_factors, q = _cell_update(i, f, g, o, c)
        self.saved.append((tf.concat(gate_factors, axis=1), q, f))
        return [h, c]

    def backward_step(self, t, d_states, d_prev_output):
        dh, dc = d_states
        m, q, f = self.saved[t]
        dc = dc + dh * q
        dz = tf.concat([dc, dc, dc, dh], axis=1) * m
        self.dz[t] = dz
        dh = tf.matmul(dz, self.recurrent_kernel_t)
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh, dc * f]

    def gradients(self, h_prev_tm):
        return all_steps.weight_grads(self.x_tm, h_prev_tm, tf.stack(self.dz), self.kernel, self.with_bias)


class LSTMPerGateSteps(Recurrence):
    """One (U, U) recurrent product per gate and step: no gate split or concat."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        kernels = tf.split(kernel, 4, axis=1)
        self.recurrent_kernels = tf.split(recurrent_kernel, 4, axis=1)
        biases = tf.split(bias, 4) if bias is not None else [None] * 4
        self.xs = [all_steps.projected_steps(x_tm, k, b) for k, b in zip(kernels, biases, strict=True)]
        self.saved = []
        self.dz = [[None] * self.time_steps for _ in range(4)]

    def forward_step(self, t, states):
        h, c = states
        activations = (tf.sigmoid, tf.sigmoid, tf.tanh, tf.sigmoid)
        i, f, g, o = [act(self.xs[k][t] + tf.matmul(h, self.recurrent_kernels[k])) for k, act in enumerate(activations)]
        h, c, gate_factors, q = _cell_update(i, f, g, o, c)
        self.saved.append((*gate_factors, q, f))
        return [h, c]

    @functools.cached_property
    def recurrent_kernels_t(self):
        return [tf.transpose(w) for w in self.recurrent_kernels]

    def backward_step(self, t, d_states, d_prev_output):
        dh, dc = d_states
        mi, mf, mg, mo, q, f = self.saved[t]
        dc = dc + dh * q
        dz = (dc * mi, dc * mf, dc * mg, dh * mo)
        terms = [tf.matmul(dz[k], self.recurrent_kernels_t[k]) for k in range(4)]
        if d_prev_output is not None:
            terms.append(d_prev_output)
        for k in range(4):
            self.dz[k][t] = dz[k]
        return [tf.add_n(terms), dc * f]

    def gradients(self, h_prev_tm):
        dx, d_kb, d_rk = all_steps.gate_weight_grads(
            self.x_tm, h_prev_tm, self.dz, self.dz, self.kernel, self.with_bias, False
        )
        features = self.x_tm.shape[2]
        return dx, d_kb[:features], d_rk, (d_kb[features] if self.with_bias else None)
