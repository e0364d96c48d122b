"""TensorBoard logs for `bench` and `train`: scalars per epoch, and an HParams session per variant.

`tensorboard_callbacks(root, name)` gives the callbacks of one variant's training:
Keras's own `TensorBoard` (loss and accuracy per epoch under `<root>/<name>/train`
and `.../validation`) and `EpochTimes` (the training time of each epoch, and
whether it included compilation). After training, `write_hparams(root, name,
config, row)` records the variant's configuration and its final figures as one
HParams session, and `write_hparams_config` declares the columns of the
dashboard once per root, so TensorBoard's HParams tab shows a comparison as a
table and as parallel coordinates. The layout follows keras-tuner's (one run per
trial, `hparams_api.hparams` in its root, Keras's per-epoch scalars below).

TensorBoard's summary writers come from TensorFlow: under another Keras backend
`TensorBoardUnavailable` says so before anything trains.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.training.config import TrainConfig

__all__ = [
    "HPARAMS",
    "METRICS",
    "EpochTimes",
    "check_tensorboard",
    "prepare_tensorboard_root",
    "tensorboard_callbacks",
    "write_hparams",
    "write_hparams_config",
]

# The configuration a comparison varies (TrainConfig fields), and the framework that trained it.
HPARAMS = (
    "cell",
    "units",
    "layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
    "reading",
    "permutation_seed",
    "learning_rate",
    "clipnorm",
    "train_images",
    "batch_size",
    "seed",
    "framework",
)
# The final figures of a variant (runs.csv columns), as HParams metrics: (column, display name).
METRICS = (
    ("test_accuracy", "test accuracy"),
    ("test_loss", "test loss"),
    ("best_val_accuracy", "best validation accuracy"),
    ("epoch_time_s", "steady-state epoch time (s)"),
    ("params", "parameters"),
)
METRIC_TAG = "variant/{}"


def check_tensorboard() -> None:
    """Raises `ConfigError` when TensorBoard logs cannot be written here (another backend, no tensorboard)."""
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "`tensorboard_dir` needs the TensorFlow backend (TensorBoard's writers are TensorFlow's). "
            f"Received: tensorboard_dir with KERAS_BACKEND={keras.backend.backend()}",
            argument="tensorboard_dir",
        )
    try:
        import tensorboard.plugins.hparams.api  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"`tensorboard_dir` needs the tensorboard package: pip install tensorboard ({exc})",
            argument="tensorboard_dir",
        ) from None


class EpochTimes(keras.callbacks.Callback):
    """Writes each epoch's training time (`epoch_time_s`) and whether it compiled, from `Monitor`'s history."""

    def __init__(self, log_dir: str | os.PathLike, monitor):
        super().__init__()
        self.log_dir, self.monitor = str(log_dir), monitor
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        if not self.monitor.history:
            return
        entry = self.monitor.history[-1]
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.scalar("epoch_time_s", entry["epoch_time_s"], step=epoch)
            tf.summary.scalar("includes_compilation", float(entry["includes_compilation"]), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_callbacks(root: str | os.PathLike, name: str, monitor) -> list[keras.callbacks.Callback]:
    """The callbacks that log one variant's training under `<root>/<name>/`."""
    log_dir = Path(root) / name
    return [
        keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=0, write_graph=False),
        EpochTimes(log_dir / "train", monitor),
    ]


def _hparam_value(value):
    if isinstance(value, bool | int | float | str):
        return value
    return None if value is None else str(value)


def write_hparams(root: str | os.PathLike, name: str, config: TrainConfig, row: dict, framework: str) -> None:
    """Records one variant as an HParams session: its configuration and its final figures."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    values = {**config.to_dict(), "framework": framework}
    hparams = {key: _hparam_value(values.get(key)) for key in HPARAMS}
    hparams = {key: value for key, value in hparams.items() if value is not None}
    writer = tf.summary.create_file_writer(str(Path(root) / name))
    with writer.as_default():
        hparams_api.hparams(hparams, trial_id=name)
        for column, _ in METRICS:
            value = row.get(column)
            if value is not None and not (isinstance(value, float) and value != value):  # NaN: no figure
                tf.summary.scalar(METRIC_TAG.format(column), float(value), step=0)
    writer.close()


def prepare_tensorboard_root(root: str | os.PathLike) -> None:
    """Creates `root` and declares the HParams dashboard there, unless an earlier call did."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not any(root.glob("events.out.tfevents.*")):
            write_hparams_config(root)
    except OSError as exc:
        raise ResultsError(
            f"the TensorBoard folder {root} cannot be created or written: {exc.strerror or exc}"
        ) from None


def write_hparams_config(root: str | os.PathLike) -> None:
    """Declares the dashboard's columns (the hyperparameters and the metrics) at `root`, once per root."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    writer = tf.summary.create_file_writer(str(root))
    with writer.as_default():
        hparams_api.hparams_config(
            hparams=[hparams_api.HParam(name) for name in HPARAMS],
            metrics=[
                *(hparams_api.Metric(METRIC_TAG.format(column), display_name=label) for column, label in METRICS),
                hparams_api.Metric("epoch_accuracy", group="validation", display_name="validation accuracy (epoch)"),
                hparams_api.Metric("epoch_loss", group="train", display_name="training loss (epoch)"),
            ],
        )
    writer.close()
