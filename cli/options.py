"""Choices and value checks shared by the commands' options (no TensorFlow import here)."""

from __future__ import annotations

import math
from enum import StrEnum

import typer

THREADS_HELP = (
    "CPU threads per training process: TensorFlow runs this many operations side by side, each on one "
    "thread, and the recurrent layers split every batch into this many parallel chains (docs/speed.md). "
    "Default: the cores this process may use."
)


def apply_threads(threads: int | None) -> None:
    """Sets TensorFlow's threads for this process and the ones it starts: `threads`, or every usable core."""
    from recurrent_mnist.environment import available_cores, limit_threads

    limit_threads(threads if threads is not None else available_cores())


class DatasetName(StrEnum):
    mnist = "mnist"
    fashion_mnist = "fashion-mnist"
    mnist_sample = "mnist-sample"


class StrategyName(StrEnum):
    default = "default"
    mirrored = "mirrored"


def fraction(value: float | None) -> float | None:
    """A value in [0, 1), such as a dropout rate."""
    if value is not None and not 0.0 <= value < 1.0:
        raise typer.BadParameter(f"{value} is not in [0, 1)")
    return value


def positive(value: float | None) -> float | None:
    """A finite number above zero, such as a learning rate."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number")
    return value
