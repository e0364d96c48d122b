"""The IndRNN's forward and backward steps for the fast path (TensorFlow).

h_t = relu(x_t @ kernel + recurrent_kernel * h_{t-1} + bias), with
`recurrent_kernel` one weight per unit: a step has no matrix product at all,
only element-wise work on (B, U).
"""

from __future__ import annotations

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import Recurrence


def recurrence(cell):
    """The steps for a `recurrent_mnist.indrnn.IndRNNCell` (one form at every size and batch)."""
    return IndRNNSteps


class IndRNNSteps(Recurrence):
    """One element-wise product and one ReLU per step; the recurrent weights' gradient is one reduction."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        self.xps = all_steps.projected_steps(x_tm, kernel, bias)
        self.outputs = []
        self.dz = [None] * self.time_steps

    def forward_step(self, t, states):
        (h,) = states
        h = tf.nn.relu(self.xps[t] + h * self.recurrent_kernel)
        self.outputs.append(h)
        return [h]

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        # relu(z) > 0 exactly where z > 0: the output decides the derivative as the input would.
        dz = tf.raw_ops.ReluGrad(gradients=dh, features=self.outputs[t])
        self.dz[t] = dz
        dh = dz * self.recurrent_kernel
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh]

    def gradients(self, h_prev_tm):
        dz2 = all_steps.flat(tf.stack(self.dz))
        dx, d_kernel, d_bias = all_steps.input_grads(self.x_tm, dz2, self.kernel, self.with_bias)
        d_recurrent = tf.reduce_sum(all_steps.flat(h_prev_tm) * dz2, axis=0)
        return dx, d_kernel, d_recurrent, d_bias
