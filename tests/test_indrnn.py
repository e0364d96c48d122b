"""The IndRNN layer: its step against NumPy, the paper's bound on the recurrent weights, saving and loading."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from recurrent_mnist.indrnn import IndRNN, RecurrentMaxAbs  # noqa: E402


def numpy_indrnn(x, kernel, u, bias):
    h = np.zeros((x.shape[0], kernel.shape[1]), "float64")
    for t in range(x.shape[1]):
        h = np.maximum(x[:, t] @ kernel + u * h + bias, 0.0)
    return h


def test_the_layer_computes_the_papers_recurrence():
    keras.utils.set_random_seed(0)
    layer = IndRNN(6, bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(3, 12, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    kernel, u, bias = (keras.ops.convert_to_numpy(w).astype("float64") for w in layer.weights)
    np.testing.assert_allclose(out, numpy_indrnn(x, kernel, u, bias), rtol=1e-5, atol=1e-5)
    assert u.shape == (6,)


def test_the_recurrent_weights_stay_within_the_bound_for_the_sequence_length():
    layer = IndRNN(4, recurrent_initializer=keras.initializers.Constant(3.0))
    layer.build((None, 16, 1))
    assert layer.cell.bound() == pytest.approx(2 ** (1 / 16))
    optimizer = keras.optimizers.SGD(learning_rate=0.0)
    optimizer.apply([keras.ops.zeros_like(w) for w in layer.trainable_weights], layer.trainable_weights)
    assert np.abs(keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)).max() == pytest.approx(2 ** (1 / 16))


def test_an_explicit_bound_wins_and_is_serialized():
    layer = IndRNN(4, recurrent_max_abs=0.5)
    layer.build((None, 784, 1))
    assert layer.cell.bound() == 0.5
    assert IndRNN.from_config(layer.get_config()).cell.recurrent_max_abs == 0.5
    assert RecurrentMaxAbs.from_config(RecurrentMaxAbs(0.5).get_config()).max_abs == 0.5


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"recurrent_dropout": 0.1}, "recurrent_dropout"), ({"dropout": 1.0}, "dropout"), ({"units": 0}, "units")],
)
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=f"`{word}`"):
        IndRNN(**{"units": 4, **kwargs})


def test_a_model_with_the_layer_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((20, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(IndRNN(5, dropout=0.2)(inputs)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).random((8, 20, 3)).astype("float32")
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), rtol=1e-6)
