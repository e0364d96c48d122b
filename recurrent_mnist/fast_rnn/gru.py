"""The GRU's forward and backward steps for the fast path (TensorFlow); gate order z, r, h, as in Keras.

Three forms. With the reset gate applied after the recurrent product
(`reset_after=True`, Keras's default and cuDNN's; bias (2, 3U): input and
recurrent), `driver.per_gate` chooses between one recurrent product per step
(`GRUSteps`) and one per gate (`GRUPerGateSteps`). With the reset gate applied
before it (`reset_after=False`; bias (3U,)), the candidate's product needs the
reset gate first: two products per step (`GRUResetBeforeSteps`).
"""

from __future__ import annotations

import functools

import tensorflow as tf

from recurrent_mnist.fast_rnn import all_steps
from recurrent_mnist.fast_rnn.driver import Recurrence, per_gate


def recurrence(cell, batch, gate_matmul="auto"):
    """The steps for a `keras.layers.GRUCell`, a static batch size (None: unknown) and a `gate_matmul` form."""
    if not cell.reset_after:
        return GRUResetBeforeSteps
    return GRUPerGateSteps if per_gate(cell.units, batch, gate_matmul) else GRUSteps


def _update(z, hh, h_prev):
    """h = z * h_prev + (1 - z) * hh, and the derivative factors of hh and z for the backward step."""
    one_minus_z = 1.0 - z
    h = z * h_prev + one_minus_z * hh
    return h, tf.raw_ops.TanhGrad(y=hh, dy=one_minus_z), tf.raw_ops.SigmoidGrad(y=z, dy=h_prev - hh)


class _FusedGRU(Recurrence):
    """The input projection of all steps, split into the z and r columns and the candidate's."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias, input_bias):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        self.units = recurrent_kernel.shape[0]
        xzr, xh = tf.split(all_steps.project(x_tm, kernel, input_bias), [2 * self.units, self.units], axis=2)
        self.xzrs = tf.unstack(xzr, num=self.time_steps)
        self.xhs = tf.unstack(xh, num=self.time_steps)
        self.saved = []
        self.da_h = [None] * self.time_steps  # per step, the gradient of the candidate's pre-activation


class GRUSteps(_FusedGRU):
    """reset_after=True: one (U, 3U) recurrent product per step."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias, None if bias is None else bias[0])
        self.recurrent_bias = None if bias is None else bias[1]
        self.dm = [None] * self.time_steps  # per step, the gradient of the recurrent product

    def forward_step(self, t, states):
        (h,) = states
        mm = tf.matmul(h, self.recurrent_kernel)
        if self.recurrent_bias is not None:
            mm = tf.nn.bias_add(mm, self.recurrent_bias)
        mzr, mh = tf.split(mm, [2 * self.units, self.units], axis=1)
        z, r = tf.split(tf.sigmoid(self.xzrs[t] + mzr), 2, axis=1)
        hh = tf.tanh(self.xhs[t] + r * mh)
        h_next, p_h, p_z = _update(z, hh, h)
        self.saved.append((z, p_h, tf.concat([p_z, tf.raw_ops.SigmoidGrad(y=r, dy=mh), r], 1)))
        return [h_next]

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        z, p_h, p = self.saved[t]
        da_h = dh * p_h
        dm = tf.concat([dh, da_h, da_h], axis=1) * p
        self.dm[t], self.da_h[t] = dm, da_h
        dh = dh * z + tf.matmul(dm, self.recurrent_kernel_t)
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh]

    def gradients(self, h_prev_tm):
        dm_tm = tf.stack(self.dm)
        dxp2 = all_steps.flat(tf.concat([dm_tm[:, :, : 2 * self.units], tf.stack(self.da_h)], 2))
        h_prev2 = all_steps.flat(h_prev_tm)
        d_rk, d_recurrent_bias = all_steps.sum_rows_grad(h_prev2, all_steps.flat(dm_tm), self.with_bias)
        dx, d_kernel, d_input_bias = all_steps.input_grads(self.x_tm, dxp2, self.kernel, self.with_bias)
        return dx, d_kernel, d_rk, (tf.stack([d_input_bias, d_recurrent_bias]) if self.with_bias else None)


