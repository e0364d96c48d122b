"""The fast layers against the stock Keras layers with the same weights: outputs and every gradient, training,
serialization, the batch chains, and each reason for which the fast path leaves a call to the stock loop."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import recurrent_mnist.fast_rnn.chains as chain_arithmetic
from recurrent_mnist.fast_rnn import (
    FastGRU,
    FastIndRNN,
    FastLSTM,
    FastSimpleRNN,
    driver,
    fallback,
    gru,
    layers,
    lstm,
    resolve_parallel_chains,
    threads,
    thresholds,
)
from recurrent_mnist.indrnn import IndRNN

ATOL, RTOL = 1e-5, 1e-4

PAIRS = {
    "lstm": (keras.layers.LSTM, FastLSTM, {}),
    "gru": (keras.layers.GRU, FastGRU, {}),
    "gru_reset_before": (keras.layers.GRU, FastGRU, {"reset_after": False}),
    "rnn": (keras.layers.SimpleRNN, FastSimpleRNN, {}),
    "indrnn": (IndRNN, FastIndRNN, {}),
}

# Every form of the fast path once: the LSTM and the reset-after GRU do their recurrent product
# fused or per gate (their `gate_matmul`); the reset-before GRU and the SimpleRNN have one form.
FORMS = {
    "lstm-fused": ("lstm", "fused"),
    "lstm-per_gate": ("lstm", "per_gate"),
    "gru-fused": ("gru", "fused"),
    "gru-per_gate": ("gru", "per_gate"),
    "gru_reset_before": ("gru_reset_before", "auto"),
    "rnn": ("rnn", "auto"),
    "indrnn": ("indrnn", "auto"),
}


@pytest.fixture(params=list(FORMS.values()), ids=list(FORMS))
def form(request):
    """The kind of layer and the `gate_matmul` its fast layer is made with."""
    return request.param


@pytest.fixture
def chains(monkeypatch):
    """Lets the fast layers cut the batch into chains however small: `parallel_chains` then decides alone."""
    monkeypatch.setattr(chain_arithmetic, "MIN_CHAIN_ROWS", 1)


def _data(batch=5, steps=7, feat=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, steps, feat)).astype("float32")


def _layer(kind, fast, units=8, parallel_chains="auto", gate_matmul="auto", **kw):
    """The stock or the fast layer of this kind; `parallel_chains` and `gate_matmul` (LSTM, GRU) for the fast one."""
    stock_cls, fast_cls, extra = PAIRS[kind]
    if not fast:
        return stock_cls(units, **extra, **kw)
    if fast_cls in (FastLSTM, FastGRU):
        kw["gate_matmul"] = gate_matmul
    return fast_cls(units, **extra, **kw, parallel_chains=parallel_chains)


def _twin(kind, x_shape=(5, 7, 6), units=8, scale=0.3, **kw):
    """A stock and a fast layer of this kind, built for `x_shape`, with the same perturbed weights."""
    stock, fast = _layer(kind, False, units, **kw), _layer(kind, True, units, **kw)
    stock.build(x_shape)
    fast.build(x_shape)
    rng = np.random.default_rng(1)
    weights = [w + rng.standard_normal(w.shape).astype("float32") * scale for w in stock.get_weights()]
    stock.set_weights(weights)
    fast.set_weights(weights)
    return stock, fast


def _loss_weights(y, seed=3):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.standard_normal(y.shape).astype("float32"))


def _outputs_and_grads(model, x, mode="eager", training=False, initial_state=()):
    """Outputs and d(loss)/d(input, initial states, all weights) for a random linear loss of sin(outputs).

    mode: "eager", "graph" (in a tf.function) or "xla" (jit-compiled). The fast path builds the same
    operations in each; eager is the cheapest to run, so most comparisons are eager.
    """
    x = tf.constant(x)

    def f(x):
        with tf.GradientTape() as tape:
            tape.watch([x, *initial_state])
            kwargs = {"initial_state": list(initial_state)} if initial_state else {}
            ys = model(x, training=training, **kwargs)
            ys = ys if isinstance(ys, (list, tuple)) else [ys]
            loss = 0.0
            for k, y in enumerate(ys):
                loss += tf.reduce_sum(tf.sin(y) * _loss_weights(y, seed=3 + k))
        grads = tape.gradient(loss, [x, *initial_state, *model.trainable_weights])
        return ys, grads

    if mode != "eager":
        f = tf.function(f, jit_compile=mode == "xla")
    ys, grads = f(x)
    return [y.numpy() for y in ys], [g.numpy() for g in grads]


def _assert_same(a, b):
    ya, ga = a
    yb, gb = b
    assert len(ya) == len(yb) and len(ga) == len(gb)
    for p, q in zip(ya + ga, yb + gb, strict=True):
        np.testing.assert_allclose(q, p, atol=ATOL, rtol=RTOL)


def _assert_layers_agree(stock, fast, x, **kwargs):
    _assert_same(_outputs_and_grads(stock, x, **kwargs), _outputs_and_grads(fast, x, **kwargs))


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

OPTIONS = [
    {},
    {"return_sequences": True},
    {"go_backwards": True},
    {"return_sequences": True, "go_backwards": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True},
    {"use_bias": False},
    {"unroll": True},
]


def _ids(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "default"


@pytest.mark.parametrize("kw", OPTIONS, ids=_ids)
def test_layer_equivalence(form, kw):
    kind, gate_matmul = form
    _assert_layers_agree(*_twin(kind, gate_matmul=gate_matmul, **kw), _data())


@pytest.mark.parametrize("kw", [{}, {"return_sequences": True, "return_state": True, "go_backwards": True}], ids=_ids)
def test_layer_equivalence_traced(form, kw):
    # In a tf.function, as Keras runs the layers (tf.custom_gradient has a graph form of its own).
    kind, gate_matmul = form
    _assert_layers_agree(*_twin(kind, gate_matmul=gate_matmul, **kw), _data(), mode="graph")


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PAIRS))
def test_layer_equivalence_under_xla(kind, chains):
    # The fused gate matmul at every size, and one chain whatever parallel_chains says.
    kw = {"return_sequences": True, "return_state": True}
    _assert_layers_agree(*_twin(kind, parallel_chains=2, **kw), _data(), mode="xla")


def test_mnist_shape_and_initial_state(form):
    # 28 steps of 28 features, as in the project; explicit initial states, whose gradients are compared too.
    kind, gate_matmul = form
    x = _data(batch=4, steps=28, feat=28)
    stock, fast = _twin(kind, x.shape, units=16, scale=0.1, return_sequences=True, gate_matmul=gate_matmul)
    rng = np.random.default_rng(5)
    states = [tf.constant(rng.standard_normal((4, 16)).astype("float32")) for _ in range(2 if kind == "lstm" else 1)]
    _assert_layers_agree(stock, fast, x, initial_state=states)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_stateful_carries_state(kind):
    x = _data(batch=3, steps=7)
    x2 = _data(batch=3, steps=7, seed=9)
    stock, fast = _twin(kind, x.shape, stateful=True, return_sequences=True)
    for chunk in (x, x2):  # second call starts from the carried state
        np.testing.assert_allclose(fast(chunk).numpy(), stock(chunk).numpy(), atol=ATOL, rtol=RTOL)
    fast.reset_state()
    stock.reset_state()
    np.testing.assert_allclose(fast(x2).numpy(), stock(x2).numpy(), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_input_dropout_same_masks(kind):
    # Input dropout is applied before the fast path, with the stock layer's mask (one for all steps).
    x = _data()
    stock, fast = _twin(kind, dropout=0.4, seed=13)
    for _ in range(2):
        _assert_layers_agree(stock, fast, x, training=True)


def test_mixed_bfloat16_runs_close_to_stock():
    x = _data(steps=28, feat=28)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        stock, fast = _twin("lstm", x.shape, units=16, scale=0.05)
        ys, yf = stock(x), fast(x)
        assert yf.dtype == ys.dtype
        np.testing.assert_allclose(tf.cast(yf, "float32").numpy(), tf.cast(ys, "float32").numpy(), atol=3e-2)
    finally:
        keras.mixed_precision.set_global_policy(policy)


# --------------------------------------------------------------------------
# composite models
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
def test_bidirectional(kind):
    x = _data()

    def make(fast):
        layer = _layer(kind, fast, return_sequences=True, parallel_chains=3)
        return keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Bidirectional(layer)])

    stock, fast = _build_pair(make, x)
    backward = fast.layers[0].backward_layer
    assert type(backward) is type(fast.layers[0].forward_layer)
    assert backward.go_backwards and backward.parallel_chains == 3
    _assert_layers_agree(stock, fast, x)


@pytest.mark.slow
def test_stacked_mixed():
    x = _data(steps=9)

    def make(fast):
        return keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                _layer("lstm", fast, 8, return_sequences=True),
                _layer("gru", fast, 7, return_sequences=True, go_backwards=True),
                _layer("rnn", fast, 6),
                keras.layers.Dense(3),
            ]
        )

    stock, fast = _build_pair(make, x)
    _assert_layers_agree(stock, fast, x, mode="graph")


# --------------------------------------------------------------------------
# the fast path is taken; each reason to leave a call to the stock loop
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
def test_fast_path_is_used(kind, monkeypatch, refusals):
    def boom(*a, **k):
        raise AssertionError("stock inner_loop called")

    x = _data()
    _, fast = _twin(kind)
    monkeypatch.setattr(PAIRS[kind][0], "inner_loop", boom)
    fast(x)  # must not raise
    assert refusals == [None]


# id: (kind, layer arguments, the reason's first words)
REFUSED_ARGUMENTS = {
    # IndRNN has no recurrent dropout (its constructor says so).
    **{
        f"recurrent_dropout-{kind}": (kind, {"recurrent_dropout": 0.3}, "recurrent_dropout=0.3")
        for kind in PAIRS
        if kind != "indrnn"
    },
    "activation": ("lstm", {"activation": "relu"}, "activation=relu"),
    "activation-indrnn": ("indrnn", {"activation": "tanh"}, "activation=tanh: the fast path computes relu"),
    "recurrent_activation": ("gru", {"recurrent_activation": "hard_sigmoid"}, "recurrent_activation=hard_sigmoid"),
    # One input dropout mask per gate. use_cudnn=False: with "auto", Keras 3.15's stock LSTM fails on such masks.
    **{
        f"dropout_masks-{kind}": (kind, {"implementation": 1, "dropout": 0.4, "use_cudnn": False}, "input dropout")
        for kind in ("lstm", "gru")
    },
}


@pytest.mark.parametrize(("kind", "kw", "reason"), list(REFUSED_ARGUMENTS.values()), ids=list(REFUSED_ARGUMENTS))
def test_refusal_for_a_layer_argument(kind, kw, reason, refusals):
    # Training, so that dropout runs: both layers draw the same masks from the same seed.
    stock, fast = _twin(kind, scale=0.05, seed=11, **kw)
    _assert_layers_agree(stock, fast, _data(), training=True)
    assert refusals and all(r.startswith(reason) for r in refusals)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_refusal_for_a_mask(kind, refusals):
    x = _data()
    x[1, 4:] = 0.0
    x[3, 2:] = 0.0

    def make(fast):
        return keras.Sequential(
            [keras.Input(x.shape[1:]), keras.layers.Masking(0.0), _layer(kind, fast, return_sequences=True)]
        )

    stock, fast = _build_pair(make, x)
    _assert_layers_agree(stock, fast, x)
    assert refusals and all(r.startswith("a mask") for r in refusals)


@pytest.mark.parametrize(
    ("signature", "reason"),
    [((None, None, 6), "the number of time steps is unknown"), ((None, 7, None), "the number of features is unknown")],
    ids=["time_steps", "features"],
)
def test_refusal_for_an_unknown_dimension(signature, reason, refusals):
    stock, fast = _twin("gru", return_sequences=True)
    spec = tf.TensorSpec(signature, tf.float32)
    f_stock = tf.function(lambda x: stock(x), input_signature=[spec])
    f_fast = tf.function(lambda x: fast(x), input_signature=[spec])
    for steps in (7, 3) if signature[1] is None else (7,):
        x = _data(steps=steps, seed=steps)
        np.testing.assert_allclose(f_fast(x).numpy(), f_stock(x).numpy(), atol=ATOL, rtol=RTOL)
    assert refusals and all(r.startswith(reason) for r in refusals)


def test_refusal_on_another_backend(monkeypatch, refusals):
    # There the fast layers are the stock ones; only the backend's name is faked here.
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    _assert_layers_agree(*_twin("lstm"), _data())
    assert refusals and all(r.startswith("the Keras backend is jax") for r in refusals)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_refusal_where_cudnn_would_run(kind, monkeypatch, refusals):
    # On a GPU the stock layer uses cuDNN: the fast layer leaves the call to it (here on the CPU, its plain loop).
    monkeypatch.setattr(fallback, "gpu_available", lambda: True)
    _assert_layers_agree(*_twin(kind), _data())
    assert refusals and all(r == "the stock layer runs cuDNN on the GPU" for r in refusals)


def test_refusal_for_use_cudnn_true(refusals):
    # On this CPU the stock layer refuses use_cudnn=True; so does the fast one, as the stock layer.
    for layer in _twin("lstm", use_cudnn=True):
        with pytest.raises(ValueError, match="use_cudnn=True was specified, but cuDNN is not supported"):
            layer(_data())
    assert refusals == ["use_cudnn=True asks for the stock layer's cuDNN kernel"]


@pytest.mark.parametrize("kind", list(PAIRS))
def test_refusal_beyond_the_unrolled_length(kind, refusals):
    # Just past the limit the stock loop runs; at the limit, the fast path (the limit lowered to keep the test short).
    stock, fast = _twin(kind, x_shape=(5, 9, 6))
    with fallback.unroll_up_to(8):
        _assert_layers_agree(stock, fast, _data(steps=9))
        assert refusals and all(r.startswith("9 time steps (more than 8)") for r in refusals)
        refusals.clear()
        _assert_layers_agree(stock, fast, _data(steps=8))
    assert refusals and set(refusals) == {None}


@pytest.mark.parametrize("kind", list(PAIRS))
def test_pixel_by_pixel_sequences_agree_with_the_stock_layers(kind, refusals):
    # 784 steps of one pixel (the `pixels` reading): outputs and gradients, through the loop that runs there.
    stock, fast = _twin(kind, x_shape=(4, 784, 1), units=6, scale=0.05)
    _assert_layers_agree(stock, fast, _data(batch=4, steps=784, feat=1), mode="graph")
    assert refusals and all(r.startswith(f"784 time steps (more than {thresholds.UNROLL_MAX_STEPS})") for r in refusals)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn", "indrnn"])  # the four cells; one GRU form is enough here
def test_unrolled_fast_path_at_784_steps_agrees_with_the_stock_layers(kind, refusals):
    # The fast path itself over 784 steps (its length limit lifted, eagerly, so that nothing is traced):
    # float32 error does not build up over a long recurrence, forward or backward.
    stock, fast = _twin(kind, x_shape=(4, 784, 1), units=6, scale=0.05)
    with fallback.unroll_up_to(None):
        _assert_layers_agree(stock, fast, _data(batch=4, steps=784, feat=1))
    assert refusals and set(refusals) == {None}


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_refusal_for_serving_a_small_batch(cell, images, refusals):
    # `serve` pads up to 16 images to a power of two; XLA compiles the stock loop to faster code there.
    from recurrent_mnist import RowSequenceClassifier

    model = RowSequenceClassifier(cell, units=8)
    model.serve(images[:3])
    assert refusals and set(refusals) == {"serving a batch of 4 (at most 16): the stock loop runs faster under XLA"}
    refusals.clear()
    many = np.concatenate([images] * 3)  # 24 images: one compilation of any batch size, the fast path
    np.testing.assert_allclose(model.serve(many)[:3], model.serve(images[:3]), rtol=1e-5, atol=1e-5)
    model(images[:1])  # called directly, not served: the fast path at any size
    assert refusals and set(refusals) == {None}
    refusals.clear()
    with fallback.serve_stock_up_to(0):  # the rule lifted (benchmarks/latency.py's serve-fast)
        lifted = RowSequenceClassifier(cell, units=8)
        lifted.serve(images[:3])
    assert refusals and set(refusals) == {None}


@pytest.mark.slow
def test_the_package_imports_keras_only():
    # TensorFlow is imported by the fast path's first call, not by the package: with TensorFlow unimportable
    # after Keras has loaded, the package imports and its layers are made and configured.
    script = f"""
