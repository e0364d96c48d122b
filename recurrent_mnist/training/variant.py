"""`train_variant`: train and measure one variant, the unit of work of `bench`, `train` and `tune`.

It seeds everything, carves the fixed validation split from the training data,
trains a `RowSequenceClassifier` with `model.fit`, evaluates the test set once,
and measures what a comparison needs (see `measure`). `release_models` frees
what the variants trained one after another in one process leave behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
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

__all__ = ["VariantResult", "release_models", "train_variant"]


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
    What the variant's model leaves in the process once it is dropped is not
    freed here, because that clears Keras's global state, which models the
    caller holds share: to train variant after variant in one process with
    flat memory, call it inside `release_models()` (bench's in-process
    variants and tune's trials do).

    Returns:
        A `VariantResult`. A non-finite loss gives `status="failed"` with the
        reason in `error`; other exceptions propagate.

    Raises:
        ResultsError: the checkpoint is unreadable or of another configuration.
    """
    request = _Request(dataset, config, emit, measure, tuple(callbacks or ()), keep_model, checkpoint_dir, tensorboard)
    with MemoryWatch() as memory:
        result = _train(request)
    result.row["variant_rss_growth_mb"] = memory.growth_mb
    result.row["process_peak_rss_mb"] = process_peak_rss_mb()
    result.row["finished_at"] = now()
    return result


@dataclasses.dataclass(frozen=True)
class _Request:
    """The arguments of one `train_variant` call."""

    dataset: Dataset
    config: TrainConfig
    emit: Emit | None
    measure: bool
    callbacks: tuple[keras.callbacks.Callback, ...]
    keep_model: bool
    checkpoint_dir: str | os.PathLike | None
    tensorboard: tuple[str | os.PathLike, str] | None


def _train(request: _Request) -> VariantResult:
    """Builds the model, fits it and measures it: the row of `train_variant` but its memory figures."""
    config, dataset = request.config, request.dataset
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_val, y_val = split_validation(
        dataset.x_train, dataset.y_train, config.validation_split, config.train_images
    )
    strategy = get_strategy(config.strategy)
    xla = config.uses_xla(keras.backend.backend())
    model = _build(request, strategy, xla)

    monitor = Monitor(request.emit, config.epochs, math.ceil(len(x_train) / config.batch_size), config.target_accuracy)
    fit_callbacks, initial_epoch, earlier = _fit_callbacks(request, model, monitor, validating=x_val is not None)
    started = now()
    if initial_epoch < config.epochs:
        _fit(model, config, (x_train, y_train), (x_val, y_val), initial_epoch, fit_callbacks)
    history = earlier + monitor.history

    row = {
        **config.columns(),
        "framework": framework_name(),
        "params": int(model.count_params()),
        "epochs": len(history),
        "train_samples": len(x_train),
        "replicas": strategy.num_replicas_in_sync if strategy is not None else 1,
        "xla": xla,
        **_training_figures(history, monitor),
        "started_at": started,
    }
    epoch_time_s = row["epoch_time_s"]
    row["train_samples_per_s"] = len(x_train) / epoch_time_s if epoch_time_s else None
    row.update(_test_figures(model, dataset, measure=request.measure, failed=bool(monitor.failure)))
    if request.tensorboard is not None:
        write_hparams(*request.tensorboard, config, row, framework=row["framework"])
    return VariantResult(row=row, history=history, model=model if request.keep_model else None)


# -- release ----------------------------------------------------------------------------

# The prefix of the names under which `tf.custom_gradient` registers each backward pass it traces.
_CUSTOM_GRADIENT = "CustomGradient-"


@contextlib.contextmanager
def release_models(*, clear_session: bool = True) -> Iterator[None]:
    """Frees, when the block ends, what the models trained in it left in the process.

    The fast layers (`recurrent_mnist.fast_rnn`) write their backward pass with
    `tf.custom_gradient`, and every graph that traces one (each `fit`,
    `evaluate` and `predict` function of each model) registers it in
    TensorFlow's global gradient registry, which is never emptied: the
    registration holds the traced graph, so each model's graphs, tens of MB,
    stay in memory after the model is gone. The block's registrations are
    removed at its end; with `clear_session` Keras's global state is cleared
    as well and Python's garbage collected (`keras.backend.clear_session(free_memory=True)`),
    which frees the block's models once nothing else holds them.

        for config in configs:
            with release_models():
                row = train_variant(dataset, config).row

    A model of the block that is kept still trains, evaluates, predicts and
    saves: its functions were traced with their gradients. What it loses is
    differentiating those traced graphs again from outside (`tf.gradients` on
    a graph traced in the block); a retrace registers anew. `clear_session`
    also restarts Keras's automatic layer names, as keras-tuner does before
    every trial; models built before the block keep theirs and keep working.
    On the other Keras backends there is no such registry: only the session is cleared.
    """
    before = _custom_gradients()
    try:
        yield
    finally:
        registry = _gradient_registry()
        for name in _custom_gradients() - before:
            registry.pop(name, None)
        if clear_session:
            keras.backend.clear_session(free_memory=True)


