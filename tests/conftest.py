"""Shared fixtures: quiet TensorFlow, the embedded sample, small synthetic images."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI's rich consoles read the width once, when the CLI is first imported, in
# whichever test (or pytest-xdist worker) that happens: make it the same everywhere.
os.environ["COLUMNS"] = "200"

import keras
import numpy as np
import pytest

from recurrent_mnist import datasets
from recurrent_mnist.datasets import sources


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


@pytest.fixture(autouse=True)
def _thread_settings(monkeypatch):
    """Variants trained in-process size TensorFlow's thread pools from their configuration: keep this
    process's pools as they are, and undo the thread variables after each test.

    Tests that need parallel batch chains ask for them (the layers' `parallel_chains`).
    """
    import tensorflow as tf

    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown restores the variable's absence
        monkeypatch.delenv(name)
    for kind in ("intra", "inter"):
        name = f"set_{kind}_op_parallelism_threads"
        monkeypatch.setattr(tf.config.threading, name, lambda n: None)


@pytest.fixture(scope="session")
def sample() -> datasets.Dataset:
    """The embedded 5,000-digit MNIST sample."""
    return datasets.load("mnist-sample")


@pytest.fixture
def images() -> np.ndarray:
    """Eight random uint8 images of 28 x 28."""
    return np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache, so that no test finds a real download."""
    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(sources, "keras_cache_dirs", lambda: [home / "datasets"])
    return home
