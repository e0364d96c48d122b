"""Every Keras backend: under JAX and PyTorch the model builds, trains, saves and loads through the stock Keras
layers without TensorFlow, and a model saved on one backend loads on another with the same predictions.

Keras picks its backend once per process, so each backend runs `tests/on_backend.py` in a process of its own.
A backend that is not installed is skipped: JAX is the optional extra `jax` (`pip install -e ".[dev,jax]"`),
PyTorch the extra `torch`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from clirun import cli_env

from recurrent_mnist import RowSequenceClassifier

ON_BACKEND = Path(__file__).resolve().parent / "on_backend.py"

# Logits of one model on two backends, float32: the same weights through other kernels. Measured here at most
# float32 rounding, summed in another order by each backend and grown over the time steps, with room for
# 28 x 28 digits through 128-unit bidirectional layers (TensorFlow's fast path against JAX's and PyTorch's stock loops).
ACROSS_BACKENDS = {"rtol": 1e-5, "atol": 1e-5}
# Under mixed precision the recurrences run in 16 bits, rounded differently by each backend: a tolerance of the
# order of each type's precision (bfloat16 keeps 8 significant bits, float16 11).
MIXED_ATOL = {"mixed_bfloat16": 1e-2, "mixed_float16": 1e-3}


@pytest.fixture(scope="module")
def saved_on_tensorflow(tmp_path_factory):
    """Models saved on TensorFlow, through the fast layers where they are named, and their predictions."""
    folder = tmp_path_factory.mktemp("saved-on-tensorflow")
    images = np.random.default_rng(0).integers(0, 256, size=(8, 6, 5), dtype=np.uint8)
    models = {
        "tf-lstm": RowSequenceClassifier("lstm", units=4, num_layers=2, bidirectional=True),
        "tf-gru": RowSequenceClassifier("gru", units=4, dropout=0.1),
        "tf-simple_rnn": RowSequenceClassifier("simple_rnn", units=4, rescale=None, num_classes=3),
        "tf-instance": RowSequenceClassifier(keras.layers.GRU(3, reset_after=False)),
    }
    expected = {}
    for name, model in models.items():
        expected[name] = np.asarray(model(images))
        model.save(folder / f"{name}.keras")
    np.save(folder / "images.npy", images)
    return folder, expected


def _installed(backend):
    reason = f'{backend} is not installed (pip install -e ".[dev,{backend}]")'
    return pytest.param(backend, marks=pytest.mark.skipif(importlib.util.find_spec(backend) is None, reason=reason))


@pytest.mark.slow
@pytest.mark.parametrize("backend", [_installed("jax"), _installed("torch")])
def test_another_backend_trains_saves_and_loads_without_tensorflow(backend, saved_on_tensorflow, tmp_path):
    source, expected = saved_on_tensorflow
    folder = shutil.copytree(source, tmp_path / backend)
    run = subprocess.run(
        [sys.executable, str(ON_BACKEND), str(folder)],
        env={**cli_env(), "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    outputs = np.load(folder / "outputs.npz")
    assert report["backend"] == backend

    # Importing the package leaves TensorFlow (a slow import) alone, and all that follows ran with
    # TensorFlow unimportable. (Where it is installed, Keras itself imports it to serialize a layer, in
    # keras.layers.Bidirectional and in saving: its serialization_lib asks whether an object is a
    # tf.TensorShape.)
    assert report["import loaded tensorflow"] is False

    # Rank 3 and 4 mixed, every precision policy: float32 logits.
    assert report["policies"] == {"float32": "float32", "mixed_bfloat16": "float32", "mixed_float16": "float32"}

    # The fast layers load as themselves and run as their stock parents.
    loaded = report["loaded"]
    assert loaded["tf-lstm"]["classes"] == ["FastLSTM", "FastLSTM"]
    assert loaded["tf-lstm"]["keras_classes"] == ["LSTM", "LSTM"]
    assert loaded["tf-gru"]["classes"] == ["FastGRU"] and loaded["tf-simple_rnn"]["classes"] == ["FastSimpleRNN"]
    assert {entry["refusal"] for entry in loaded.values()} == {
        f"the Keras backend is {backend}: the fast path is TensorFlow code"
    }
    for name, logits in expected.items():
        np.testing.assert_allclose(outputs[name], logits, **ACROSS_BACKENDS, err_msg=name)

    # Saved there, loaded there unchanged, and loaded here on TensorFlow.
    images = np.load(folder / "images.npy")
    for policy, atol in {"float32": ACROSS_BACKENDS["atol"], **MIXED_ATOL}.items():
        np.testing.assert_array_equal(outputs[f"reloaded-{policy}"], outputs[f"here-{policy}"], err_msg=policy)
        on_tensorflow = keras.saving.load_model(folder / f"here-{policy}.keras")
        np.testing.assert_allclose(np.asarray(on_tensorflow(images)), outputs[f"here-{policy}"], atol=atol)
