"""The SimpleRNN's forward and backward steps for the fast path (TensorFlow).

h_t = tanh(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import OneStateRecurrence


def recurrence(cell):
    """The steps for a `keras.layers.SimpleRNNCell` (one form at every size and batch)."""
    return SimpleRNNSteps


class SimpleRNNSteps(OneStateRecurrence):
    """One (U, U) recurrent product and one tanh per step."""

    def activation(self, z):
        return tf.tanh(z)

    def activation_grad(self, y, dy):
        return tf.raw_ops.TanhGrad(y=y, dy=dy)

    def recurrent(self, h):
        return tf.matmul(h, self.recurrent_kernel)

    def recurrent_grad(self, dz):
        return tf.matmul(dz, self.recurrent_kernel_t)

    def gradients(self, h_prev_tm):
        return all_steps.weight_grads(self.x_tm, h_prev_tm, tf.stack(self.dz), self.kernel, self.with_bias)