def _gradient_registry() -> dict:
    """TensorFlow's registry of gradient functions by name (`tf.RegisterGradient`'s); empty on other backends."""
    if keras.backend.backend() != "tensorflow":
        return {}
    from tensorflow.python.framework import ops  # the backend: already loaded

    return getattr(getattr(ops, "gradient_registry", None), "_registry", {})


def _custom_gradients() -> set[str]:
    """The names of the backward passes that `tf.custom_gradient` has registered so far."""
    return {name for name in list(_gradient_registry()) if str(name).startswith(_CUSTOM_GRADIENT)}


# -- build ------------------------------------------------------------------------------


def _build(request: _Request, strategy, xla: bool) -> RowSequenceClassifier:
    """The variant's model, built for the data set's images and compiled, in `strategy`'s scope."""
    config, dataset = request.config, request.dataset
    with strategy_scope(strategy):
        model = RowSequenceClassifier(num_classes=dataset.num_classes, **config.model_kwargs())
        model.build((None, *dataset.image_shape))
        compile_model(
            model, config.learning_rate, config.effective_steps_per_execution(), xla, clipnorm=config.clipnorm
        )
    return model


# -- fit --------------------------------------------------------------------------------


def _fit_callbacks(
    request: _Request, model: keras.Model, monitor: Monitor, validating: bool
) -> tuple[list[keras.callbacks.Callback], int, list[dict]]:
    """The callbacks of `fit`, with the model restored from the request's checkpoint if there is one.

    Returns:
        The callbacks, the epoch to start from, and the history of the epochs before it.
    """
    config = request.config
    callbacks = [monitor, *request.callbacks]
    if request.tensorboard is not None:
        callbacks += tensorboard_callbacks(*request.tensorboard, monitor)
    initial_epoch, earlier = 0, []
    if request.checkpoint_dir is not None:
        folder = Path(request.checkpoint_dir)
        initial_epoch, earlier = restore(model, folder, config)
        folder.mkdir(parents=True, exist_ok=True)
        callbacks.append(Checkpoint(folder, config, monitor, earlier))
    if config.early_stopping is not None and validating:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", patience=config.early_stopping, restore_best_weights=True
            )
        )
    return callbacks, initial_epoch, earlier


def _fit(model: keras.Model, config: TrainConfig, train, validation, initial_epoch: int, callbacks) -> None:
    """`model.fit` from `initial_epoch`: on a seeded `tf.data` pipeline where the backend has one, else on the
    arrays. `train` is `(x, y)`; `validation` is `(x, y)` or `(None, None)`."""
    (x_train, y_train), (x_val, y_val) = train, validation
    train_data = input_pipeline(x_train, y_train, config.batch_size, shuffle_seed=config.seed)
    if train_data is not None:
        model.fit(
            train_data,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            validation_data=input_pipeline(x_val, y_val, INFERENCE_BATCH) if x_val is not None else None,
            shuffle=False,  # the pipeline shuffles, seeded, every epoch
            callbacks=callbacks,
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
            callbacks=callbacks,
            verbose=0,
        )


# -- measure ----------------------------------------------------------------------------


def _training_figures(history: list[dict], monitor: Monitor) -> dict:
    """The row's columns that the training's per-epoch history and its monitor give."""
    epoch_times = [entry["epoch_time_s"] for entry in history]
    best_val_accuracy, best_val_epoch = best_epoch(history)
    return {
        "status": "failed" if monitor.failure else "ok",
        "error": monitor.failure or "",
        "best_val_accuracy": best_val_accuracy,
        "best_epoch": best_val_epoch,
        "epoch_time_s": steady_epoch_time(history),
        "steady_epochs": len(steady_epochs(history)),
        "first_epoch_s": epoch_times[0] if epoch_times else None,
        "train_time_s": sum(epoch_times),
        "epochs_to_target": monitor.target_epoch,
        "seconds_to_target": monitor.target_seconds,
    }


def _test_figures(model: keras.Model, dataset: Dataset, *, measure: bool, failed: bool) -> dict:
    """The test split's loss and accuracy, scored once, and (with `measure`) inference throughput and
    latency; all None for a variant whose training failed."""
    figures = dict.fromkeys(("test_accuracy", "test_loss", "infer_samples_per_s", "latency_ms_p50", "latency_ms_p95"))
    if failed:
        return figures
    test_loss, test_accuracy = model.evaluate(dataset.x_test, dataset.y_test, batch_size=INFERENCE_BATCH, verbose=0)
    figures.update(test_accuracy=float(test_accuracy), test_loss=float(test_loss))
    if measure:
        figures["infer_samples_per_s"] = measure_inference(model, dataset.x_test)
        figures["latency_ms_p50"], figures["latency_ms_p95"] = measure_latency(model, dataset.x_test)
    return figures
