"""The callbacks of one training: progress and epoch timing (`Monitor`), and resumable checkpoints.

`Monitor` times each epoch's training (validation excluded), stops on a non-finite
loss and reports progress events; `Checkpoint` and `restore` save and resume a
training after every epoch, atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import keras

from recurrent_mnist.errors import ResultsError
from recurrent_mnist.runs.atomic import atomic_path, atomic_write_json
from recurrent_mnist.runs.records import now
from recurrent_mnist.training.config import TrainConfig

__all__ = ["Checkpoint", "Emit", "Monitor", "now", "restore"]

Emit = Callable[[dict], None]


class Monitor(keras.callbacks.Callback):
    """Times each epoch's training (validation excluded), stops on a non-finite loss,
    and reports progress through `emit`.

    The first epoch of a `fit` call traces and compiles the training step: its history
    entry says so (`includes_compilation`), and no steady-state time counts it.
    """

    def __init__(self, emit: Emit | None, epochs: int, steps: int, target: float | None):
        super().__init__()
        self.emit = emit
        self.epochs = epochs
        self.steps = steps
        self.target = target
        self.epoch_times: list[float] = []
        self.history: list[dict] = []  # one entry per epoch trained in this process
        self.failure: str | None = None
        self.target_epoch: int | None = None
        self.target_seconds: float | None = None
        self._epoch_start = 0.0
        self._last_emit = 0.0
        self._train_time = None
        self._epoch = 1
        self._compiled = False

    def _send(self, event: dict):
        if self.emit is not None:
            self.emit(event)

    def on_epoch_begin(self, epoch, logs=None):
        self._train_time = None
        self._epoch = epoch + 1
        self._epoch_start = time.perf_counter()
        self._send(
            {
                "event": "epoch_begin",
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "steps": self.steps,
                # Keras reports a step each time a call of this many steps returns.
                "steps_per_call": int(getattr(self.model, "steps_per_execution", 1) or 1),
            }
        )

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = f"the loss became {float(loss)} in epoch {self._epoch}"
            self.model.stop_training = True
        now = time.perf_counter()
        # With several steps per execution, Keras names the last step of a call,
        # which the epoch's final call may place past the epoch's end.
        step = min(batch + 1, self.steps)
        if now - self._last_emit >= 0.25 or step == self.steps:  # at most 4 a second, and the epoch's last
            self._last_emit = now
            self._send(
                {
                    "event": "batch",
                    "epoch": self._epoch,
                    "step": step,
                    "steps": self.steps,
                    "loss": _float(loss),
                    "accuracy": _float((logs or {}).get("accuracy")),
                }
            )

    def on_test_begin(self, logs=None):
        if self._train_time is None:  # validation inside fit: the epoch's training is over
            self._train_time = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        train_time = self._train_time if self._train_time is not None else time.perf_counter() - self._epoch_start
        self.epoch_times.append(train_time)
        includes_compilation = not self._compiled
        self._compiled = True
        logs = {k: _float(v) for k, v in (logs or {}).items()}
        self.history.append(
            {
                "epoch": epoch + 1,
                "epoch_time_s": train_time,
                "includes_compilation": includes_compilation,
                **{key: logs.get(key) for key in ("loss", "accuracy", "val_loss", "val_accuracy")},
            }
        )
        val_acc = logs.get("val_accuracy")
        if self.target is not None and self.target_epoch is None and val_acc is not None and val_acc >= self.target:
            self.target_epoch = epoch + 1
            self.target_seconds = sum(self.epoch_times)  # training time only, in this process
        for key in ("loss", "val_loss"):
            if key in logs and logs[key] is not None and not math.isfinite(logs[key]) and self.failure is None:
                self.failure = f"the {key.replace('_', ' ')} became {logs[key]} in epoch {epoch + 1}"
                self.model.stop_training = True
        self._send(
            {
                "event": "epoch_end",
                "epoch": epoch + 1,
                "epochs": self.epochs,
                "epoch_time_s": train_time,
                "includes_compilation": includes_compilation,
                "logs": logs,
            }
        )


def _float(value):
    return None if value is None else float(value)


class Checkpoint(keras.callbacks.Callback):
    """After every epoch, saves the weights (with the optimizer's state) and the history so far.

    The weights go to a new file named by the epoch, then `state.json`, which
    names it, replaces the old one: a kill at any moment leaves the previous
    checkpoint or the new one, whole.
    """

    def __init__(self, folder: Path, config: TrainConfig, monitor: Monitor, earlier: list[dict]):
        super().__init__()
        self.folder, self.config, self.monitor, self.earlier = folder, config, monitor, earlier

    def on_epoch_end(self, epoch, logs=None):
        weights = self.folder / f"epoch-{epoch + 1:04d}.weights.h5"
        with atomic_path(weights, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        state = {
            "config": self.config.to_dict(),
            "epoch": epoch + 1,
            "weights": weights.name,
            "history": self.earlier + self.monitor.history,
        }
        atomic_write_json(self.folder / "state.json", state)
        for old in self.folder.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink(missing_ok=True)


def restore(model: keras.Model, folder: Path, config: TrainConfig) -> tuple[int, list[dict]]:
    """Loads a checkpoint written by `Checkpoint`; returns (epochs done, their history)."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        return 0, []
    except (OSError, ValueError) as exc:
        raise ResultsError(f"the checkpoint {folder / 'state.json'} cannot be read ({exc}); delete {folder}") from None
    if state.get("config") != config.to_dict():
        raise ResultsError(
            f"the checkpoint in {folder} belongs to another configuration; delete it to start over, "
            "or give another output path"
        )
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(folder / state["weights"])
    except (OSError, ValueError, KeyError) as exc:
        raise ResultsError(f"the checkpoint in {folder} is damaged ({exc}); delete it to start over") from None
    return int(state["epoch"]), list(state.get("history", []))
