"""Training and measuring one model variant: the unit of work of `bench`, `train` and `tune`.

`train_variant(dataset, config)` seeds everything, carves a validation split from
the training data, trains a `RowSequenceClassifier` with `model.fit`, evaluates
the test set once, and measures what a comparison needs: steady-state and first
epoch times, throughput, inference speed, single-image latency and peak memory.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from recurrent_mnist import fast_rnn
from recurrent_mnist.cells import canonical_cell_name
from recurrent_mnist.datasets import Dataset
from recurrent_mnist.distribute import STRATEGIES, get_strategy, strategy_scope
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.model import RowSequenceClassifier
from recurrent_mnist.reporting import atomic_path, atomic_write_json

__all__ = [
    "TrainConfig",
    "VariantResult",
    "compile_model",
    "input_pipeline",
    "split_validation",
    "steps_per_execution_for",
    "train_variant",
]

# The validation split is the same for every variant and seed, so that validation
# figures compare models, not splits.
VALIDATION_SPLIT_SEED = 0
INFERENCE_BATCH = 1024
# jit_compile=None turns XLA on for the fast LSTM up to this batch size, where it
# was measured faster on one thread (benchmarks/vs_pytorch.py --impls keras-xla;
# docs/speed.md); with parallel batch chains (several inter-op threads) it stays off.
AUTO_XLA_MAX_BATCH = 64
# Training steps per call into the compiled graph: fewer Python round trips (docs/speed.md).
STEPS_PER_EXECUTION = 50
LATENCY_CALLS = 100

Emit = Callable[[dict], None]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one trained variant.

    Attributes:
        cell: a registered cell name (`lstm`, `gru`, `simple_rnn`, ...).
        units, num_layers, bidirectional, dropout, recurrent_dropout: the model.
        epochs: the most epochs to train.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        validation_split: fraction of the training images held out for validation.
        early_stopping: stop after this many epochs without a better validation
            accuracy and keep the best weights; None trains every epoch.
        target_accuracy: a validation accuracy whose first epoch and time are reported.
        seed: seeds weights, shuffling and dropout.
        steps_per_execution: training steps run per call into the compiled
            graph (fewer Python round trips; see docs/speed.md).
        jit_compile: compile the whole training step with XLA. None (the
            default) decides by measurement: on for the fast `lstm` cell at
            batch sizes up to 64 when TensorFlow runs one chain (one thread;
            about 15 % faster epochs on a CPU, at a few seconds of
            compilation), off otherwise (no faster, more compilation per
            variant, and slower than parallel batch chains); see docs/speed.md.
        strategy: `"default"` (one device) or `"mirrored"` (every GPU, or the
            logical CPU devices; see `recurrent_mnist.distribute`).
    """

    cell: str = "lstm"
    units: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    early_stopping: int | None = None
    target_accuracy: float | None = None
    seed: int = 0
    steps_per_execution: int = STEPS_PER_EXECUTION
    jit_compile: bool | None = None
    strategy: str = "default"

    def __post_init__(self):
        def positive_int(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; received {value!r}")

        for name in ("units", "num_layers", "epochs", "batch_size", "steps_per_execution"):
            positive_int(name)
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); received {value!r}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1); received {self.validation_split!r}")
        if not (
            isinstance(self.learning_rate, (int, float))
            and math.isfinite(self.learning_rate)
            and self.learning_rate > 0
        ):
            raise ConfigError(f"learning_rate must be a positive number; received {self.learning_rate!r}")
        if self.early_stopping is not None:
            positive_int("early_stopping")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError(f"target_accuracy must be in (0, 1]; received {self.target_accuracy!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; received {self.strategy!r}")
        if self.jit_compile not in (None, True, False):
            raise ConfigError(f"jit_compile must be True, False or None (automatic); received {self.jit_compile!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; received {self.seed!r}")
        try:
            object.__setattr__(self, "cell", canonical_cell_name(self.cell))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def uses_xla(self) -> bool:
        """Whether training compiles with XLA: `jit_compile`, or the automatic choice when it is None."""
        if self.jit_compile is not None:
            return self.jit_compile
        return (
            self.cell == "lstm"
            and self.batch_size <= AUTO_XLA_MAX_BATCH
            and not self.recurrent_dropout  # the stock layer, which XLA slows down
            and self.strategy == "default"
            and keras.backend.backend() == "tensorflow"
            # XLA runs the step on one thread: it loses to parallel batch chains.
            and fast_rnn.parallel_chains() == 1
        )

    def model_kwargs(self) -> dict:
        return {
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VariantResult:
    """One trained variant: its row of `runs.csv`, its per-epoch history, and the model."""

    row: dict
    history: list[dict]
    model: keras.Model | None = None


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float):
    """Splits off a fixed, seeded validation subset of the training data (never the test set)."""
    if fraction <= 0:
        return x, y, None, None
    order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(x))
    n_val = max(1, round(len(x) * fraction))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def compile_model(
    model: keras.Model, learning_rate: float, steps_per_execution: int = 1, jit_compile: bool = False
) -> keras.Model:
    """Compiles with Adam, cross-entropy on logits (no softmax twice) and accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def steps_per_execution_for(strategy: str, requested: int = STEPS_PER_EXECUTION) -> int:
    """`requested` steps per execution, or 1 under a distribution strategy.

    Keras 3.15 / TF 2.21 fail on a multi-step execution under MirroredStrategy
    ("You must feed a value for placeholder tensor ... while/cond/Placeholder_1").
    """
    return requested if strategy == "default" else 1


def input_pipeline(x: np.ndarray, y: np.ndarray | None, batch_size: int, *, shuffle_seed: int | None = None):
    """A `tf.data` pipeline over in-memory arrays, or None on other Keras backends.

    The images stay uint8 (the model scales them). tf.data's autotuning is off
    and the prefetch depth fixed: with `prefetch(AUTOTUNE)`, which is also what
    Keras builds for numpy input, tearing down each epoch's iterator waits for
    the autotune thread and stalled every epoch by 1-3 s on a 2-core machine
    (docs/speed.md).
    """
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


class _Monitor(keras.callbacks.Callback):
    """Times each epoch's training (validation excluded), stops on a non-finite loss,
    and reports progress through `emit`."""

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

    def _send(self, event: dict):
        if self.emit is not None:
            self.emit(event)

    def on_epoch_begin(self, epoch, logs=None):
        self._train_time = None
        self._epoch = epoch + 1
        self._epoch_start = time.perf_counter()
        self._send({"event": "epoch_begin", "epoch": epoch + 1, "epochs": self.epochs, "steps": self.steps})

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = f"the loss became {float(loss)} in epoch {self._epoch}"
            self.model.stop_training = True
        now = time.perf_counter()
        if now - self._last_emit >= 0.25:
            self._last_emit = now
            self._send(
                {
                    "event": "batch",
                    "epoch": self._epoch,
                    "step": batch + 1,
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
        logs = {k: _float(v) for k, v in (logs or {}).items()}
        self.history.append(
            {
                "epoch": epoch + 1,
                "epoch_time_s": train_time,
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
            {"event": "epoch_end", "epoch": epoch + 1, "epochs": self.epochs, "epoch_time_s": train_time, "logs": logs}
        )


def _float(value):
    return None if value is None else float(value)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def steady_epoch_time(epoch_times: list[float]) -> float | None:
    """The median epoch time, the first epoch (tracing, compilation) excluded when there are several."""
    if not epoch_times:
        return None
    steady = epoch_times[1:] if len(epoch_times) > 1 else epoch_times
    return float(np.median(steady))


def measure_inference(model: keras.Model, x: np.ndarray, repeats: int = 3) -> float:
    """Samples per second of `model.predict` at a large batch (median of repeats, after a warm-up).

    The images go through `input_pipeline` (no autotune stall when the iterator is
    torn down, which otherwise adds seconds at random to a one-second measurement).
    """
    data = input_pipeline(x, None, INFERENCE_BATCH)
    model.predict(x[:INFERENCE_BATCH], batch_size=INFERENCE_BATCH, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if data is not None:
            model.predict(data, verbose=0)
        else:
            model.predict(x, batch_size=INFERENCE_BATCH, verbose=0)
        times.append(time.perf_counter() - start)
    return len(x) / float(np.median(times))


def measure_latency(model: keras.Model, x: np.ndarray, calls: int = LATENCY_CALLS) -> tuple[float, float]:
    """Single-image latency of `predict_on_batch` in milliseconds: (p50, p95), after a warm-up."""
    for i in range(5):
        model.predict_on_batch(x[i : i + 1])
    times = []
    for i in range(calls):
        image = x[i % len(x) : i % len(x) + 1]
        start = time.perf_counter()
        model.predict_on_batch(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


class _Checkpoint(keras.callbacks.Callback):
    """After every epoch, saves the weights (with the optimizer's state) and the history so far.

    The weights go to a new file named by the epoch, then `state.json`, which
    names it, replaces the old one: a kill at any moment leaves the previous
    checkpoint or the new one, whole.
    """

    def __init__(self, folder: Path, config: TrainConfig, monitor: _Monitor, earlier: list[dict]):
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


def _restore(model: keras.Model, folder: Path, config: TrainConfig) -> tuple[int, list[dict]]:
    """Loads a checkpoint written by `_Checkpoint`; returns (epochs done, their history)."""
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


def train_variant(
    dataset: Dataset,
    config: TrainConfig,
    *,
    emit: Emit | None = None,
    measure: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
    keep_model: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
) -> VariantResult:
    """Trains and measures one variant.

    Args:
        dataset: the validated data.
        config: the variant.
        emit: receives progress events (dicts with an `"event"` key).
        measure: also time inference and latency.
        callbacks: more Keras callbacks for `fit`.
        keep_model: return the trained model in the result.
        checkpoint_dir: save a checkpoint there after every epoch, and resume
            from the one found there. The caller removes it when done.

    Returns:
        A `VariantResult`. A non-finite loss gives `status="failed"` with the
        reason in `error`; other exceptions propagate.

    Raises:
        ResultsError: the checkpoint is unreadable or of another configuration.
    """
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_split)
    strategy = get_strategy(config.strategy)
    with strategy_scope(strategy):
        model = RowSequenceClassifier(num_classes=dataset.num_classes, **config.model_kwargs())
        model.build((None, *dataset.image_shape))
        steps_per_execution = steps_per_execution_for(config.strategy, config.steps_per_execution)
        compile_model(model, config.learning_rate, steps_per_execution, config.uses_xla())

    steps = math.ceil(len(x_train) / config.batch_size)
    monitor = _Monitor(emit, config.epochs, steps, config.target_accuracy)
    fit_callbacks = [monitor, *(callbacks or [])]
    initial_epoch, earlier = 0, []
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        initial_epoch, earlier = _restore(model, folder, config)
        folder.mkdir(parents=True, exist_ok=True)
        fit_callbacks.append(_Checkpoint(folder, config, monitor, earlier))
    if config.early_stopping is not None and x_val is not None:
        fit_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.early_stopping, restore_best_weights=True
            )
        )

    started = _now()
    if initial_epoch < config.epochs:
        train_data = input_pipeline(x_train, y_train, config.batch_size, shuffle_seed=config.seed)
        if train_data is not None:
            val_data = input_pipeline(x_val, y_val, INFERENCE_BATCH) if x_val is not None else None
            model.fit(
                train_data,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                validation_data=val_data,
                shuffle=False,  # the pipeline shuffles, seeded, every epoch
                callbacks=fit_callbacks,
                verbose=0,
            )
        else:
            model.fit(
                x_train,
                y_train,
                batch_size=config.batch_size,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                validation_data=(x_val, y_val) if x_val is not None else None,
                shuffle=True,
                callbacks=fit_callbacks,
                verbose=0,
            )
    history_rows = earlier + monitor.history
    epoch_times = [entry["epoch_time_s"] for entry in history_rows]
    elapsed = 0.0
    for entry in history_rows:
        elapsed += entry["epoch_time_s"]
        entry["train_time_s"] = elapsed

    scored = [
        (entry["val_accuracy"], entry["epoch"])
        for entry in history_rows
        if entry.get("val_accuracy") is not None and math.isfinite(entry["val_accuracy"])
    ]
    best_val_accuracy, best_epoch = max(scored, key=lambda pair: pair[0]) if scored else (None, None)
    row = {
        "cell": config.cell,
        "seed": config.seed,
        "units": config.units,
        "layers": config.num_layers,
        "bidirectional": config.bidirectional,
        "dropout": config.dropout,
        "recurrent_dropout": config.recurrent_dropout,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "params": int(model.count_params()),
        "epochs": len(history_rows),
        "epochs_requested": config.epochs,
        "train_samples": len(x_train),
        "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        "xla": config.uses_xla(),
        "status": "failed" if monitor.failure else "ok",
        "error": monitor.failure or "",
        "best_val_accuracy": best_val_accuracy,
        "best_epoch": best_epoch,
        "epoch_time_s": steady_epoch_time(epoch_times),
        "first_epoch_s": epoch_times[0] if epoch_times else None,
        "train_time_s": sum(epoch_times),
        "epochs_to_target": monitor.target_epoch,
        "seconds_to_target": monitor.target_seconds,
        "started_at": started,
    }
    steady = row["epoch_time_s"]
    row["train_samples_per_s"] = len(x_train) / steady if steady else None
    if monitor.failure:
        row.update(
            test_accuracy=None, test_loss=None, infer_samples_per_s=None, latency_ms_p50=None, latency_ms_p95=None
        )
    else:
        test_loss, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=INFERENCE_BATCH, verbose=0)
        row.update(test_accuracy=float(test_accuracy), test_loss=float(test_loss))
        if measure:
            row["infer_samples_per_s"] = measure_inference(model, dataset.x_test)
            row["latency_ms_p50"], row["latency_ms_p95"] = measure_latency(model, dataset.x_test)
        else:
            row.update(infer_samples_per_s=None, latency_ms_p50=None, latency_ms_p95=None)
    row["peak_rss_mb"] = peak_rss_mb()
    row["finished_at"] = _now()
    return VariantResult(row=row, history=history_rows, model=model if keep_model else None)