import sys, types
import keras
sys.modules["tensorflow"] = None
parent = types.ModuleType("recurrent_mnist")  # its __init__ imports other modules, which use TensorFlow
parent.__path__ = [{str(Path(layers.__file__).parents[1])!r}]
sys.modules["recurrent_mnist"] = parent
from recurrent_mnist.fast_rnn import FastGRU
layer = FastGRU.from_config(FastGRU(4, parallel_chains=2).get_config())
assert layer.parallel_chains == 2
print(sorted(m for m in sys.modules if m.startswith("recurrent_mnist.")))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    fast_rnn = "recurrent_mnist.fast_rnn"
    loaded = [fast_rnn, *(f"{fast_rnn}.{name}" for name in ("chains", "fallback", "layers", "threads", "thresholds"))]
    # IndRNN's stock layer, which FastIndRNN subclasses, is Keras code too.
    assert run.stdout.strip() == str([*loaded, "recurrent_mnist.indrnn", "recurrent_mnist.lazy"])


def test_chains_and_thresholds_import_without_keras():
    # What a process without Keras reads (the PyTorch peer, `TrainConfig`): the package imports nothing until a
    # layer is asked for, and these two modules import neither Keras nor TensorFlow.
    script = f"""
import sys, types
sys.modules["keras"] = sys.modules["tensorflow"] = None
parent = types.ModuleType("recurrent_mnist")
parent.__path__ = [{str(Path(layers.__file__).parents[1])!r}]
sys.modules["recurrent_mnist"] = parent
from recurrent_mnist.fast_rnn.chains import batch_chains
from recurrent_mnist.fast_rnn.thresholds import AUTO_XLA_MAX_BATCH
assert batch_chains(256, 3) == [85, 85, 86] and AUTO_XLA_MAX_BATCH > 0
print(sorted(m for m in sys.modules if m.startswith("recurrent_mnist.")))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    loaded = ["recurrent_mnist.fast_rnn", "recurrent_mnist.fast_rnn.chains", "recurrent_mnist.fast_rnn.thresholds"]
    assert run.stdout.strip() == str([*loaded, "recurrent_mnist.lazy"])


def test_the_thresholds_are_the_ones_in_force():
    # The public name of a threshold, and the help that quotes it, follow thresholds.py.
    from recurrent_mnist import settings, training

    assert training.AUTO_XLA_MAX_BATCH == thresholds.AUTO_XLA_MAX_BATCH
    assert f"up to {thresholds.AUTO_XLA_MAX_BATCH} " in settings.JIT_COMPILE.default_text


# --------------------------------------------------------------------------
# graph / shape / serialization / training
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("parallel_chains", [1, 2])
def test_dynamic_batch_size(kind, parallel_chains, chains):
    # Traced once for any batch size; in two chains, batch 1 leaves one chain empty.
    stock, fast = _twin(kind, return_sequences=True, parallel_chains=parallel_chains)

    def traced(layer):
        @tf.function(input_signature=[tf.TensorSpec((None, 7, 6), tf.float32)])
        def f(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(tf.sin(3.0 * y))
            return [y], tape.gradient(loss, [x, *layer.trainable_weights])

        return f

    f_stock, f_fast = traced(stock), traced(fast)
    for b in (3, 1, 11):
        xb = _data(batch=b, seed=b)
        _assert_same(*[[[t.numpy() for t in ts] for ts in f(xb)] for f in (f_stock, f_fast)])
    assert f_fast.experimental_get_tracing_count() == 1  # one trace served every size


def test_save_load_keras_safe_mode(tmp_path):
    x = _data()
    fast = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            FastLSTM(8, return_sequences=True, parallel_chains=2),
            FastGRU(6, reset_after=False, return_sequences=True),
            keras.layers.Bidirectional(FastGRU(5, return_sequences=True, parallel_chains=3)),
            FastSimpleRNN(4),
            keras.layers.Dense(3),
        ]
    )
    path = str(tmp_path / "m.keras")
    fast.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    recurrent = [0, 1, 3]
    for i in recurrent:
        assert type(loaded.layers[i]) is type(fast.layers[i])
        assert loaded.layers[i].get_config() == fast.layers[i].get_config()
    assert [loaded.layers[i].parallel_chains for i in recurrent] == [2, "auto", "auto"]
    wrapper = loaded.layers[2]  # whose own config Keras does not give back unchanged
    assert type(wrapper.forward_layer) is type(wrapper.backward_layer) is FastGRU
    assert wrapper.forward_layer.parallel_chains == wrapper.backward_layer.parallel_chains == 3
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), fast.predict(x, verbose=0))


@pytest.mark.parametrize("kind", list(PAIRS))
def test_config_matches_stock(kind):
    stock = _layer(kind, False, return_sequences=True, go_backwards=True)
    fast = _layer(kind, True, return_sequences=True, go_backwards=True)
    own = {"parallel_chains": "auto", **({} if kind in ("rnn", "indrnn") else {"gate_matmul": "auto"})}
    assert fast.get_config() == {**stock.get_config(), "name": fast.name, **own}
    clone = type(fast).from_config(fast.get_config())
    assert clone.get_config() == fast.get_config()
    # A configuration without the fast layer's own arguments (the stock layer's, or one saved before they existed)
    # loads with their defaults.
    assert type(fast).from_config(stock.get_config()).get_config() == {**fast.get_config(), "name": stock.name}
    # Saved models name the class as they did when fast_rnn was one module.
    saved = keras.saving.serialize_keras_object(fast)
    assert saved["module"] == "recurrent_mnist.fast_rnn"
    assert saved["registered_name"] == f"recurrent_mnist>{type(fast).__name__}"


def _fit_pair(kind, units=12, jit=False, parallel_chains="auto"):
    """A few optimizer steps through model.fit on the stock and the fast layer: the same losses and weights."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 7, 6)).astype("float32")
    y = rng.integers(0, 10, 32)

    def make(fast):
        layer = _layer(kind, fast, units, parallel_chains=parallel_chains)
        return keras.Sequential([keras.Input(x.shape[1:]), layer, keras.layers.Dense(10)])

    stock, fast = _build_pair(make, x, scale=0.3 if units < 100 else 0.03)
    for m in (stock, fast):
        m.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
            steps_per_execution=2,
        )
    # Batches of 16 rows: the per-gate products need at least that many (driver.per_gate).
    h_stock = stock.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_fast = fast.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_fast.history["loss"], h_stock.history["loss"], rtol=1e-4)
    for a, b in zip(stock.get_weights(), fast.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", list(PAIRS))
def test_fit_matches_stock(kind):
    _fit_pair(kind)


@pytest.mark.parametrize(
    ("kind", "units"),
    # From 128 units, "auto" takes the per-gate products in training.
    [("lstm", 128), ("gru", 128), ("gru_reset_before", 12), ("rnn", 12)],
    ids=["lstm-per_gate", "gru-per_gate", "gru_reset_before", "rnn"],
)
def test_fit_matches_stock_in_chains(kind, units, chains):
    _fit_pair(kind, units=units, parallel_chains=2)


@pytest.mark.slow
def test_fit_matches_stock_under_xla():
    # The LSTM is the cell trained with XLA by default (docs/speed.md); every cell's outputs
    # and gradients under XLA are compared in test_layer_equivalence_under_xla.
    _fit_pair("lstm", jit=True)


# --------------------------------------------------------------------------
# parallel batch chains (several inter-op threads)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [{}, {"return_sequences": True, "go_backwards": True}, {"return_sequences": True, "return_state": True}],
    ids=_ids,
)
def test_chains_equivalence(form, kw, chains):
    # Batch 5 in 3 chains of 1, 2 and 2 rows: outputs and every gradient as the stock layer's.
    kind, gate_matmul = form
    _assert_layers_agree(*_twin(kind, parallel_chains=3, gate_matmul=gate_matmul, **kw), _data())


