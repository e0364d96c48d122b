"""`train_peer`: train and measure one PyTorch variant as `training.train_variant` trains a Keras one.

The row it returns has the columns of a Keras row of `runs.csv`, filled alike:
the epoch time of an epoch is its training alone (validation excluded), the
steady-state epoch time is the median of the epochs after the first (PyTorch
compiles nothing, but its first epoch warms up the allocator and oneDNN; both
frameworks' figure thus covers the same epochs, and one epoch gives none in
either), inference is timed at batch 1024, latency on single images, memory
with `training.measure.MemoryWatch`. Imports PyTorch, never Keras.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import numpy as np
import torch
from torch import nn

from recurrent_mnist.datasets import Dataset
from recurrent_mnist.environment import framework_name
from recurrent_mnist.runs.records import now
from recurrent_mnist.torch_peer.model import PeerClassifier
from recurrent_mnist.training.config import TrainConfig
from recurrent_mnist.training.measure import (
    LATENCY_CALLS,
    MemoryWatch,
    best_epoch,
    process_peak_rss_mb,
    steady_epoch_time,
    steady_epochs,
)
from recurrent_mnist.training.pipeline import INFERENCE_BATCH, split_validation

__all__ = ["KERAS_ADAM_EPSILON", "set_threads", "train_peer"]

# keras.optimizers.Adam's default epsilon (PyTorch's is 1e-8).
KERAS_ADAM_EPSILON = 1e-7
_INFERENCE_REPEATS = 3
_LATENCY_WARMUP = 5


def set_threads(threads: int) -> None:
    """PyTorch on `threads` intra-op threads and one inter-op thread (the batch's matrix products
    split over the threads), before it runs anything in this process."""
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already fixed once PyTorch ran parallel work in this process
            pass


def train_peer(dataset: Dataset, config: TrainConfig, *, emit=None, measure: bool = True) -> tuple[dict, list[dict]]:
    """Trains and measures the PyTorch peer of one variant.

    Args:
        dataset: the data (the same arrays as the Keras variants').
        config: the variant (see `torch_peer.refusal` for what the peer refuses).
        emit: receives the progress events `train_variant` sends.
        measure: also time inference and latency.

    The caller sets the threads (`set_threads(config.threads)`).

    Returns:
        `(row, history)`: the variant's row of `runs.csv` and its per-epoch history.
        A non-finite loss gives `status="failed"` with the reason in `error`.
    """
    with MemoryWatch() as memory:
        row, history = _train(dataset, config, emit or (lambda event: None), measure)
    row["variant_rss_growth_mb"] = memory.growth_mb
    row["process_peak_rss_mb"] = process_peak_rss_mb()
    row["finished_at"] = now()
    return row, history


def _train(dataset: Dataset, config: TrainConfig, emit, measure: bool) -> tuple[dict, list[dict]]:
    """Builds the peer, fits it and measures it: the row of `train_peer` but its memory figures, and the history."""
    torch.manual_seed(config.seed)
    x_train, y_train, x_val, y_val = split_validation(
        dataset.x_train, dataset.y_train, config.validation_split, config.train_images
    )
    model = PeerClassifier(
        config.cell,
        features=dataset.image_shape[1],
        units=config.units,
        num_classes=dataset.num_classes,
        num_layers=config.layers,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
    )
    fitted = _fit(_Epochs(model, config, x_train, y_train, emit), x_val, y_val)
    return _row(model, dataset, config, len(x_train), fitted, measure), fitted.history


# -- fit --------------------------------------------------------------------------------


class _Epochs:
    """The model, its optimizer and the training data: trains one epoch at a time, as `model.fit` does,
    over a new permutation of the images each epoch (tf.data's order cannot be reproduced without
    TensorFlow)."""

    def __init__(self, model: nn.Module, config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, emit):
        self.model, self.config, self.emit = model, config, emit
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=KERAS_ADAM_EPSILON)
        self.loss_fn = nn.CrossEntropyLoss()
        self.images, self.labels = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
        self.shuffle = np.random.default_rng(config.seed)
        self.steps = math.ceil(len(x_train) / config.batch_size)

    def train(self, epoch: int) -> tuple[float, dict, str | None]:
        """Trains one epoch.

        Returns:
            The epoch's training time in seconds, its logs (mean loss and accuracy over the batches
            trained), and why it failed (a non-finite loss) or None.
        """
        model, batch_size = self.model, self.config.batch_size
        model.train()
        loss_sum, correct, seen, last_emit = 0.0, 0, 0, 0.0
        failure = None
        start = time.perf_counter()
        order = torch.from_numpy(self.shuffle.permutation(len(self.images)))
        for step, first in enumerate(range(0, len(self.images), batch_size), start=1):
            index = order[first : first + batch_size]
            batch_labels = self.labels[index]
            logits = model(self.images[index])
            loss = self.loss_fn(logits, batch_labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            batch_loss = loss.item()
            if not math.isfinite(batch_loss):
                failure = f"the loss became {batch_loss} in epoch {epoch}"
                break
            loss_sum += batch_loss * len(index)
            correct += int((logits.argmax(dim=1) == batch_labels).sum())
            seen += len(index)
            clock = time.perf_counter()
            if clock - last_emit >= 0.25:
                last_emit = clock
                self.emit(
                    {
                        "event": "batch",
                        "epoch": epoch,
                        "step": step,
                        "steps": self.steps,
                        "loss": loss_sum / seen,
                        "accuracy": correct / seen,
                    }
                )
        train_time = time.perf_counter() - start
        logs = {"loss": loss_sum / seen if seen else None, "accuracy": correct / seen if seen else None}
        return train_time, logs, failure


@dataclasses.dataclass
class _Fitted:
    """What the epochs give the row: when they started, their history, why they failed (None if they
    did not), and the epoch and training seconds that reached the target accuracy."""

    started: str
    history: list[dict] = dataclasses.field(default_factory=list)
    failure: str | None = None
    target_epoch: int | None = None
    target_seconds: float | None = None


def _fit(epochs: _Epochs, x_val: np.ndarray | None, y_val: np.ndarray | None) -> _Fitted:
    """Trains epoch after epoch, validating each, until the last epoch, a failure or early stopping."""
    model, config, emit = epochs.model, epochs.config, epochs.emit
    stopper = _EarlyStopping(config.early_stopping) if config.early_stopping is not None and x_val is not None else None
    fitted = _Fitted(started=now())
    for epoch in range(1, config.epochs + 1):
        emit({"event": "epoch_begin", "epoch": epoch, "epochs": config.epochs, "steps": epochs.steps})
        train_time, logs, fitted.failure = epochs.train(epoch)
        if x_val is not None and fitted.failure is None:
            logs["val_loss"], logs["val_accuracy"] = _evaluate(model, x_val, y_val)
            if not math.isfinite(logs["val_loss"]):
                fitted.failure = f"the val loss became {logs['val_loss']} in epoch {epoch}"
        fitted.history.append(
            {
                "epoch": epoch,
                "epoch_time_s": train_time,
                "includes_compilation": False,
                "warm_up": epoch == 1,  # the first epoch of the process, kept out of the steady state
                **{key: logs.get(key) for key in ("loss", "accuracy", "val_loss", "val_accuracy")},
            }
        )
        val_accuracy = logs.get("val_accuracy")
        if config.target_accuracy is not None and fitted.target_epoch is None and val_accuracy is not None:
            if val_accuracy >= config.target_accuracy:  # training time only, as Monitor counts it
                fitted.target_epoch = epoch
                fitted.target_seconds = sum(entry["epoch_time_s"] for entry in fitted.history)
        emit(
            {
                "event": "epoch_end",
                "epoch": epoch,
                "epochs": config.epochs,
                "epoch_time_s": train_time,
                "includes_compilation": False,
                "logs": logs,
            }
        )
        if fitted.failure or (stopper is not None and stopper.stop(model, epoch, val_accuracy)):
            break
    if stopper is not None:
        stopper.restore(model)
    return fitted


# -- measure ----------------------------------------------------------------------------


def _row(model: nn.Module, dataset: Dataset, config: TrainConfig, train_samples: int, fitted: _Fitted, measure: bool):
    """The variant's row of `runs.csv`: its configuration, training figures and test figures."""
    history = fitted.history
    best_val_accuracy, best_val_epoch = best_epoch(history)
    steady = steady_epoch_time(history)
    row = {
        **config.columns(),
        "framework": framework_name("torch"),
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": len(history),
        "train_samples": train_samples,
        "replicas": 1,
        "xla": False,
        "status": "failed" if fitted.failure else "ok",
        "error": fitted.failure or "",
        "best_val_accuracy": best_val_accuracy,
        "best_epoch": best_val_epoch,
        "epoch_time_s": steady,
        "steady_epochs": len(steady_epochs(history)),
        "first_epoch_s": history[0]["epoch_time_s"] if history else None,
        "train_time_s": sum(entry["epoch_time_s"] for entry in history),
        "epochs_to_target": fitted.target_epoch,
        "seconds_to_target": fitted.target_seconds,
        "started_at": fitted.started,
        "train_samples_per_s": train_samples / steady if steady else None,
        "test_accuracy": None,
        "test_loss": None,
        "infer_samples_per_s": None,
        "latency_ms_p50": None,
        "latency_ms_p95": None,
    }
    if fitted.failure:
        return row
    row["test_loss"], row["test_accuracy"] = _evaluate(model, dataset.x_test, dataset.y_test)
    if measure:
        row["infer_samples_per_s"] = _measure_inference(model, dataset.x_test)
        row["latency_ms_p50"], row["latency_ms_p95"] = _measure_latency(model, dataset.x_test)
    return row


