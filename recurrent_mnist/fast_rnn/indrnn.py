"""The IndRNN's forward and backward steps for the fast path (TensorFlow).

h_t = relu(x_t @ kernel + recurrent_kernel * h_{t-1} + bias), with
`recurrent_kernel` one weight per unit: a step has no matrix product at all,
only element-wise work on (B, U).
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import OneStateRecurrence


def recurrence(cell):
    """The steps for a `recurrent_mnist.indrnn.IndRNNCell` (one form at every size and batch)."""
    return IndRNNSteps


class IndRNNSteps(OneStateRecurrence):
    """One element-wise product and one ReLU per step; the recurrent weights' gradient is one reduction."""

    def activation(self, z):
        return tf.nn.relu(z)

    def activation_grad(self, y, dy):
        # relu(z) > 0 exactly where z > 0: the output decides the derivative as the input would.
        return tf.raw_ops.ReluGrad(gradients=dy, features=y)

    def recurrent(self, h):
        return h * self.recurrent_kernel

    def recurrent_grad(self, dz):
        return dz * self.recurrent_kernel

    def gradients(self, h_prev_tm):
        dz2 = all_steps.flat(tf.stack(self.dz))
        dx, d_kernel, d_bias = all_steps.input_grads(self.x_tm, dz2, self.kernel, self.with_bias)
        d_recurrent = tf.reduce_sum(all_steps.flat(h_prev_tm) * dz2, axis=0)
        return dx, d_kernel, d_recurrent, d_bias