@pytest.mark.parametrize(
    ("threads", "parallel_chains", "expected"),
    [((1, 2), "auto", 2), ((1, 2), 1, 1), ((None, None), "auto", 1), ((None, None), 2, 2)],
    ids=["auto-limit_threads", "one-limit_threads", "auto-default_threads", "two-default_threads"],
)
def test_chains_split_the_batch(threads, parallel_chains, expected, monkeypatch, chains):
    # "auto" follows environment.limit_threads (one intra-op thread, several inter-op); an int is that many.
    for name, value in zip(("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"), threads, strict=True):
        if value is not None:
            monkeypatch.setenv(name, str(value))
    seen = []
    real = driver._in_chains

    def spy(sequence, chains, *args):
        seen.append(chains)
        return real(sequence, chains, *args)

    monkeypatch.setattr(driver, "_in_chains", spy)
    _, fast = _twin("lstm", x_shape=(4, 7, 6), parallel_chains=parallel_chains)
    fast(_data(batch=4))
    assert seen == [expected]


def test_chain_count_follows_the_thread_settings(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "4")
    assert resolve_parallel_chains() == resolve_parallel_chains("auto") == 4
    assert driver._chain_count("auto", 50) == 4
    assert driver._chain_count("auto", 20) == 2  # no chain thinner than MIN_CHAIN_ROWS rows
    assert driver._chain_count("auto", 3) == 1
    assert driver._chain_count("auto", None) == 4  # batch size unknown while tracing
    assert driver._chain_count(3, 50) == 3
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")  # intra-op threads split the matmuls instead
    assert resolve_parallel_chains("auto") == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")  # TensorFlow's default: every core for both
    assert resolve_parallel_chains("auto") == 1
    assert resolve_parallel_chains(3) == 3
    assert resolve_parallel_chains(40) == chain_arithmetic.MAX_CHAINS == 16


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", "two", True, None])
def test_parallel_chains_is_checked(value):
    with pytest.raises(ValueError, match=r'`parallel_chains` must be "auto" or an integer >= 1. Received: parallel'):
        FastLSTM(4, parallel_chains=value)
    with pytest.raises(ValueError, match="`parallel_chains` must be"):
        resolve_parallel_chains(value)


