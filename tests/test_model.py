"""RowSequenceClassifier: shapes, dtypes, configuration, composition, saving."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from recurrent_mnist import RowSequenceClassifier, available_cells, register_cell
from recurrent_mnist.cells import canonical_cell_name

CELLS = ["lstm", "gru", "simple_rnn"]


def expected_params(cell: str, units: int, features: int, classes: int = 10, bidirectional=False) -> int:
    """Keras's parameter formulas for one recurrent layer and the dense head."""
    recurrent = {
        "lstm": 4 * (units * (features + units) + units),
        "gru": 3 * units * (features + units + 2),  # reset_after=True: two bias vectors
        "simple_rnn": units * (features + units) + units,
    }[cell]
    directions = 2 if bidirectional else 1
    return directions * recurrent + (directions * units + 1) * classes


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_returns_logits_with_keras_parameter_count(cell, images):
    model = RowSequenceClassifier(cell, units=16)
    logits = model(images)
    assert logits.shape == (8, 10)
    assert model.count_params() == expected_params(cell, 16, 28)
    # Logits, not probabilities: rows do not sum to one.
    assert not np.allclose(np.sum(np.asarray(logits), axis=1), 1.0)


@pytest.mark.parametrize(
    ("name", "fast", "stock"),
    [
        ("lstm", "FastLSTM", keras.layers.LSTM),
        ("gru", "FastGRU", keras.layers.GRU),
        ("simple_rnn", "FastSimpleRNN", keras.layers.SimpleRNN),
    ],
)
def test_named_cells_are_the_fast_layers_and_keras_names_the_plain_ones(name, fast, stock, images):
    fast_model = RowSequenceClassifier(name, units=8)
    plain_model = RowSequenceClassifier(f"keras_{name}", units=8)
    (fast_layer,) = fast_model.recurrent_layers
    (plain_layer,) = plain_model.recurrent_layers
    assert type(fast_layer).__name__ == fast and isinstance(fast_layer, stock)
    assert type(plain_layer) is stock
    # Same weights in, same logits out: the fast path is the stock computation.
    fast_model(images)
    plain_model(images)
    plain_model.set_weights(fast_model.get_weights())
    np.testing.assert_allclose(plain_model(images), fast_model(images), atol=1e-5)


def test_aliases_name_the_same_cell():
    assert canonical_cell_name("rnn") == canonical_cell_name("SimpleRNN") == "simple_rnn"
    assert canonical_cell_name("LSTM") == "lstm"
    assert RowSequenceClassifier("simplernn", units=4).cell == "simple_rnn"


def test_unknown_cell_names_the_value_and_the_valid_names():
    with pytest.raises(ValueError, match=r"Unknown cell 'transformer'.*lstm, gru, simple_rnn"):
        RowSequenceClassifier("transformer")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 0}, "units"),
        ({"units": 2.5}, "units"),
        ({"num_layers": 0}, "num_layers"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"recurrent_dropout": -0.1}, "recurrent_dropout"),
        ({"rescale": 0}, "rescale"),
        ({"bidirectional": "yes"}, "bidirectional"),
        ({"cell": 3}, "cell"),
    ],
)
def test_invalid_arguments_name_the_argument_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RowSequenceClassifier(**kwargs)


def test_inputs_with_a_channel_axis_uint8_float_and_tensors_agree(images):
    model = RowSequenceClassifier("gru", units=8)
    reference = np.asarray(model(images))
    as_float = images.astype("float32")
    for variant in (
        images[..., None],
        as_float,
        as_float.astype("float64"),
        tf.constant(images),
        tf.constant(as_float[..., None]),
    ):
        np.testing.assert_allclose(np.asarray(model(variant)), reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(images, verbose=0), reference, rtol=1e-5, atol=1e-5)


def test_rescaling_happens_inside_the_model_and_can_be_switched_off(images):
    scaled = RowSequenceClassifier("lstm", units=8)
    raw = RowSequenceClassifier("lstm", units=8, rescale=None)
    raw.build(images.shape)
    scaled.build(images.shape)
    raw.set_weights(scaled.get_weights())
    np.testing.assert_allclose(np.asarray(raw(images / 255.0)), np.asarray(scaled(images)), rtol=1e-5, atol=1e-6)


def test_other_image_sizes_and_sequence_lengths():
    model = RowSequenceClassifier("lstm", units=8, num_classes=3)
    wide = np.zeros((2, 10, 12), dtype=np.uint8)
    assert model(wide).shape == (2, 3)
    assert model.count_params() == expected_params("lstm", 8, 12, classes=3)
    # More rows (time steps) of the same width run through the same weights.
    assert model(np.zeros((2, 40, 12), dtype=np.uint8)).shape == (2, 3)


