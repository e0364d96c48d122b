"""`train_variant`: train and measure one variant, the unit of work of `bench`, `train` and `tune`.

It seeds everything, carves the fixed validation split from the training data,
trains a `RowSequenceClassifier` with `model.fit`, evaluates the test set once,
and measures what a comparison needs (see `measure`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import keras

from recurrent_mnist.datasets import Dataset
from recurrent_mnist.distribute import get_strategy, strategy_scope
from recurrent_mnist.environment import framework_name
from recurrent_mnist.model import RowSequenceClassifier
from recurrent_mnist.training.callbacks import Checkpoint, Emit, Monitor, now, restore
from recurrent_mnist.training.config import TrainConfig
from recurrent_mnist.training.measure import (
    MemoryWatch,
    best_epoch,
    measure_inference,
    measure_latency,
    process_peak_rss_mb,
    steady_epoch_time,
    steady_epochs,
)
from recurrent_mnist.training.pipeline import INFERENCE_BATCH, compile_model, input_pipeline, split_validation
from recurrent_mnist.training.tensorboard import tensorboard_callbacks, write_hparams

__all__ = ["VariantResult", "train_variant"]


@dataclasses.dataclass
class VariantResult:
    """One trained variant: its row of `runs.csv`, its per-epoch history, and the model."""

    row: dict
    history: list[dict]
    model: keras.Model | None = None


def train_variant(
    dataset: Dataset,
    config: TrainConfig,
    *,
    emit: Emit | None = None,
    measure: bool = True,
    callbacks: list[keras.callbacks.Callback] | None = None,
    keep_model: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    tensorboard: tuple[str | os.PathLike, str] | None = None,
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
        tensorboard: `(root, name)`: log the training for TensorBoard under
            `<root>/<name>/` and record the variant as an HParams session there
            (see `training.tensorboard`; the caller writes the root's
            `write_hparams_config`).

    The caller sizes TensorFlow's thread pools for the process
    (`environment.limit_threads(config.threads)`, before TensorFlow runs):
    bench's worker, `train` and `tune` do; the layers get `config.threads`
    as their parallel chains in any case.

    Memory: `variant_rss_growth_mb` is the peak resident memory while this
    variant builds, trains and is measured, over the resident memory when it
    started (see `MemoryWatch`); `process_peak_rss_mb` is the whole process's peak.

    Returns:
        A `VariantResult`. A non-finite loss gives `status="failed"` with the
        reason in `error`; other exceptions propagate.

    Raises:
        ResultsError: the checkpoint is unreadable or of another configuration.
    """
    with MemoryWatch() as memory:
        result = _train(dataset, config, emit, measure, callbacks, keep_model, checkpoint_dir, tensorboard)
    result.row["variant_rss_growth_mb"] = memory.growth_mb
    result.row["process_peak_rss_mb"] = process_peak_rss_mb()
    result.row["finished_at"] = now()
    return result


def _train(dataset, config, emit, measure, callbacks, keep_model, checkpoint_dir, tensorboard) -> VariantResult:
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_split)
    strategy = get_strategy(config.strategy)
    xla = config.uses_xla(keras.backend.backend())
    with strategy_scope(strategy):
        model = RowSequenceClassifier(num_classes=dataset.num_classes, **config.model_kwargs())
        model.build((None, *dataset.image_shape))
        compile_model(model, config.learning_rate, config.effective_steps_per_execution(), xla)

    steps = math.ceil(len(x_train) / config.batch_size)
    monitor = Monitor(emit, config.epochs, steps, config.target_accuracy)
    fit_callbacks = [monitor, *(callbacks or [])]
    if tensorboard is not None:
        fit_callbacks += tensorboard_callbacks(*tensorboard, monitor)
    initial_epoch, earlier = 0, []
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        initial_epoch, earlier = restore(model, folder, config)
        folder.mkdir(parents=True, exist_ok=True)
        fit_callbacks.append(Checkpoint(folder, config, monitor, earlier))
    if config.early_stopping is not None and x_val is not None:
        fit_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.early_stopping, restore_best_weights=True
            )
        )

    started = now()
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
    steady = steady_epochs(history_rows)

    best_val_accuracy, best_val_epoch = best_epoch(history_rows)
    row = {
        **config.columns(),
        "framework": framework_name(),
        "params": int(model.count_params()),
        "epochs": len(history_rows),
        "train_samples": len(x_train),
        "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        "xla": xla,
        "status": "failed" if monitor.failure else "ok",
        "error": monitor.failure or "",
        "best_val_accuracy": best_val_accuracy,
        "best_epoch": best_val_epoch,
        "epoch_time_s": steady_epoch_time(history_rows),
        "steady_epochs": len(steady),
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
    if tensorboard is not None:
        write_hparams(*tensorboard, config, row, framework=row["framework"])
    return VariantResult(row=row, history=history_rows, model=model if keep_model else None)