def test_no_chains_under_xla():
    seen = []
    f = tf.function(lambda: seen.append(driver._chain_count(2, 50)) or tf.constant(0), jit_compile=True)
    f()
    assert seen == [1]


def test_automatic_gate_matmul_form():
    # Per gate from 128 units (training, large batches); one fused product for
    # small units and for single-image prediction, where the extra calls cost more.
    assert driver.per_gate(128) and driver.per_gate(128, 1024) and driver.per_gate(256, 16)
    assert not driver.per_gate(100) and not driver.per_gate(128, 1) and not driver.per_gate(128, 15)
    assert thresholds.PER_GATE_MIN_UNITS == 128 and thresholds.PER_GATE_MIN_BATCH == 16


def test_gate_matmul_chooses_the_form():
    # A form the layer is given holds at every size; "auto" follows the thresholds.
    assert driver.per_gate(8, 1, "per_gate") and not driver.per_gate(256, None, "fused")
    cell = FastLSTM(128).cell
    assert lstm.recurrence(cell, None) is lstm.LSTMPerGateSteps
    assert lstm.recurrence(cell, None, "fused") is lstm.LSTMSteps
    assert lstm.recurrence(FastLSTM(8).cell, 1, "per_gate") is lstm.LSTMPerGateSteps
    assert gru.recurrence(FastGRU(8).cell, 64, "per_gate") is gru.GRUPerGateSteps
    assert gru.recurrence(FastGRU(128).cell, 64, "fused") is gru.GRUSteps
    assert gru.recurrence(FastGRU(8, reset_after=False).cell, 64, "per_gate") is gru.GRUResetBeforeSteps