def test_bad_input_rank_is_a_clear_error():
    model = RowSequenceClassifier("gru", units=4)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, 1\)\. Received: input_shape=\(None, 784\)"):
        model.build((None, 784))


def _rows(n=8, h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def test_one_model_reads_rank_3_and_4_uint8_and_float_in_any_order():
    # Keras retraces predict with relaxed shapes when they change: rank 3 then 4 leaves a trace of unknown rank.
    model = RowSequenceClassifier("gru", units=4)
    x = _rows()
    reference = model.predict(x, verbose=0)
    # Float32 tolerance, not equality: a trace of unknown rank or steps runs the stock loop, whose sums may
    # associate differently from the fast path's on some CPUs' kernels.
    for variant in (x[..., None], x, x.astype("float32"), x[..., None].astype("float32"), x):
        np.testing.assert_allclose(model.predict(variant, verbose=0), reference, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(model(variant)), reference, rtol=1e-6, atol=1e-6)
    # Other heights (time steps) through the same weights, in both ranks.
    assert model.predict(x[:, :3], verbose=0).shape == model.predict(x[:, :4, :, None], verbose=0).shape == (8, 10)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
def test_serve_gives_predicts_logits_for_one_image_and_any_batch_without_dropout(cell):
    model = RowSequenceClassifier(cell, units=8, num_layers=2, dropout=0.5)
    x = _rows()
    reference = model.predict(x, verbose=0)
    for rows, batch in ((0, x[:1]), (1, x[1:2]), (slice(None), x), (slice(None), x[..., None].astype("float32"))):
        logits = model.serve(batch)
        assert isinstance(logits, np.ndarray) and logits.shape == (len(batch), 10)
        np.testing.assert_allclose(logits, reference[rows].reshape(len(batch), 10), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=re.escape("Received: images.shape=(8, 5)")):
        model.serve(x[:, 0])


@pytest.mark.slow
def test_fit_and_evaluate_mix_ranks():
    model = RowSequenceClassifier("lstm", units=4)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = _rows(), np.arange(8) % 10
    model.fit(x, y, epochs=1, verbose=0)
    model.fit(x[..., None].astype("float32"), y, epochs=1, verbose=0, validation_data=(x, y))
    model.fit(x[:, :3], y, epochs=1, verbose=0)
    assert model.evaluate(x, y, verbose=0) == model.evaluate(x[..., None], y, verbose=0)


@pytest.mark.slow
def test_unreadable_inputs_are_value_errors_in_keras_form():
    model = RowSequenceClassifier("gru", units=4)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _rows(), np.arange(8) % 10
    model.fit(x, y, verbose=0)
    model.predict(x[..., None], verbose=0)  # predict's trace is now of unknown rank: Python checks before it
    width = r"\(N, H, W\) or \(N, H, W, 1\) with W=5, the width .* was built with \(H may vary\)\."
    for shape in ((8, 30), (8, 6, 5, 1, 1), (8, 6, 5, 3), (8, 6, 4)):  # rank 2, rank 5, 3 channels, another width
        bad = np.zeros(shape, dtype=np.uint8)
        received = re.escape(f"Received: inputs.shape={shape}")
        with pytest.raises(ValueError, match=rf"`inputs` must be images {width} {received}"):
            model(bad)
        received = re.escape(f"Received: x.shape={shape}")
        for method, args in ((model.predict, (bad,)), (model.evaluate, (bad, y)), (model.fit, (bad, y))):
            with pytest.raises(ValueError, match=rf"`x` must be images {width} {received}"):
                method(*args, verbose=0)
    # The model is whole after the errors (on JAX a failed predict used to lose the weights).
    np.testing.assert_allclose(
        model.predict(x, verbose=0), model.predict(x[..., None], verbose=0), rtol=1e-6, atol=1e-7
    )


def test_a_graph_of_unknown_rank_reads_both_ranks_and_checks_the_rest():
    model = RowSequenceClassifier("simple_rnn", units=4)
    x = _rows()
    reference = np.asarray(model(x))
    traced = tf.function(model, input_signature=[tf.TensorSpec(None, tf.uint8)])
    np.testing.assert_allclose(traced(x).numpy(), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(traced(x[..., None]).numpy(), reference, rtol=1e-6, atol=1e-6)
    for shape in ((8, 30), (8, 6, 5, 3), (8, 6, 4)):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"`inputs` must be images .* Received: inputs\.shape="
        ):
            traced(np.zeros(shape, dtype=np.uint8))


def test_build_creates_the_weights():
    model = RowSequenceClassifier("gru", units=8, num_layers=2)
    model.build((None, 28, 28))
    assert model.built
    assert model.count_params() == (3 * 8 * (28 + 8 + 2)) + (3 * 8 * (8 + 8 + 2)) + (8 + 1) * 10


def test_stacked_bidirectional_dropout_options(images):
    model = RowSequenceClassifier("lstm", units=6, num_layers=2, bidirectional=True, dropout=0.2, recurrent_dropout=0.1)
    assert model(images, training=True).shape == (8, 10)
    first = 2 * 4 * (6 * (28 + 6) + 6)
    second = 2 * 4 * (6 * (12 + 6) + 6)
    assert model.count_params() == first + second + (12 + 1) * 10


def test_a_layer_instance_plugs_in_and_round_trips(images):
    model = RowSequenceClassifier(keras.layers.GRU(12, dropout=0.1, reset_after=False), num_layers=2)
    assert model(images).shape == (8, 10)
    config = model.get_config()
    json.dumps(config)  # plain JSON
    assert config["cell"]["class_name"] == "GRU"
    clone = RowSequenceClassifier.from_config(config)
    assert clone.get_config() == config
    clone.build(images.shape)
    assert clone.count_params() == model.count_params()


def test_layer_instance_rules_are_explained():
    with pytest.raises(ValueError, match="units"):
        RowSequenceClassifier(keras.layers.LSTM(4), units=8)
    with pytest.raises(ValueError, match="return_sequences"):
        RowSequenceClassifier(keras.layers.LSTM(4, return_sequences=True))
    with pytest.raises(ValueError, match="RNN layer"):
        RowSequenceClassifier(keras.layers.Dense(4))


@pytest.mark.parametrize("cell", CELLS)
def test_config_round_trip_is_plain_json(cell):
    model = RowSequenceClassifier(cell, units=5, num_layers=2, bidirectional=True, dropout=0.1, rescale=None)
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    assert RowSequenceClassifier.from_config(config).get_config() == config


def test_registered_cells_are_listed_and_usable(images):
    def tiny_lstm(units, **kwargs):
        return keras.layers.LSTM(units // 2, **kwargs)

    register_cell("half_lstm_for_test", tiny_lstm, overwrite=True)
    assert "half_lstm_for_test" in available_cells()
    model = RowSequenceClassifier("half_lstm_for_test", units=8)
    assert model(images).shape == (8, 10)
    with pytest.raises(ValueError, match="already registered"):
        register_cell("half_lstm_for_test", tiny_lstm)


def test_works_as_a_layer_in_a_functional_model(images):
    inputs = keras.Input((28, 28), dtype="uint8")
    logits = RowSequenceClassifier("gru", units=8)(inputs)
    outputs = keras.layers.Softmax()(logits)
    model = keras.Model(inputs, outputs)
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_many_models_in_one_process_train(images):
    """The TF1 script died on its second run: `Variable rnn/basic_lstm_cell/kernel already exists`."""
    labels = np.arange(8) % 10
    for _ in range(3):
        model = RowSequenceClassifier("lstm", units=8)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(images, labels, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_mixed_precision_keeps_float32_logits(images):
    model = RowSequenceClassifier("gru", units=8, dtype="mixed_bfloat16")
    assert model(images).dtype == "float32"
    assert {layer.compute_dtype for layer in model.recurrent_layers} == {"bfloat16"}  # the model's policy


@pytest.mark.parametrize(
    ("policy", "logits_atol", "update_rtol"), [("mixed_bfloat16", 3e-2, 5e-2), ("mixed_float16", 3e-3, 1e-2)]
)
@pytest.mark.slow
def test_mixed_precision_trains_through_the_fast_path(policy, logits_atol, update_rtol, refusals):
    x, y = _rows(), np.arange(8) % 10
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        fast, stock = RowSequenceClassifier("lstm", units=8), RowSequenceClassifier("keras_lstm", units=8)
        stock.build(x.shape)
        fast.build(x.shape)
        stock.set_weights(fast.get_weights())
        logits = fast(x)
        assert logits.dtype == "float32" and fast.recurrent_layers[0].compute_dtype == policy.split("_")[1]
        np.testing.assert_allclose(np.asarray(logits), np.asarray(stock(x)), atol=logits_atol)
        # One step of plain SGD: the fast backward pass moves every weight as the stock one does, to the
        # precision of the policy (relative to the largest change of each weight).
        before = fast.get_weights()
        for model in (fast, stock):
            model.compile(keras.optimizers.SGD(1.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.train_on_batch(x, y)
        for start, moved, reference in zip(before, fast.get_weights(), stock.get_weights(), strict=True):
            scale = np.abs(reference - start).max()
            assert scale > 0  # a step was taken (mixed_float16's loss scaling skips steps that overflow)
            np.testing.assert_allclose(moved - start, reference - start, atol=update_rtol * scale)
        losses = fast.fit(x, y, epochs=2, verbose=0).history["loss"]
        assert np.isfinite(losses).all() and fast.predict(x, verbose=0).dtype == np.float32
    finally:
        keras.config.set_dtype_policy(previous)
    assert refusals and set(refusals) == {None}  # every call, training ones too, took the fast path
