"""Several accelerators on one machine: `tf.distribute` strategies by name.

`get_strategy("mirrored")` returns a `tf.distribute.MirroredStrategy` over every
GPU, or, on a machine without one, over its logical CPU devices (see
`split_cpu`). Build and compile the model inside `strategy.scope()`; Keras's
`fit` then splits each batch across the replicas.
"""

from __future__ import annotations

import contextlib

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError

__all__ = ["STRATEGIES", "get_strategy", "split_cpu", "strategy_scope"]

STRATEGIES = settings.STRATEGY.choices


def split_cpu(count: int) -> None:
    """Splits the first CPU into `count` logical devices, so that a mirrored strategy can be
    tried on a machine without accelerators. Call it before TensorFlow runs any operation."""
    import tensorflow as tf

    if count < 2:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as exc:
        raise ConfigError(f"the CPU cannot be split into {count} devices once TensorFlow has started: {exc}") from None


def get_strategy(name: str | None):
    """Returns the named strategy: `"default"` (one device) or `"mirrored"`.

    Raises:
        ConfigError: an unknown name, or a backend other than TensorFlow.
    """
    import keras

    name = name or "default"
    settings.STRATEGY.check(name)
    if keras.backend.backend() != "tensorflow":
        if name == "default":
            return None
        raise ConfigError(
            f"`strategy={name!r}` needs the TensorFlow backend; Keras runs on {keras.backend.backend()}",
            argument="strategy",
        )
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def strategy_scope(strategy):
    """The strategy's scope, or a no-op context for None."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