class _EarlyStopping:
    """`keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=..., restore_best_weights=True)`:
    stop once `patience` epochs in a row did not beat the best; at the end, restore the best epoch's weights."""

    def __init__(self, patience: int):
        self.patience, self.wait, self.best, self.best_state = patience, 0, -math.inf, None

    def stop(self, model: nn.Module, epoch: int, val_accuracy: float | None) -> bool:
        if val_accuracy is None:
            return False
        if self.best_state is None:
            self.best_state = copy.deepcopy(model.state_dict())
        self.wait += 1
        if val_accuracy > self.best:
            self.best, self.wait = val_accuracy, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        return self.wait >= self.patience and epoch > 1

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def _predict(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """Logits as numpy, in batches of `INFERENCE_BATCH`: what Keras's `predict` returns."""
    model.eval()
    with torch.inference_mode():
        return np.concatenate(
            [
                model(torch.from_numpy(images[i : i + INFERENCE_BATCH])).numpy()
                for i in range(0, len(images), INFERENCE_BATCH)
            ]
        )


def _evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, as Keras's `evaluate` (batch 1024, dropout off)."""
    logits = torch.from_numpy(_predict(model, images))
    targets = torch.from_numpy(labels.astype(np.int64))
    loss = float(nn.functional.cross_entropy(logits, targets))
    return loss, float((logits.argmax(dim=1) == targets).double().mean())


def _measure_inference(model: nn.Module, images: np.ndarray) -> float:
    """Samples per second of `_predict` over `images` (median of 3, after a warm-up), as `measure_inference`."""
    _predict(model, images[:INFERENCE_BATCH])
    times = []
    for _ in range(_INFERENCE_REPEATS):
        start = time.perf_counter()
        _predict(model, images)
        times.append(time.perf_counter() - start)
    return len(images) / float(np.median(times))


def _measure_latency(model: nn.Module, images: np.ndarray, calls: int = LATENCY_CALLS) -> tuple[float, float]:
    """Single-image latency in milliseconds, (p50, p95), after a warm-up: as `measure_latency`."""
    model.eval()
    with torch.inference_mode():
        for i in range(_LATENCY_WARMUP):
            model(torch.from_numpy(images[i : i + 1])).numpy()
        times = []
        for i in range(calls):
            image = images[i % len(images) : i % len(images) + 1]
            start = time.perf_counter()
            model(torch.from_numpy(image)).numpy()
            times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))