class GRUResetBeforeSteps(_FusedGRU):
    """reset_after=False: a (U, 2U) product for z and r, then a (U, U) one of r * h for the candidate."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias, bias)
        self.rk_zr, self.rk_h = tf.split(recurrent_kernel, [2 * self.units, self.units], axis=1)
        self.dzr = [None] * self.time_steps  # per step, the gradient of the z and r pre-activations

    def forward_step(self, t, states):
        (h,) = states
        z, r = tf.split(tf.sigmoid(self.xzrs[t] + tf.matmul(h, self.rk_zr)), 2, axis=1)
        rh = r * h
        hh = tf.tanh(self.xhs[t] + tf.matmul(rh, self.rk_h))
        h_next, p_h, p_z = _update(z, hh, h)
        self.saved.append((z, p_h, tf.concat([p_z, tf.raw_ops.SigmoidGrad(y=r, dy=h)], 1), r, rh))
        return [h_next]

    @functools.cached_property
    def recurrent_kernels_t(self):
        return tf.transpose(self.rk_zr), tf.transpose(self.rk_h)

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        z, p_h, p, r, _ = self.saved[t]
        rk_zr_t, rk_h_t = self.recurrent_kernels_t
        da_h = dh * p_h
        d_rh = tf.matmul(da_h, rk_h_t)
        dzr = tf.concat([dh, d_rh], axis=1) * p
        self.dzr[t], self.da_h[t] = dzr, da_h
        dh = dh * z + d_rh * r + tf.matmul(dzr, rk_zr_t)
        if d_prev_output is not None:
            dh = dh + d_prev_output
        return [dh]

    def gradients(self, h_prev_tm):
        dzr_tm = tf.stack(self.dzr)
        dah_tm = tf.stack(self.da_h)
        rh_tm = tf.stack([saved[4] for saved in self.saved])
        dxp2 = all_steps.flat(tf.concat([dzr_tm, dah_tm], axis=2))
        d_rk = tf.concat(
            [
                tf.matmul(all_steps.flat(h_prev_tm), all_steps.flat(dzr_tm), transpose_a=True),
                tf.matmul(all_steps.flat(rh_tm), all_steps.flat(dah_tm), transpose_a=True),
            ],
            axis=1,
        )
        dx, d_kernel, d_bias = all_steps.input_grads(self.x_tm, dxp2, self.kernel, self.with_bias)
        return dx, d_kernel, d_rk, d_bias


class GRUPerGateSteps(Recurrence):
    """reset_after=True with one (U, U) recurrent product per gate and step: no gate split or concat."""

    def __init__(self, x_tm, kernel, recurrent_kernel, bias=None):
        super().__init__(x_tm, kernel, recurrent_kernel, bias)
        kernels = tf.split(kernel, 3, axis=1)
        self.recurrent_kernels = tf.split(recurrent_kernel, 3, axis=1)
        if bias is not None:
            input_biases = tf.split(bias[0], 3)
            self.recurrent_biases = tf.split(bias[1], 3)
        else:
            input_biases = self.recurrent_biases = [None] * 3
        self.xz, self.xr, self.xh = [
            all_steps.projected_steps(x_tm, k, b) for k, b in zip(kernels, input_biases, strict=True)
        ]
        self.saved = []
        # Per step, the gradients of the z, r and candidate products of h and of the candidate's input projection.
        self.dmz, self.dmr, self.dmh, self.da_h = ([None] * self.time_steps for _ in range(4))

    def forward_step(self, t, states):
        (h,) = states
        mm = []
        for rk, b in zip(self.recurrent_kernels, self.recurrent_biases, strict=True):
            m = tf.matmul(h, rk)
            mm.append(m if b is None else tf.nn.bias_add(m, b))
        z = tf.sigmoid(self.xz[t] + mm[0])
        r = tf.sigmoid(self.xr[t] + mm[1])
        hh = tf.tanh(self.xh[t] + r * mm[2])
        self.saved.append(
            (
                z,
                r,
                tf.raw_ops.TanhGrad(y=hh, dy=1.0 - z),
                tf.raw_ops.SigmoidGrad(y=z, dy=h - hh),
                tf.raw_ops.SigmoidGrad(y=r, dy=mm[2]),
            )
        )
        return [hh + z * (h - hh)]

    @functools.cached_property
    def recurrent_kernels_t(self):
        return [tf.transpose(w) for w in self.recurrent_kernels]

    def backward_step(self, t, d_states, d_prev_output):
        (dh,) = d_states
        z, r, p_h, p_z, p_r = self.saved[t]
        da_h = dh * p_h
        dmz = dh * p_z
        dmr = da_h * p_r
        dmh = da_h * r
        rz_t, rr_t, rh_t = self.recurrent_kernels_t
        terms = [dh * z, tf.matmul(dmz, rz_t), tf.matmul(dmr, rr_t), tf.matmul(dmh, rh_t)]
        if d_prev_output is not None:
            terms.append(d_prev_output)
        self.dmz[t], self.dmr[t], self.dmh[t], self.da_h[t] = dmz, dmr, dmh, da_h
        return [tf.add_n(terms)]

    def gradients(self, h_prev_tm):
        dx, d_kb, d_rb = all_steps.gate_weight_grads(
            self.x_tm,
            h_prev_tm,
            [self.dmz, self.dmr, self.da_h],
            [self.dmz, self.dmr, self.dmh],
            self.kernel,
            self.with_bias,
            self.with_bias,
        )
        features, units = self.x_tm.shape[2], self.recurrent_kernel.shape[0]
        d_bias = tf.stack([d_kb[features], d_rb[units]]) if self.with_bias else None
        return dx, d_kb[:features], d_rb[:units], d_bias
