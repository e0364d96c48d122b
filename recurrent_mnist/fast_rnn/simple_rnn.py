"""The SimpleRNN's forward and backward steps for the fast path (TensorFlow).

h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import Recurrence


def recurrence(cell):
    """The steps for a `keras.layers.SimpleRNNCell` (one form at every size and batch)."""
    return SimpleRNNSteps


class SimpleRNNSteps(Recurrence):
    """One (U, U) recurrent product and one tanh per step."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        self.xps = all_steps.projected_steps(x_tm, kernel, bias)
        self.outputs = []
        self.dz = [None] * self.time_steps

    def forward_step(self, t, states):
        (h,) = states
        h = tf.tanh(self.xps[t] + tf.matmul(h, self.recurrent_kernel))
        self.outputs.append(h)
        return [h]

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        dz = tf.raw_ops.TanhGrad(y=self.outputs[t], dy=dh)
        self.dz[t] = dz
        dh = tf.matmul(dz, self.recurrent_kernel_t)
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh]

    def gradients(self, h_prev_tm):
        return all_steps.weight_grads(self.x_tm, h_prev_tm, tf.stack(self.dz), self.kernel, self.with_bias)
