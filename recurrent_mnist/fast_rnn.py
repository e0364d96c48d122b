"""Fast drop-in recurrent layers for Keras 3 on the TensorFlow backend (CPU).

`FastLSTM`, `FastGRU` and `FastSimpleRNN` subclass the stock Keras layers, so
weights (names, shapes, gate order i,f,c,o / z,r,h), config, serialization
and every Keras feature are those of the stock layers.  Only `inner_loop()`
is overridden: when the configuration allows it, the recurrence runs through
a fast TensorFlow path:

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
  for units >= 128, one matmul per gate (avoids strided split/concat copies).

Everything else falls back to the stock implementation (`super().inner_loop`):
other backends, masks, non-default activations, recurrent dropout, a dynamic
number of time steps, implementation=1 with input dropout, and a GPU where the
stock layer would use cuDNN (or ``use_cudnn=True``).  Input dropout is applied
to the sequence (one mask for all steps, as the stock layers and the cuDNN
path do) before the fast path.

The numbers behind every choice are in docs/speed.md; `_CONFIG` holds the
knobs that were used to measure the alternatives.

The layers are registered as `recurrent_mnist>FastLSTM` (and so on), so models
that use them save and load with `safe_mode=True` in any process that has
imported `recurrent_mnist`. On other Keras backends (no TensorFlow) they are
the stock layers.
"""

from __future__ import annotations

import itertools
import os

import keras

try:  # The fast path is TensorFlow code; other backends get the stock layers.
    import tensorflow as tf
except ImportError:  # pragma: no cover - exercised only without TensorFlow
    tf = None

__all__ = ["FastGRU", "FastLSTM", "FastSimpleRNN"]

# Internal knobs, used by the benchmarks in this folder to measure levers.
# Defaults are the measured winners (see docs/speed.md).
_CONFIG = {
    # LSTM / GRU recurrent matmul: "fused" (one (U, G*U) matmul + gate split),
    # "per_gate" (one (U, U) matmul per gate, no strided split / concat), or
    # "auto": fused under XLA (XLA fuses the split for free, and the per-gate
    # form compiles to much slower code), per_gate without XLA when
    # units >= 128 (the split / concat copies then cost more than the extra
    # matmul calls), except for batches known to be smaller than 16 rows
    # (single-image prediction: there the extra calls cost more).
    "gate_matmul": "auto",
    # Independent recurrences over slices of the batch, one per inter-op
    # thread: an int, or "auto" = the inter-op thread count when intra-op is
    # one thread (`recurrent_mnist.environment.limit_threads`), else 1.  The
    # slices share nothing until the weight gradients are summed, so
    # TensorFlow's inter-op threads run them side by side with two hand-offs
    # per step, where intra-op threads would split every small matmul.  Never
    # under XLA, which runs one cluster on one thread.
    "batch_chains": "auto",
}

# Chains are not cut thinner than this many rows when the batch size is static.
_MIN_CHAIN_ROWS = 8
_MAX_CHAINS = 16


def _thread_setting(kind):
    """TensorFlow's intra- or inter-op thread count as configured: 0 = its default (all cores)."""
    getter = getattr(tf.config.threading, f"get_{kind}_op_parallelism_threads")
    value = getter()
    if value:
        return value
    try:
        return max(0, int(os.environ.get(f"TF_NUM_{kind.upper()}OP_THREADS", "0")))
    except ValueError:
        return 0


def parallel_chains():
    """How many batch slices the fast layers run side by side in this process (1 = none)."""
    if tf is None:
        return 1
    setting = _CONFIG["batch_chains"]
    if setting != "auto":
        return max(1, int(setting))
    inter = _thread_setting("inter")
    if _thread_setting("intra") == 1 and inter > 1:
        return min(inter, _MAX_CHAINS)
    return 1


