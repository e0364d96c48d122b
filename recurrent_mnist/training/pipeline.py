"""What a model trains on and with: the fixed validation split, the `tf.data` input, the compiled loss.

Every variant of every command gets the same validation split (seeded apart from
the variant's seed) and the same input pipeline, so that figures compare models.
Keras is imported when a model or pipeline is made, not with this module: the
PyTorch peer takes its validation split from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recurrent_mnist.errors import ConfigError

if TYPE_CHECKING:
    import keras

__all__ = [
    "INFERENCE_BATCH",
    "VALIDATION_SPLIT_SEED",
    "check_train_images",
    "compile_model",
    "input_pipeline",
    "split_validation",
]

# The validation split is the same for every variant and seed, so that validation
# figures compare models, not splits.
VALIDATION_SPLIT_SEED = 0
# The batch size of evaluation, validation and inference timing.
INFERENCE_BATCH = 1024


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float, train_images: int | None = None):
    """Splits off a fixed, seeded validation subset of the training data (never the test set).

    `train_images`, where given, keeps that many of the images left for training: a
    fixed subset (the split's order is already shuffled), the same for every variant.

    Raises:
        ConfigError: `train_images` is more than the images left for training.
    """
    check_train_images(train_images, len(x), fraction)
    order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(x))
    n_val = _validation_count(len(x), fraction)
    val, train = order[:n_val], order[n_val:]
    if train_images is not None:
        train = train[:train_images]
    if fraction <= 0:
        return (x, y, None, None) if train_images is None else (x[train], y[train], None, None)
    return x[train], y[train], x[val], y[val]


def _validation_count(count: int, fraction: float) -> int:
    """How many of `count` training images `split_validation` holds out at a validation `fraction`."""
    return max(1, round(count * fraction)) if fraction > 0 else 0


def check_train_images(train_images: int | None, count: int, fraction: float) -> None:
    """ConfigError where `train_images` asks for more of `count` training images than the validation
    `fraction` leaves for training."""
    available = count - _validation_count(count, fraction)
    if train_images is not None and train_images > available:
        raise ConfigError(
            f"`train_images={train_images}` is more than the {available:,} training images left after the "
            "validation split",
            argument="train_images",
        )


def compile_model(
    model: keras.Model,
    learning_rate: float,
    steps_per_execution: int = 1,
    jit_compile: bool = False,
    clipnorm: float | None = None,
) -> keras.Model:
    """Compiles with Adam (its gradients clipped to `clipnorm` if given), cross-entropy on logits and accuracy."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def input_pipeline(x: np.ndarray, y: np.ndarray | None, batch_size: int, *, shuffle_seed: int | None = None):
    """A `tf.data` pipeline over in-memory arrays, or None on other Keras backends.

    The images stay uint8 (the model scales them). tf.data's autotuning is off
    and the prefetch depth fixed: with `prefetch(AUTOTUNE)`, which is also what
    Keras builds for numpy input, tearing down each epoch's iterator waits for
    the autotune thread, a stall at every epoch's end on a machine of few cores
    (docs/speed.md).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y.astype(np.int32))).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    return data.with_options(options)
