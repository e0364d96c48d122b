"""Equivalence tests: fast_rnn layers vs stock Keras layers (same weights)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from recurrent_mnist.fast_rnn import FastGRU, FastLSTM, FastSimpleRNN, driver, fallback, layers

ATOL, RTOL = 1e-5, 1e-4

PAIRS = {
    "lstm": (keras.layers.LSTM, FastLSTM, {}),
    "gru": (keras.layers.GRU, FastGRU, {}),
    "gru_reset_before": (keras.layers.GRU, FastGRU, {"reset_after": False}),
    "rnn": (keras.layers.SimpleRNN, FastSimpleRNN, {}),
}


def _data(batch=5, steps=7, feat=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, steps, feat)).astype("float32")


def _perturbed_weights(layer, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    return [w + rng.standard_normal(w.shape).astype("float32") * scale for w in layer.get_weights()]


FAST_KW = {}  # the chains fixture sets parallel_chains here


def _twin(kind, units=8, **kw):
    stock_cls, fast_cls, extra = PAIRS[kind]
    return stock_cls(units, **extra, **kw), fast_cls(units, **extra, **kw, **FAST_KW)


def _loss_weights(y, seed=3):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.standard_normal(y.shape).astype("float32"))


def _outputs_and_grads(model, x, graph=True):
    """Outputs and d(loss)/d(input, all weights) for a random linear loss."""
    x = tf.constant(x)

    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            ys = model(x)
            ys = ys if isinstance(ys, (list, tuple)) else [ys]
            loss = 0.0
            for k, y in enumerate(ys):
                loss += tf.reduce_sum(tf.sin(y) * _loss_weights(y, seed=3 + k))
        grads = tape.gradient(loss, [x, *model.trainable_weights])
        return ys, grads

    if graph:
        f = tf.function(f)
    ys, grads = f(x)
    return [y.numpy() for y in ys], [g.numpy() for g in grads]


def _assert_same(a, b):
    ya, ga = a
    yb, gb = b
    assert len(ya) == len(yb) and len(ga) == len(gb)
    for p, q in zip(ya + ga, yb + gb, strict=False):
        np.testing.assert_allclose(q, p, atol=ATOL, rtol=RTOL)


def _build_pair(make, x, scale=0.3):
    """Build two models with make(fast: bool) and copy weights stock->fast."""
    stock, fast = make(False), make(True)
    stock(x)
    fast(x)
    ws = [
        w + np.random.default_rng(7 + i).standard_normal(w.shape).astype(w.dtype) * scale
        for i, w in enumerate(stock.get_weights())
    ]
    stock.set_weights(ws)
    fast.set_weights(ws)
    return stock, fast


# --------------------------------------------------------------------------
# single layers: outputs and gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"return_sequences": True},
        {"go_backwards": True},
        {"return_sequences": True, "go_backwards": True},
        {"return_state": True},
        {"return_sequences": True, "return_state": True},
        {"use_bias": False},
        {"unroll": True},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default",
)
@pytest.mark.parametrize("gate_matmul", ["fused", "per_gate"])
def test_layer_equivalence(kind, kw, gate_matmul, monkeypatch, graph=True):
    monkeypatch.setattr(driver, "GATE_MATMUL", gate_matmul)
    x = _data()
    stock, fast = _twin(kind, **kw)
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock)
    stock.set_weights(ws)
    fast.set_weights(ws)
    _assert_same(_outputs_and_grads(stock, x, graph), _outputs_and_grads(fast, x, graph))


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("gate_matmul", ["fused", "per_gate"])
def test_layer_equivalence_eager(kind, gate_matmul, monkeypatch):
    # Eager calls take the same fast path as traced ones.
    test_layer_equivalence(kind, {}, gate_matmul, monkeypatch, graph=False)


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("units", [16, 128])  # 128: "auto" picks per-gate matmuls
def test_mnist_shape_and_initial_state(kind, units):
    # 28 steps of 28 features, as in the project; explicit initial state.
    x = _data(batch=4, steps=28, feat=28)
    stock, fast = _twin(kind, units=units, return_sequences=True)
    n_states = 2 if kind == "lstm" else 1
    rng = np.random.default_rng(5)
    states = [tf.constant(rng.standard_normal((4, units)).astype("float32")) for _ in range(n_states)]
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock, scale=0.1 if units < 100 else 0.02)
    stock.set_weights(ws)
    fast.set_weights(ws)

    def run(layer):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch([xt, *states])
            y = layer(xt, initial_state=states)
            loss = tf.reduce_sum(tf.sin(y) * _loss_weights(y))
        g = tape.gradient(loss, [xt, *states, *layer.trainable_weights])
        return [y.numpy()], [v.numpy() for v in g]

    _assert_same(run(stock), run(fast))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_stateful_carries_state(kind):
    x = _data(batch=3, steps=7)
    x2 = _data(batch=3, steps=7, seed=9)
    stock, fast = _twin(kind, stateful=True, return_sequences=True)
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock)
    stock.set_weights(ws)
    fast.set_weights(ws)
    for chunk in (x, x2):  # second call starts from the carried state
        np.testing.assert_allclose(fast(chunk).numpy(), stock(chunk).numpy(), atol=ATOL, rtol=RTOL)
    fast.reset_state()
    stock.reset_state()
    np.testing.assert_allclose(fast(x2).numpy(), stock(x2).numpy(), atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------
# composite models
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional(kind, merge_mode):
    x = _data()

    def make(fast):
        layer = _twin(kind, return_sequences=True)[1 if fast else 0]
        return keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras.layers.Bidirectional(layer, merge_mode=merge_mode),
            ]
        )

    stock, fast = _build_pair(make, x)
    assert isinstance(fast.layers[0].backward_layer, type(fast.layers[0].forward_layer))
    assert fast.layers[0].backward_layer.go_backwards
    _assert_same(_outputs_and_grads(stock, x), _outputs_and_grads(fast, x))


def test_stacked_mixed():
    x = _data(steps=9)

    def make(fast):
        s = (
            (FastLSTM, FastGRU, FastSimpleRNN)
            if fast
            else (
                keras.layers.LSTM,
                keras.layers.GRU,
                keras.layers.SimpleRNN,
            )
        )
        return keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                s[0](8, return_sequences=True),
                s[1](7, return_sequences=True, go_backwards=True),
                s[2](6),
                keras.layers.Dense(3),
            ]
        )

    stock, fast = _build_pair(make, x)
    _assert_same(_outputs_and_grads(stock, x), _outputs_and_grads(fast, x))


# --------------------------------------------------------------------------
# fast path really taken / fallbacks give stock results
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
def test_fast_path_is_used(kind, monkeypatch):
    stock_cls = PAIRS[kind][0]

    def boom(*a, **k):
        raise AssertionError("stock inner_loop called")

    x = _data()
    _, fast = _twin(kind)
    fast(x)
    monkeypatch.setattr(stock_cls, "inner_loop", boom)
    fast(x)  # must not raise


@pytest.mark.parametrize("kind", list(PAIRS))
def test_mask_falls_back_to_stock(kind):
    x = _data()
    x[1, 4:] = 0.0
    x[3, 2:] = 0.0

    def make(fast):
        return keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras.layers.Masking(0.0),
                _twin(kind, return_sequences=True)[1 if fast else 0],
            ]
        )

    stock, fast = _build_pair(make, x)
    _assert_same(_outputs_and_grads(stock, x), _outputs_and_grads(fast, x))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_recurrent_dropout_falls_back(kind):
    x = _data()
    stock, fast = _twin(kind, recurrent_dropout=0.3, seed=11)
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock)
    stock.set_weights(ws)
    fast.set_weights(ws)
    for training in (True, False):
        np.testing.assert_allclose(
            fast(x, training=training).numpy(),
            stock(x, training=training).numpy(),
            atol=ATOL,
            rtol=RTOL,
        )


@pytest.mark.parametrize("kind", list(PAIRS))
def test_input_dropout_same_masks(kind):
    # Input dropout is applied (same per-batch mask as the stock layer, which
    # reuses one mask for all time steps) before the fast path.
    x = _data()
    stock, fast = _twin(kind, dropout=0.4, seed=13)
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock)
    stock.set_weights(ws)
    fast.set_weights(ws)
    for _ in range(2):
        np.testing.assert_allclose(
            fast(x, training=True).numpy(),
            stock(x, training=True).numpy(),
            atol=ATOL,
            rtol=RTOL,
        )


def test_custom_activation_falls_back(monkeypatch):
    x = _data()
    stock, fast = _twin("lstm", activation="relu")
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock, scale=0.05)
    stock.set_weights(ws)
    fast.set_weights(ws)
    _assert_same(_outputs_and_grads(stock, x), _outputs_and_grads(fast, x))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gpu_with_cudnn_defers_to_stock(kind, monkeypatch):
    # On a GPU the stock layer uses cuDNN: the fast layer must delegate.
    stock_cls = PAIRS[kind][0]
    calls = []
    orig = stock_cls.inner_loop

    def spy(self, *a, **k):
        calls.append(1)
        return orig(self, *a, **k)

    monkeypatch.setattr(stock_cls, "inner_loop", spy)
    monkeypatch.setattr(fallback, "_gpu_available", lambda: True)
    x = _data()
    _, fast = _twin(kind)
    fast(x)
    assert calls, "fast layer did not defer to the stock (cuDNN) implementation"


# --------------------------------------------------------------------------
# graph / shape / serialization / training
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
def test_dynamic_batch_size(kind):
    stock, fast = _twin(kind, return_sequences=True)
    x = _data(batch=3)
    stock.build(x.shape)
    fast.build(x.shape)
    ws = _perturbed_weights(stock)
    stock.set_weights(ws)
    fast.set_weights(ws)
    spec = tf.TensorSpec((None, 7, 6), tf.float32)
    f_stock = tf.function(lambda x: stock(x), input_signature=[spec])
    f_fast = tf.function(lambda x: fast(x), input_signature=[spec])
    for b in (3, 1, 11):
        xb = _data(batch=b, seed=b)
        np.testing.assert_allclose(f_fast(xb).numpy(), f_stock(xb).numpy(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_save_load_keras_safe_mode(kind, tmp_path):
    x = _data()
    fast = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            _twin(kind, return_sequences=True)[1],
            _twin(kind)[1],
            keras.layers.Dense(4),
        ]
    )
    fast.compile(optimizer="adam", loss="mse")
    fast.fit(x, np.zeros((len(x), 4), "float32"), epochs=1, verbose=0)  # the optimizer's state is saved too
    path = str(tmp_path / "m.keras")
    fast.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.layers[0]) is type(fast.layers[0])
    assert loaded.layers[0].get_config() == fast.layers[0].get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), fast.predict(x, verbose=0))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_config_matches_stock(kind):
    stock, fast = _twin(kind, return_sequences=True, go_backwards=True)
    assert fast.get_config() == {**stock.get_config(), "name": fast.name, "parallel_chains": "auto"}
    clone = type(fast).from_config(fast.get_config())
    assert clone.get_config() == fast.get_config()


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize(
    ("jit", "units"),
    # Under XLA the fused gate matmul is used at every size, so one size covers it.
    [(False, 12), (False, 128), (True, 12)],
    ids=["graph-12", "graph-128", "xla-12"],
)
def test_fit_matches_stock(kind, jit, units):
    # A few optimizer steps through model.fit give the same weights.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 64)

    def make(fast):
        layer = _twin(kind, units=units)[1 if fast else 0]
        return keras.Sequential([keras.Input((28, 28)), layer, keras.layers.Dense(10)])

    stock, fast = _build_pair(make, x, scale=0.3 if units < 100 else 0.03)
    for m in (stock, fast):
        m.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
            steps_per_execution=2,
        )
    h_stock = stock.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_fast = fast.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_fast.history["loss"], h_stock.history["loss"], rtol=1e-4)
    for a, b in zip(stock.get_weights(), fast.get_weights(), strict=False):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-3)


def test_mixed_bfloat16_runs_close_to_stock():
    x = _data(steps=28, feat=28)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        stock, fast = _twin("lstm", units=16)
        stock.build(x.shape)
        fast.build(x.shape)
        ws = _perturbed_weights(stock, scale=0.05)
        stock.set_weights(ws)
        fast.set_weights(ws)
        ys, yf = stock(x), fast(x)
        assert yf.dtype == ys.dtype
        np.testing.assert_allclose(
            tf.cast(yf, "float32").numpy(),
            tf.cast(ys, "float32").numpy(),
            atol=3e-2,
        )
    finally:
        keras.mixed_precision.set_global_policy(policy)


# --------------------------------------------------------------------------
# parallel batch chains (several inter-op threads)
# --------------------------------------------------------------------------


@pytest.fixture
def chains(monkeypatch):
    """Runs the fast layers in `n` batch chains, however small the batch."""

    def use(n):
        monkeypatch.setitem(FAST_KW, "parallel_chains", n)
        monkeypatch.setattr(driver, "MIN_CHAIN_ROWS", 1)

    return use


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize(
    "kw",
    [{}, {"return_sequences": True, "go_backwards": True}, {"return_sequences": True, "return_state": True}],
    ids=["default", "sequences,backwards", "sequences,state"],
)
@pytest.mark.parametrize("gate_matmul", ["fused", "per_gate"])
def test_chains_equivalence(kind, kw, gate_matmul, chains, monkeypatch):
    # Batch 5 in 3 chains of 1, 2 and 2 rows: outputs and every gradient as the stock layer's.
    chains(3)
    test_layer_equivalence(kind, kw, gate_matmul, monkeypatch)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_chains_split_the_batch(kind, chains, monkeypatch):
    chains(2)
    seen = []
    real = driver._in_chains

    def spy(sequence, chains, *args):
        seen.append(chains)
        return real(sequence, chains, *args)

    monkeypatch.setattr(driver, "_in_chains", spy)
    fast = _twin(kind)[1]
    fast(_data(batch=4))
    assert seen == [2]


@pytest.mark.parametrize("kind", list(PAIRS))
def test_chains_with_dynamic_batch_size(kind, chains):
    # Batch 1 in two chains leaves one chain empty.
    chains(2)
    test_dynamic_batch_size(kind)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_fit_matches_stock_in_chains(kind, chains):
    chains(2)
    test_fit_matches_stock(kind, False, 12)


def test_chain_count_follows_the_thread_settings(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "4")
    assert layers.resolve_parallel_chains("auto") == 4
    assert driver._chain_count("auto", 50) == 4
    assert driver._chain_count("auto", 20) == 2  # no chain thinner than MIN_CHAIN_ROWS rows
    assert driver._chain_count("auto", 3) == 1
    assert driver._chain_count("auto", None) == 4  # batch size unknown while tracing
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")  # intra-op threads split the matmuls instead
    assert layers.resolve_parallel_chains("auto") == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")  # TensorFlow's default: every core for both
    assert layers.resolve_parallel_chains("auto") == 1
    assert layers.resolve_parallel_chains(3) == 3


def test_no_chains_under_xla(monkeypatch):
    seen = []
    f = tf.function(lambda: seen.append(driver._chain_count(2, 50)) or tf.constant(0), jit_compile=True)
    f()
    assert seen == [1]


def test_automatic_gate_matmul_form():
    # Per gate from 128 units (training, large batches); one fused product for
    # small units and for single-image prediction, where the extra calls cost more.
    assert driver.per_gate(128) and driver.per_gate(128, 1024) and driver.per_gate(256, 16)
    assert not driver.per_gate(100) and not driver.per_gate(128, 1) and not driver.per_gate(128, 15)
