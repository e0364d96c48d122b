"""The model's readings: rows, pixels and permuted pixels, saved and loaded with their pixel order."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.errors import ConfigError

DATA = Path(__file__).parent / "data"


def _images(count=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype="uint8")


@pytest.mark.slow
def test_each_reading_feeds_the_pixels_in_its_order():
    images = _images(2)
    rows = RowSequenceClassifier("gru", units=4)
    pixels = RowSequenceClassifier("gru", units=4, reading="pixels")
    permuted = RowSequenceClassifier("gru", units=4, reading="permuted-pixels")
    for model in (rows, pixels, permuted):
        model(images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(rows.as_sequences(images)), images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(pixels.as_sequences(images)), images.reshape(2, 784, 1))
    shuffled = keras.ops.convert_to_numpy(permuted.as_sequences(images))
    np.testing.assert_array_equal(shuffled, images.reshape(2, 784, 1)[:, permuted.permutation])
    assert sorted(permuted.permutation) == list(range(784)) and permuted.permutation != list(range(784))


@pytest.mark.slow
def test_models_with_other_permutation_seeds_read_the_same_image_differently():
    images = _images(1)
    first, second = (
        RowSequenceClassifier("lstm", units=4, reading="permuted-pixels", permutation_seed=s) for s in (0, 1)
    )
    first(images), second(images)
    a, b = (keras.ops.convert_to_numpy(m.as_sequences(images)) for m in (first, second))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(b, axis=1))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"reading": "columns"}, "`reading` must be one of rows, pixels, permuted-pixels"),
        ({"reading": "permuted-pixels", "permutation_seed": 1.5}, "`permutation_seed` must be an integer >= 0"),
        ({"reading": "pixels", "permutation": [1, 0]}, "`permutation` orders the pixels of reading='permuted-pixels'"),
        ({"reading": "permuted-pixels", "permutation": [1, 1]}, "`permutation` must hold each of"),
    ],
)
def test_bad_reading_arguments_are_one_sentence(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("[", r"\[")):
        RowSequenceClassifier("gru", units=4, **kwargs)


@pytest.mark.slow
def test_pixels_read_images_of_other_heights_but_a_permutation_only_its_own_size():
    pixels = RowSequenceClassifier("simple_rnn", units=4, reading="pixels")
    assert pixels(_images(2)).shape == (2, 10)
    assert pixels(np.zeros((2, 14, 28), "uint8")).shape == (2, 10)  # 392 steps
    permuted = RowSequenceClassifier("simple_rnn", units=4, reading="permuted-pixels")
    permuted(_images(2))
    with pytest.raises(ConfigError, match="orders 784 pixels; these images have 392"):
        permuted(np.zeros((2, 14, 28), "uint8"))


def test_a_model_saved_before_readings_existed_loads_and_reads_rows():
    model = keras.saving.load_model(DATA / "gru8-before-readings.keras")
    assert model.reading == "rows" and model.permutation is None
    expected = np.load(DATA / "gru8-before-readings.logits.npy")
    np.testing.assert_allclose(model.predict(_images(), verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_trained_permuted_model_loads_safely_in_a_new_process_with_the_same_logits(tmp_path, sample):
    keras.utils.set_random_seed(0)
    model = RowSequenceClassifier("gru", units=8, reading="permuted-pixels", permutation_seed=3)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(sample.x_train[:256], sample.y_train[:256], epochs=1, batch_size=64, verbose=0)
    path, images = tmp_path / "permuted.keras", sample.x_test[:8]
    model.save(path)
    np.save(tmp_path / "images.npy", images)
    script = f"""
import numpy as np, keras
import recurrent_mnist
model = keras.saving.load_model({str(path)!r}, safe_mode=True)
assert model.reading == "permuted-pixels" and model.permutation_seed == 3
np.save({str(tmp_path / "logits.npy")!r}, model.predict(np.load({str(tmp_path / "images.npy")!r}), verbose=0))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