def _chains_for(batch):
    if _in_xla():
        return 1
    k = parallel_chains()
    if batch is not None:
        k = max(1, min(k, batch // _MIN_CHAIN_ROWS))
    return k


def _chained(fn, x_tm, states, weights, n_states):
    """fn over `parallel_chains()` slices of the batch, outputs concatenated.

    `fn(x_tm, *states, *weights)` returns the states, preceded by the
    time-major output sequence when it returns more than `n_states` tensors.
    """
    k = _chains_for(x_tm.shape[1])
    if k == 1:
        return fn(x_tm, *states, *weights)
    b = tf.shape(x_tm)[1]
    cuts = [b * i // k for i in range(k + 1)]
    outs = []
    for lo, hi in itertools.pairwise(cuts):
        out = fn(x_tm[:, lo:hi], *[s[lo:hi] for s in states], *weights)
        outs.append(list(out) if isinstance(out, (list, tuple)) else [out])
    with_sequence = len(outs[0]) > n_states
    joined = [
        tf.concat([out[j] for out in outs], axis=1 if (with_sequence and j == 0) else 0) for j in range(len(outs[0]))
    ]
    return joined if len(joined) > 1 else joined[0]


def _is_tanh(fn):
    return fn in (keras.activations.tanh, keras.ops.tanh, tf.tanh, tf.math.tanh) if tf else False


def _is_sigmoid(fn):
    if tf is None:
        return False
    return fn in (
        keras.activations.sigmoid,
        keras.ops.sigmoid,
        tf.sigmoid,
        tf.math.sigmoid,
        tf.nn.sigmoid,
    )


def _gpu_available():
    return bool(tf.config.list_logical_devices("GPU"))


def _as_tensor(variable, dtype):
    return tf.cast(tf.convert_to_tensor(variable), dtype)


def _first(mask):
    if isinstance(mask, (list, tuple)):
        mask = mask[0] if mask else None
    return mask


def _project(x_tm, kernel, bias):
    """(T, B, F) @ (F, G) + bias -> (T, B, G), one matmul for all steps."""
    t, f = x_tm.shape[0], x_tm.shape[2]
    g = kernel.shape[1]
    xp = tf.matmul(tf.reshape(x_tm, [-1, f]), kernel)
    if bias is not None:
        xp = tf.nn.bias_add(xp, bias)
    return tf.reshape(xp, [t, -1, g])


def _flat(x):
    """(T, B, N) -> (T*B, N)."""
    return tf.reshape(x, [-1, x.shape[-1]])


def _sum_rows_grad(a2, dz2, with_bias):
    """a2^T @ dz2 and, with_bias, also the column sums of dz2.

    The bias gradient is folded into the same matmul through a column of
    ones (measured: a separate reduce_sum over (T*B, G) costs as much as
    the matmul on this CPU).
    """
    if not with_bias:
        return tf.matmul(a2, dz2, transpose_a=True), None
    ones = tf.ones_like(a2[:, :1])
    d = tf.matmul(tf.concat([a2, ones], axis=1), dz2, transpose_a=True)
    return d[:-1], d[-1]


def _weight_grads(x_tm, h_prev_tm, dz_tm, kernel, with_bias):
    """Gradients of kernel, recurrent kernel, bias and inputs, each one op."""
    dz2 = _flat(dz_tm)
    d_kernel, d_bias = _sum_rows_grad(_flat(x_tm), dz2, with_bias)
    d_rk = tf.matmul(_flat(h_prev_tm), dz2, transpose_a=True)
    dx = tf.reshape(tf.matmul(dz2, kernel, transpose_b=True), tf.shape(x_tm))
    return dx, d_kernel, d_rk, d_bias


def _in_xla():
    """True while tracing inside a jit_compile=True tf.function."""
    get = getattr(tf.__internal__, "get_enclosing_xla_context", None)
    return get is not None and get() is not None


_PER_GATE_MIN_BATCH = 16


def _per_gate(units, batch=None):
    mode = _CONFIG["gate_matmul"]
    if mode == "auto":
        return units >= 128 and not _in_xla() and (batch is None or batch >= _PER_GATE_MIN_BATCH)
    return mode == "per_gate"


# --------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------


def _lstm_forward(x_tm, h0, c0, kernel, rk, bias, saves):
    """Unrolled LSTM forward.  Gate order i, f, c, o (Keras).

    With `saves`, also returns, per step, what the hand-written backward
    needs: m_t = d(gate pre-activations)/d(c_t, c_t, c_t, h_t) factors,
    q_t = d c_t / d h_t factor, and f_t.  (Computed per step: measured
    cheaper than stacking and recomputing them vectorised; unused in
    inference graphs, where grappler/XLA prune them.)
    """
    T = x_tm.shape[0]
    # sigmoid(z) = 0.5 + 0.5 * tanh(z / 2): one tanh for all four gates (as
    # fast as sigmoid and tanh ops, and 30-50 % shorter XLA compiles).
    U = rk.shape[0]
    half = tf.constant([0.5] * (2 * U) + [1.0] * U + [0.5] * U, rk.dtype)
    kernel, rk = kernel * half, rk * half
    bias = None if bias is None else bias * half
    xps = tf.unstack(_project(x_tm, kernel, bias), num=T)
    h, c = h0, c0
    hs, cs, ms, qs, fs = [], [c0], [], [], []
    for t in range(T):
        z = xps[t] + tf.matmul(h, rk)
        ti, tf_, g, to = tf.split(tf.tanh(z), 4, axis=1)
        i = 0.5 + 0.5 * ti
        f = 0.5 + 0.5 * tf_
        o = 0.5 + 0.5 * to
        c_prev = c
        c = f * c + i * g
        tc = tf.tanh(c)
        h = o * tc
        hs.append(h)
        cs.append(c)
        if saves:
            ms.append(
                tf.concat(
                    [
                        tf.raw_ops.SigmoidGrad(y=i, dy=g),
                        tf.raw_ops.SigmoidGrad(y=f, dy=c_prev),
                        tf.raw_ops.TanhGrad(y=g, dy=i),
                        tf.raw_ops.SigmoidGrad(y=o, dy=tc),
                    ],
                    axis=1,
                )
            )
            qs.append(tf.raw_ops.TanhGrad(y=tc, dy=o))
            fs.append(f)
    return hs, cs, ms, qs, fs


def _make_lstm_fn(return_sequences, with_bias):
    def fn(x_tm, h0, c0, kernel, rk, *maybe_bias):
        @tf.custom_gradient
        def seq(x_tm, h0, c0, kernel, rk, *maybe_bias):
            bias = maybe_bias[0] if with_bias else None
            hs, cs, ms, qs, fs = _lstm_forward(x_tm, h0, c0, kernel, rk, bias, True)
            T = len(hs)

            def grad(*dys):
                if return_sequences:
                    d_seq, dh_last, dc = dys
                    d_steps = tf.unstack(d_seq, num=T)
                    dh = d_steps[-1] + dh_last
                else:
                    dh, dc = dys
                    d_steps = None
                rk_t = tf.transpose(rk)
                dzs = [None] * T
                for t in range(T - 1, -1, -1):
                    dc = dc + dh * qs[t]
                    dz = tf.concat([dc, dc, dc, dh], axis=1) * ms[t]
                    dzs[t] = dz
                    dh = tf.matmul(dz, rk_t)
                    if d_steps is not None and t > 0:
                        dh = dh + d_steps[t - 1]
                    dc = dc * fs[t]
                dz_tm = tf.stack(dzs)
                h_prev = tf.stack([h0, *hs[:-1]])
                dx, d_kernel, d_rk, d_bias = _weight_grads(x_tm, h_prev, dz_tm, kernel, with_bias)
                grads = [dx, dh, dc, d_kernel, d_rk]
                if with_bias:
                    grads.append(d_bias)
                return grads

            if return_sequences:
                return (tf.stack(hs), hs[-1], cs[-1]), grad
            return (hs[-1], cs[-1]), grad

        return seq(x_tm, h0, c0, kernel, rk, *maybe_bias)

    return fn


def _make_lstm_pg_fn(return_sequences, with_bias):
    """LSTM with one matmul per gate (no gate split / concat)."""

    def forward(x_tm, h0, c0, kernel, rk, bias, saves):
        T = x_tm.shape[0]
        ks = tf.split(kernel, 4, axis=1)
        rs_ = tf.split(rk, 4, axis=1)
        bs = tf.split(bias, 4) if bias is not None else [None] * 4
        xs = [tf.unstack(_project(x_tm, ks[k], bs[k]), num=T) for k in range(4)]
        acts = (tf.sigmoid, tf.sigmoid, tf.tanh, tf.sigmoid)
        h, c = h0, c0
        hs, cs, sv = [], [c0], []
        for t in range(T):
            i, f, g, o = [acts[k](xs[k][t] + tf.matmul(h, rs_[k])) for k in range(4)]
            c_prev = c
            c = f * c + i * g
            tc = tf.tanh(c)
            h = o * tc
            hs.append(h)
            cs.append(c)
            if saves:
                sv.append(
                    (
                        tf.raw_ops.SigmoidGrad(y=i, dy=g),
                        tf.raw_ops.SigmoidGrad(y=f, dy=c_prev),
                        tf.raw_ops.TanhGrad(y=g, dy=i),
                        tf.raw_ops.SigmoidGrad(y=o, dy=tc),
                        tf.raw_ops.TanhGrad(y=tc, dy=o),
                        f,
                    )
                )
        return hs, cs, sv

    def fn(x_tm, h0, c0, kernel, rk, *maybe_bias):
        @tf.custom_gradient
        def seq(x_tm, h0, c0, kernel, rk, *maybe_bias):
            bias = maybe_bias[0] if with_bias else None
            hs, cs, sv = forward(x_tm, h0, c0, kernel, rk, bias, True)
            T = len(hs)

            def grad(*dys):
                if return_sequences:
                    d_seq, dh_last, dc = dys
                    d_steps = tf.unstack(d_seq, num=T)
                    dh = d_steps[-1] + dh_last
                else:
                    dh, dc = dys
                    d_steps = None
                rts = [tf.transpose(w) for w in tf.split(rk, 4, axis=1)]
                dz = [[None] * T for _ in range(4)]
                for t in range(T - 1, -1, -1):
                    mi, mf, mg, mo, q, f = sv[t]
                    dc = dc + dh * q
                    d = (dc * mi, dc * mf, dc * mg, dh * mo)
                    terms = [tf.matmul(d[k], rts[k]) for k in range(4)]
                    if d_steps is not None and t > 0:
                        terms.append(d_steps[t - 1])
                    dh = tf.add_n(terms)
                    dc = dc * f
                    for k in range(4):
                        dz[k][t] = d[k]
                h_prev = tf.stack([h0, *hs[:-1]])
                dx, d_kb, d_rb = _gate_weight_grads(x_tm, h_prev, dz, dz, kernel, 4, with_bias, False)
                F = x_tm.shape[2]
                grads = [dx, dh, dc, d_kb[:F], d_rb]
                if with_bias:
                    grads.append(d_kb[F])
                return grads

            if return_sequences:
                return (tf.stack(hs), hs[-1], cs[-1]), grad
            return (hs[-1], cs[-1]), grad

        return seq(x_tm, h0, c0, kernel, rk, *maybe_bias)

    return fn


# --------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------


def _make_gru_fn(return_sequences, with_bias, reset_after):
    """GRU, gate order z, r, h (Keras).  bias: (2, 3U) if reset_after else (3U,)."""

    def forward(x_tm, h0, kernel, rk, bias, saves):
        T = x_tm.shape[0]
        U = rk.shape[0]
        if with_bias:
            in_bias = bias[0] if reset_after else bias
            rec_bias = bias[1] if reset_after else None
        else:
            in_bias = rec_bias = None
        xp = _project(x_tm, kernel, in_bias)
        xzr, xh = tf.split(xp, [2 * U, U], axis=2)
        xzrs = tf.unstack(xzr, num=T)
        xhs = tf.unstack(xh, num=T)
        if not reset_after:
            rk_zr, rk_h = tf.split(rk, [2 * U, U], axis=1)
        h = h0
        hs, sv = [], []
        for t in range(T):
            h_prev = h
            if reset_after:
                mm = tf.matmul(h, rk)
                if rec_bias is not None:
                    mm = tf.nn.bias_add(mm, rec_bias)
                mzr, mh = tf.split(mm, [2 * U, U], axis=1)
                z, r = tf.split(tf.sigmoid(xzrs[t] + mzr), 2, axis=1)
                hh = tf.tanh(xhs[t] + r * mh)
            else:
                z, r = tf.split(tf.sigmoid(xzrs[t] + tf.matmul(h, rk_zr)), 2, axis=1)
                rh = r * h
                hh = tf.tanh(xhs[t] + tf.matmul(rh, rk_h))
            h = z * h + (1.0 - z) * hh
            hs.append(h)
            if saves:
                one_minus_z = 1.0 - z
                p1 = tf.raw_ops.TanhGrad(y=hh, dy=one_minus_z)  # d a_hh / d h
                p2 = tf.raw_ops.SigmoidGrad(y=z, dy=h_prev - hh)  # d a_z / d h
                if reset_after:
                    p = tf.concat([p2, tf.raw_ops.SigmoidGrad(y=r, dy=mh), r], 1)
                    sv.append((z, p1, p))
                else:
                    p = tf.concat([p2, tf.raw_ops.SigmoidGrad(y=r, dy=h_prev)], 1)
                    sv.append((z, p1, p, r, rh))
        return hs, sv

    def fn(x_tm, h0, kernel, rk, *maybe_bias):
        @tf.custom_gradient
        def seq(x_tm, h0, kernel, rk, *maybe_bias):
            bias = maybe_bias[0] if with_bias else None
            hs, sv = forward(x_tm, h0, kernel, rk, bias, True)
            T = len(hs)
            U = rk.shape[0]

            def grad(*dys):
                if return_sequences:
                    d_seq, dh_last = dys
                    d_steps = tf.unstack(d_seq, num=T)
                    dh = d_steps[-1] + dh_last
                else:
                    (dh,) = dys
                    d_steps = None
                h_prev = tf.stack([h0, *hs[:-1]])
                dts, dahs = [None] * T, [None] * T
                if reset_after:
                    rk_t = tf.transpose(rk)
                    for t in range(T - 1, -1, -1):
                        z, p1, p = sv[t]
                        da_h = dh * p1
                        dm = tf.concat([dh, da_h, da_h], axis=1) * p
                        dts[t], dahs[t] = dm, da_h
                        dh = dh * z + tf.matmul(dm, rk_t)
                        if d_steps is not None and t > 0:
                            dh = dh + d_steps[t - 1]
                    dm_tm = tf.stack(dts)
                    dxp_tm = tf.concat([dm_tm[:, :, : 2 * U], tf.stack(dahs)], 2)
                    dm2 = _flat(dm_tm)
                    dxp2 = _flat(dxp_tm)
                    d_rk, d_rbias = _sum_rows_grad(_flat(h_prev), dm2, with_bias)
                else:
                    rk_zr, rk_h = tf.split(rk, [2 * U, U], axis=1)
                    rk_zr_t = tf.transpose(rk_zr)
                    rk_h_t = tf.transpose(rk_h)
                    for t in range(T - 1, -1, -1):
                        z, p1, p, r, _ = sv[t]
                        da_h = dh * p1
                        d_rh = tf.matmul(da_h, rk_h_t)
                        dzr = tf.concat([dh, d_rh], axis=1) * p
                        dts[t], dahs[t] = dzr, da_h
                        dh = dh * z + d_rh * r + tf.matmul(dzr, rk_zr_t)
                        if d_steps is not None and t > 0:
                            dh = dh + d_steps[t - 1]
                    dzr_tm = tf.stack(dts)
                    dah_tm = tf.stack(dahs)
                    rh_tm = tf.stack([s[4] for s in sv])
                    dxp2 = _flat(tf.concat([dzr_tm, dah_tm], axis=2))
                    d_rk = tf.concat(
                        [
                            tf.matmul(_flat(h_prev), _flat(dzr_tm), transpose_a=True),
                            tf.matmul(_flat(rh_tm), _flat(dah_tm), transpose_a=True),
                        ],
                        axis=1,
                    )
                    d_rbias = None
                d_kernel, d_bias = _sum_rows_grad(_flat(x_tm), dxp2, with_bias)
                if with_bias and reset_after:
                    d_bias = tf.stack([d_bias, d_rbias])
                dx = tf.reshape(tf.matmul(dxp2, kernel, transpose_b=True), tf.shape(x_tm))
                grads = [dx, dh, d_kernel, d_rk]
                if with_bias:
                    grads.append(d_bias)
                return grads

            if return_sequences:
                return (tf.stack(hs), hs[-1]), grad
            return hs[-1], grad

        return seq(x_tm, h0, kernel, rk, *maybe_bias)

    return fn


def _gate_weight_grads(x_tm, h_prev_tm, dx_gates, dm_gates, kernel, n_gates, in_bias, rec_bias):
    """Weight / input gradients for per-gate formulations.

    dx_gates / dm_gates: lists (one per gate) of lists (one per step) of
    (B, U) gradients of the input-projection / recurrent-matmul outputs.
    One batched matmul per weight (all gates, all steps); bias gradients are
    folded in through a column of ones.
    """
    F = x_tm.shape[2]
    U = h_prev_tm.shape[-1]
    G = n_gates
    dx3 = tf.reshape(tf.stack([d for g in dx_gates for d in g]), [G, -1, U])
    dm3 = tf.reshape(tf.stack([d for g in dm_gates for d in g]), [G, -1, U])
    x2 = _flat(x_tm)
    h2 = _flat(h_prev_tm)
    if in_bias:
        x2 = tf.concat([x2, tf.ones_like(x2[:, :1])], axis=1)
    if rec_bias:
        h2 = tf.concat([h2, tf.ones_like(h2[:, :1])], axis=1)
    dk3 = tf.matmul(x2[None], dx3, transpose_a=True)  # (G, F[+1], U)
    dr3 = tf.matmul(h2[None], dm3, transpose_a=True)  # (G, U[+1], U)
    # (G, rows, U) -> (rows, G*U), gate-major columns as in Keras
    d_kb = tf.reshape(tf.transpose(dk3, [1, 0, 2]), [-1, G * U])
    d_rb = tf.reshape(tf.transpose(dr3, [1, 0, 2]), [-1, G * U])
    k3 = tf.transpose(tf.reshape(kernel, [F, G, U]), [1, 2, 0])  # (G, U, F)
    dx = tf.reshape(tf.reduce_sum(tf.matmul(dx3, k3), axis=0), tf.shape(x_tm))
    return dx, d_kb, d_rb


def _make_gru_pg_fn(return_sequences, with_bias):
    """GRU (reset_after=True) with one matmul per gate: no split / concat of
    gate blocks (strided copies that cost more than the matmuls at large
    batch)."""

    def forward(x_tm, h0, kernel, rk, bias, saves):
        T = x_tm.shape[0]
        ks = tf.split(kernel, 3, axis=1)
        rs_ = tf.split(rk, 3, axis=1)
        if with_bias:
            b_in = tf.split(bias[0], 3)
            b_rec = tf.split(bias[1], 3)
        else:
            b_in = b_rec = [None] * 3
        xz, xr, xh = [tf.unstack(_project(x_tm, ks[k], b_in[k]), num=T) for k in range(3)]
        h = h0
        hs, sv = [], []
        for t in range(T):
            h_prev = h
            mm = []
            for k in range(3):
                m = tf.matmul(h, rs_[k])
                if b_rec[k] is not None:
                    m = tf.nn.bias_add(m, b_rec[k])
                mm.append(m)
            z = tf.sigmoid(xz[t] + mm[0])
            r = tf.sigmoid(xr[t] + mm[1])
            hh = tf.tanh(xh[t] + r * mm[2])
            h = hh + z * (h - hh)
            hs.append(h)
            if saves:
                sv.append(
                    (
                        z,
                        r,
                        tf.raw_ops.TanhGrad(y=hh, dy=1.0 - z),
                        tf.raw_ops.SigmoidGrad(y=z, dy=h_prev - hh),
                        tf.raw_ops.SigmoidGrad(y=r, dy=mm[2]),
                    )
                )
        return hs, sv

    def fn(x_tm, h0, kernel, rk, *maybe_bias):
        @tf.custom_gradient
        def seq(x_tm, h0, kernel, rk, *maybe_bias):
            bias = maybe_bias[0] if with_bias else None
            hs, sv = forward(x_tm, h0, kernel, rk, bias, True)
            T = len(hs)
            U = rk.shape[0]

            def grad(*dys):
                if return_sequences:
                    d_seq, dh_last = dys
                    d_steps = tf.unstack(d_seq, num=T)
                    dh = d_steps[-1] + dh_last
                else:
                    (dh,) = dys
                    d_steps = None
                rts = [tf.transpose(w) for w in tf.split(rk, 3, axis=1)]
                dz_l, dr_l, dh_l, da_l = [None] * T, [None] * T, [None] * T, [None] * T
                for t in range(T - 1, -1, -1):
                    z, r, p1, pz, pr = sv[t]
                    da_h = dh * p1
                    dmz = dh * pz
                    dmr = da_h * pr
                    dmh = da_h * r
                    terms = [
                        dh * z,
                        tf.matmul(dmz, rts[0]),
                        tf.matmul(dmr, rts[1]),
                        tf.matmul(dmh, rts[2]),
                    ]
                    if d_steps is not None and t > 0:
                        terms.append(d_steps[t - 1])
                    dh = tf.add_n(terms)
                    dz_l[t], dr_l[t], dh_l[t], da_l[t] = dmz, dmr, dmh, da_h
                h_prev = tf.stack([h0, *hs[:-1]])
                dx, d_kb, d_rb = _gate_weight_grads(
                    x_tm,
                    h_prev,
                    [dz_l, dr_l, da_l],
                    [dz_l, dr_l, dh_l],
                    kernel,
                    3,
                    with_bias,
                    with_bias,
                )
                F = x_tm.shape[2]
                grads = [dx, dh, d_kb[:F], d_rb[:U]]
                if with_bias:
                    grads.append(tf.stack([d_kb[F], d_rb[U]]))
                return grads

            if return_sequences:
                return (tf.stack(hs), hs[-1]), grad
            return hs[-1], grad

        return seq(x_tm, h0, kernel, rk, *maybe_bias)

    return fn


# --------------------------------------------------------------------------
# SimpleRNN
# --------------------------------------------------------------------------


def _make_simple_fn(return_sequences, with_bias):
    def forward(x_tm, h0, kernel, rk, bias):
        T = x_tm.shape[0]
        xps = tf.unstack(_project(x_tm, kernel, bias), num=T)
        h = h0
        hs = []
        for t in range(T):
            h = tf.tanh(xps[t] + tf.matmul(h, rk))
            hs.append(h)
        return hs

    def fn(x_tm, h0, kernel, rk, *maybe_bias):
        @tf.custom_gradient
        def seq(x_tm, h0, kernel, rk, *maybe_bias):
            bias = maybe_bias[0] if with_bias else None
            hs = forward(x_tm, h0, kernel, rk, bias)
            T = len(hs)

            def grad(*dys):
                if return_sequences:
                    d_seq, dh_last = dys
                    d_steps = tf.unstack(d_seq, num=T)
                    dh = d_steps[-1] + dh_last
                else:
                    (dh,) = dys
                    d_steps = None
                rk_t = tf.transpose(rk)
                dzs = [None] * T
                for t in range(T - 1, -1, -1):
                    dz = tf.raw_ops.TanhGrad(y=hs[t], dy=dh)
                    dzs[t] = dz
                    dh = tf.matmul(dz, rk_t)
                    if d_steps is not None and t > 0:
                        dh = dh + d_steps[t - 1]
                h_prev = tf.stack([h0, *hs[:-1]])
                dx, d_kernel, d_rk, d_bias = _weight_grads(x_tm, h_prev, tf.stack(dzs), kernel, with_bias)
                grads = [dx, dh, d_kernel, d_rk]
                if with_bias:
                    grads.append(d_bias)
                return grads

            if return_sequences:
                return (tf.stack(hs), hs[-1]), grad
            return hs[-1], grad

        return seq(x_tm, h0, kernel, rk, *maybe_bias)

    return fn


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


class _FastMixin:
    """Shared eligibility checks and input preparation."""

    def _fast_common_ok(self, sequences, mask):
        if tf is None or keras.backend.backend() != "tensorflow":
            return False
        if _first(mask) is not None:
            return False
        if sequences.shape.rank != 3 or sequences.shape[1] is None:
            return False
        if sequences.shape[-1] is None:
            return False
        cell = self.cell
        if cell.recurrent_dropout:
            return False
        return True

    def _fast_inputs(self, sequences, training):
        cell = self.cell
        x = sequences
        if training and cell.dropout:
            dp_mask = cell.get_dropout_mask(sequences[:, 0, :])
            if isinstance(dp_mask, (list, tuple)):
                return None
            x = x * tf.expand_dims(dp_mask, axis=1)
        if self.go_backwards:
            x = tf.reverse(x, axis=[1])
        return tf.transpose(x, [1, 0, 2])

    def _weights(self, dtype):
        cell = self.cell
        kernel = _as_tensor(cell.kernel, dtype)
        rk = _as_tensor(cell.recurrent_kernel, dtype)
        extra = []
        if cell.use_bias:
            extra.append(_as_tensor(cell.bias, dtype))
        return kernel, rk, extra

    def _cudnn_would_run(self, reset_after=True):
        # The stock layer will use cuDNN: leave it to the stock layer.
        cell = self.cell
        if self.use_cudnn is True:
            return True
        return self.use_cudnn == "auto" and cell.use_bias and reset_after and not self.unroll and _gpu_available()


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastLSTM(_FastMixin, keras.layers.LSTM):
    """`keras.layers.LSTM` with a fast TensorFlow CPU path (same weights)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if (
            self._cudnn_would_run()
            or not self._fast_common_ok(sequences, mask)
            or not _is_tanh(cell.activation)
            or not _is_sigmoid(cell.recurrent_activation)
        ):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        x_tm = self._fast_inputs(sequences, training)
        if x_tm is None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        kernel, rk, extra = self._weights(x_tm.dtype)
        h0 = tf.cast(initial_state[0], x_tm.dtype)
        c0 = tf.cast(initial_state[1], x_tm.dtype)
        if _per_gate(cell.units, sequences.shape[0]):
            fn = _make_lstm_pg_fn(self.return_sequences, cell.use_bias)
        else:
            fn = _make_lstm_fn(self.return_sequences, cell.use_bias)
        out = _chained(fn, x_tm, [h0, c0], [kernel, rk, *extra], 2)
        if self.return_sequences:
            seq_tm, h, c = out
            outputs = tf.transpose(seq_tm, [1, 0, 2])
        else:
            h, c = out
            outputs = tf.expand_dims(h, axis=1)
        return h, outputs, [h, c]


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastGRU(_FastMixin, keras.layers.GRU):
    """`keras.layers.GRU` with a fast TensorFlow CPU path (same weights)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if (
            self._cudnn_would_run(reset_after=cell.reset_after)
            or not self._fast_common_ok(sequences, mask)
            or not _is_tanh(cell.activation)
            or not _is_sigmoid(cell.recurrent_activation)
        ):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        x_tm = self._fast_inputs(sequences, training)
        if x_tm is None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        state = initial_state
        if isinstance(state, (list, tuple)):
            state = state[0]
        kernel, rk, extra = self._weights(x_tm.dtype)
        h0 = tf.cast(state, x_tm.dtype)
        if cell.reset_after and _per_gate(cell.units, sequences.shape[0]):
            fn = _make_gru_pg_fn(self.return_sequences, cell.use_bias)
        else:
            fn = _make_gru_fn(self.return_sequences, cell.use_bias, cell.reset_after)
        out = _chained(fn, x_tm, [h0], [kernel, rk, *extra], 1)
        if self.return_sequences:
            seq_tm, h = out
            outputs = tf.transpose(seq_tm, [1, 0, 2])
        else:
            h = out
            outputs = tf.expand_dims(h, axis=1)
        return h, outputs, [h]


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class FastSimpleRNN(_FastMixin, keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` with a fast TensorFlow CPU path (same weights)."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not self._fast_common_ok(sequences, mask) or not _is_tanh(cell.activation):
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        x_tm = self._fast_inputs(sequences, training)
        if x_tm is None:
            return super().inner_loop(sequences, initial_state, mask=mask, training=training)
        state = initial_state
        if isinstance(state, (list, tuple)):
            state = state[0]
        kernel, rk, extra = self._weights(x_tm.dtype)
        h0 = tf.cast(state, x_tm.dtype)
        fn = _make_simple_fn(self.return_sequences, cell.use_bias)
        out = _chained(fn, x_tm, [h0], [kernel, rk, *extra], 1)
        if self.return_sequences:
            seq_tm, h = out
            outputs = tf.transpose(seq_tm, [1, 0, 2])
        else:
            h = out
            outputs = tf.expand_dims(h, axis=1)
        return h, outputs, [h]