@pytest.mark.parametrize("layer_class", [FastLSTM, FastGRU])
def test_gate_matmul_is_checked_and_saved(layer_class):
    layer = layer_class(4, gate_matmul="per_gate")
    assert layer.get_config()["gate_matmul"] == "per_gate"
    assert layer_class.from_config(layer.get_config()).gate_matmul == "per_gate"
    with pytest.raises(ValueError, match=r'`gate_matmul` must be one of "auto", "fused", "per_gate". Received: gate_'):
        layer_class(4, gate_matmul="fast")
    assert not hasattr(FastSimpleRNN(4), "gate_matmul")  # one form


@pytest.fixture
def one_thread(monkeypatch):
    """TensorFlow's thread settings as `limit_threads(1)` makes them (the conftest keeps the real ones untouched)."""
    monkeypatch.setattr(threads, "thread_setting", lambda kind: 1)


def test_predict_compiles_with_xla_only_where_it_measured_faster(one_thread, monkeypatch):
    narrow = FastGRU(thresholds.PREDICT_XLA_MAX_UNITS)
    assert layers.predicts_faster_with_xla([narrow, FastSimpleRNN(8)])
    assert not layers.predicts_faster_with_xla([])
    assert not layers.predicts_faster_with_xla([FastGRU(thresholds.PREDICT_XLA_MAX_UNITS + 1)])
    assert not layers.predicts_faster_with_xla([narrow, keras.layers.GRU(8)])
    assert not layers.predicts_faster_with_xla([FastLSTM(8, parallel_chains=2)])
    assert not layers.predicts_faster_with_xla([FastLSTM(8, dtype="mixed_bfloat16")])
    monkeypatch.setattr(fallback, "gpu_available", lambda: True)
    assert not layers.predicts_faster_with_xla([narrow])
    monkeypatch.setattr(fallback, "gpu_available", lambda: False)
    monkeypatch.setattr(threads, "thread_setting", lambda kind: 1 if kind == "intra" else 2)
    assert not layers.predicts_faster_with_xla([narrow])


@pytest.mark.slow
def test_predict_under_xla_gives_the_graphs_logits_and_leaves_the_model_as_compiled(one_thread, images, refusals):
    from recurrent_mnist import RowSequenceClassifier

    model = RowSequenceClassifier("gru", units=8)
    model.compile(jit_compile=False)
    logits = model.predict(images, batch_size=8, verbose=0)
    assert model._xla_predict is not None and model.predict_function is None and model.jit_compile is False
    graph = model.predict_on_batch(images)  # the model's own predict function: the graph, one chain
    np.testing.assert_allclose(logits, graph, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(model.predict(images[:5], verbose=0), graph[:5], atol=ATOL, rtol=RTOL)
    assert refusals and not any(refusals)  # the fast path ran under XLA too

    model.compile(jit_compile=True)  # the model's own choice then holds for predict
    model.predict(images, verbose=0)
    assert model.predict_function is not None
