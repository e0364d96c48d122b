"""How a model reads an image as a sequence: its rows, its pixels, or its pixels in a fixed shuffled order.

- `rows`: each of the H rows is one step of W features (28 steps of 28 for MNIST).
- `pixels`: each pixel is one step of one feature, row after row (784 steps for MNIST): "sequential MNIST".
- `permuted-pixels`: the same pixels in one fixed order drawn from a seed, so that neighbouring steps are
  unrelated pixels: "permuted sequential MNIST".

The permutation is drawn once, when the model is built, and then stored in the model's configuration: a saved
model reads images in exactly the order it was trained with, whatever NumPy's generators do in later releases.
This module imports no Keras and no TensorFlow.
"""

from __future__ import annotations

import numbers

from recurrent_mnist.errors import ConfigError

__all__ = [
    "DEFAULT_READING",
    "READINGS",
    "check_permutation",
    "check_permutation_seed",
    "check_reading",
    "draw_permutation",
    "sequence_shape",
]

READINGS = ("rows", "pixels", "permuted-pixels")
DEFAULT_READING = "rows"


def check_reading(value, argument: str = "reading") -> str:
    """`value` as a reading name (`-` and `_` alike, any case), or ConfigError naming the argument."""
    if isinstance(value, str):
        name = value.strip().lower().replace("_", "-")
        if name in READINGS:
            return name
    raise ConfigError(
        f"`{argument}` must be one of {', '.join(READINGS)}. Received: {argument}={value!r}", argument=argument
    )


def check_permutation_seed(value, argument: str = "permutation_seed") -> int:
    """`value` as a permutation seed (an integer >= 0), or ConfigError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"`{argument}` must be an integer >= 0. Received: {argument}={value!r}", argument=argument)
    return int(value)


def draw_permutation(length: int, seed: int) -> list[int]:
    """A permutation of `range(length)` drawn from `seed` (NumPy's PCG64 generator)."""
    import numpy as np

    return np.random.default_rng(check_permutation_seed(seed)).permutation(length).tolist()


def check_permutation(permutation, length: int | None = None) -> list[int]:
    """A stored permutation as a list of ints, or ConfigError if it is not one (of `length` items, if given)."""
    values = list(permutation)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values) or sorted(values) != list(
        range(len(values))
    ):
        raise ConfigError("`permutation` must hold each of 0 .. n-1 once.", argument="permutation")
    if length is not None and len(values) != length:
        raise ConfigError(
            f"`permutation` orders {len(values)} pixels; these images have {length}. A permuted-pixels model reads "
            "images of the size it was built for only.",
            argument="permutation",
        )
    return [int(v) for v in values]


def sequence_shape(height, width, reading: str) -> tuple:
    """`(steps, features)` of an `(height, width)` image read this way; None for a size not known yet."""
    if reading == "rows":
        return height, width
    steps = None if height is None or width is None else height * width
    return steps, 1
