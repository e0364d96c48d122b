"""The matrix products that cover all time steps at once (TensorFlow).

Before the recurrence, the input projection of every step is one product;
after it, the gradients of the kernel, the recurrent kernel, the bias and the
inputs are each one product over all steps. Tensors are time-major: (T, B, N).
"""

from __future__ import annotations

import tensorflow as tf


def project(x_tm, kernel, bias):
    """(T, B, F) @ (F, G) + bias -> (T, B, G), one product for all steps."""
    t, f = x_tm.shape[0], x_tm.shape[2]
    g = kernel.shape[1]
    xp = tf.matmul(tf.reshape(x_tm, [-1, f]), kernel)
    if bias is not None:
        xp = tf.nn.bias_add(xp, bias)
    return tf.reshape(xp, [t, -1, g])


def projected_steps(x_tm, kernel, bias):
    """`project`, as a list of one (B, G) tensor per step."""
    return tf.unstack(project(x_tm, kernel, bias), num=x_tm.shape[0])


def flat(x):
    """(T, B, N) -> (T*B, N)."""
    return tf.reshape(x, [-1, x.shape[-1]])


def sum_rows_grad(a2, dz2, with_bias):
    """a2^T @ dz2 and, with_bias, also the column sums of dz2 (else None).

    The bias gradient is folded into the same product through a column of
    ones: a separate reduce_sum would read the whole (T*B, G) gradient a second
    time, which costs about as much as the product itself.
    """
    if not with_bias:
        return tf.matmul(a2, dz2, transpose_a=True), None
    ones = tf.ones_like(a2[:, :1])
    d = tf.matmul(tf.concat([a2, ones], axis=1), dz2, transpose_a=True)
    return d[:-1], d[-1]


def input_grads(x_tm, dxp2, kernel, with_bias):
    """Gradients of the inputs, the kernel and the input bias from those of the projection, (T*B, G)."""
    d_kernel, d_bias = sum_rows_grad(flat(x_tm), dxp2, with_bias)
    dx = tf.reshape(tf.matmul(dxp2, kernel, transpose_b=True), tf.shape(x_tm))
    return dx, d_kernel, d_bias


def weight_grads(x_tm, h_prev_tm, dz_tm, kernel, with_bias):
    """Gradients of the inputs, kernel, recurrent kernel and bias when z = x @ kernel + h_prev @ rk + bias."""
    dz2 = flat(dz_tm)
    dx, d_kernel, d_bias = input_grads(x_tm, dz2, kernel, with_bias)
    d_rk = tf.matmul(flat(h_prev_tm), dz2, transpose_a=True)
    return dx, d_kernel, d_rk, d_bias


def gate_weight_grads(x_tm, h_prev_tm, dx_gates, dm_gates, kernel, in_bias, rec_bias):
    """Weight and input gradients when each gate has its own products.

    dx_gates / dm_gates: one list per gate, of one (B, U) gradient per step,
    of the input projection / the recurrent product of that gate. One batched
    product per weight (all gates, all steps); bias gradients are folded in
    through a column of ones, as the last row of what is returned.

    Returns:
        dx, then the kernel's and the recurrent kernel's gradients, each
        (rows, G*U) with the gate-major columns of Keras.
    """
    F = x_tm.shape[2]
    U = h_prev_tm.shape[-1]
    G = len(dx_gates)
    dx3 = tf.reshape(tf.stack([d for g in dx_gates for d in g]), [G, -1, U])
    dm3 = tf.reshape(tf.stack([d for g in dm_gates for d in g]), [G, -1, U])
    x2 = flat(x_tm)
    h2 = flat(h_prev_tm)
    if in_bias:
        x2 = tf.concat([x2, tf.ones_like(x2[:, :1])], axis=1)
    if rec_bias:
        h2 = tf.concat([h2, tf.ones_like(h2[:, :1])], axis=1)
    dk3 = tf.matmul(x2[None], dx3, transpose_a=True)  # (G, F[+1], U)
    dr3 = tf.matmul(h2[None], dm3, transpose_a=True)  # (G, U[+1], U)
    d_kb = tf.reshape(tf.transpose(dk3, [1, 0, 2]), [-1, G * U])
    d_rb = tf.reshape(tf.transpose(dr3, [1, 0, 2]), [-1, G * U])
    k3 = tf.transpose(tf.reshape(kernel, [F, G, U]), [1, 2, 0])  # (G, U, F)
    dx = tf.reshape(tf.reduce_sum(tf.matmul(dx3, k3), axis=0), tf.shape(x_tm))
    return dx, d_kb, d_rb
