"""Shared fixtures: quiet TensorFlow, the embedded sample, small synthetic images."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The CLI's rich consoles read the width once, when the CLI is first imported, in
# whichever test (or pytest-xdist worker) that happens: make it the same everywhere.
os.environ["COLUMNS"] = "200"

import numpy as np
import pytest

from recurrent_mnist.quiet import notices_filtered

with notices_filtered():  # TensorFlow's start-up notices, filtered as the library's own import does
    import keras

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


@pytest.fixture(scope="session")
def tiny(sample) -> datasets.Dataset:
    """600 training and 200 test digits of the sample at 14 x 14 (every other row and column).

    For tests of the machinery rather than of accuracy: a model unrolls 14 steps
    instead of 28, so it traces, compiles and trains in a fraction of the time.
    """
    return dataclasses.replace(
        sample,
        x_train=np.ascontiguousarray(sample.x_train[:600, ::2, ::2]),
        y_train=sample.y_train[:600],
        x_test=np.ascontiguousarray(sample.x_test[:200, ::2, ::2]),
        y_test=sample.y_test[:200],
        verified=False,  # a slice of the sample is no published set
        content_sha256={},
    )


@pytest.fixture(scope="session")
def tiny_data_dir(tiny, tmp_path_factory) -> Path:
    """`tiny` as the four IDX files, for commands run as a user would: `--dataset mnist --data-dir DIR`."""
    from idx_files import write_idx_set

    folder = tmp_path_factory.mktemp("tiny-mnist")
    write_idx_set(folder, {k: getattr(tiny, k) for k in ("x_train", "y_train", "x_test", "y_test")}, gz=False)
    return folder


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


@pytest.fixture
def refusals(monkeypatch):
    """Why each call of a fast layer left the fast path (None where it took it), in call order."""
    from recurrent_mnist.fast_rnn import fast_path_refusal, layers

    seen = []

    def record(*args, **kwargs):
        seen.append(fast_path_refusal(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(layers, "fast_path_refusal", record)
    return seen
