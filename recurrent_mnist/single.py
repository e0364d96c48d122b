"""Single-model chores behind `recurrent-mnist train` and `evaluate`.

`train_and_save` trains one variant with a per-epoch backup (an interrupted
training resumes from its last finished epoch), then saves the model as
`.keras` and its history as CSV, both atomically. `evaluate_model` loads a
model with safe mode and scores it on a test split, with a confusion matrix.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from recurrent_mnist import reporting
from recurrent_mnist.datasets import load
from recurrent_mnist.environment import limit_threads
from recurrent_mnist.errors import ModelFileError, ResultsError
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.saving import load_model, save_model
from recurrent_mnist.training import INFERENCE_BATCH, TrainConfig, train_variant
from recurrent_mnist.training.tensorboard import check_tensorboard, prepare_tensorboard_root

__all__ = ["EvaluationResult", "TrainOutcome", "evaluate_model", "train_and_save"]


@dataclasses.dataclass
class TrainOutcome:
    row: dict
    history: list[dict]
    model_path: Path | None
    history_path: Path | None


def train_and_save(
    dataset_name: str,
    config: TrainConfig,
    output: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    emit=None,
    tensorboard_dir: str | os.PathLike | None = None,
) -> TrainOutcome:
    """Trains one model and saves it with its history.

    Writes `output` (`.keras`), `<stem>.history.csv` and `<stem>.metrics.json`
    beside it. While training, `<output>.backup/` holds a checkpoint of the
    last finished epoch (weights, optimizer state, history); rerunning the
    same call after an interruption resumes from it. With `tensorboard_dir`, the
    training is logged for TensorBoard under `<tensorboard_dir>/<output stem>/`.

    Raises:
        DatasetError, ConfigError: nothing was trained.
        ResultsError: the output folder cannot be written.
    """
    output = Path(output)
    if tensorboard_dir is not None:
        check_tensorboard()
    dataset = load(dataset_name, data_dir)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"the output folder {output.parent} cannot be created: {exc.strerror or exc}") from None
    checkpoint = output.with_name(output.name + ".backup")
    limit_threads(config.threads)
    tensorboard = None
    if tensorboard_dir is not None:
        prepare_tensorboard_root(tensorboard_dir)
        tensorboard = (tensorboard_dir, output.stem)
    result = train_variant(
        dataset, config, emit=emit, measure=False, keep_model=True, checkpoint_dir=checkpoint, tensorboard=tensorboard
    )
    history_path = output.with_name(output.stem + ".history.csv")
    reporting.write_csv(
        reporting.history_frame({**entry, "cell": config.cell, "seed": config.seed} for entry in result.history),
        history_path,
    )
    atomic_write_json(
        output.with_name(output.stem + ".metrics.json"),
        {"dataset": dataset.describe(), "config": config.to_dict(), "metrics": result.row},
    )
    if result.row["status"] != "ok":
        shutil.rmtree(checkpoint, ignore_errors=True)
        return TrainOutcome(result.row, result.history, None, history_path)
    save_model(result.model, output)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return TrainOutcome(result.row, result.history, output, history_path)


@dataclasses.dataclass
class EvaluationResult:
    dataset: str
    samples: int
    accuracy: float
    loss: float
    confusion: np.ndarray
    class_names: tuple[str, ...]


def evaluate_model(
    model_path: str | os.PathLike,
    dataset_name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    trust_legacy_h5: bool = False,
) -> EvaluationResult:
    """Scores a saved model (loaded with `safe_mode=True`) on a data set's test split.

    Raises:
        ModelFileError: the model cannot be loaded safely, or does not fit the data.
        DatasetError: the data set cannot be loaded.
    """
    dataset = load(dataset_name, data_dir)
    model = load_model(model_path, trust_legacy_h5=trust_legacy_h5, compile=False)
    try:
        logits = np.asarray(model.predict(dataset.x_test, batch_size=INFERENCE_BATCH, verbose=0), dtype=np.float64)
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise ModelFileError(
            f"{model_path} does not accept {dataset.name} images of shape {dataset.image_shape}: {message}"
        ) from None
    if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
        raise ModelFileError(
            f"{model_path} returns outputs of shape {logits.shape[1:]}, not {dataset.num_classes} class logits"
        )
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = dataset.y_test
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    predicted = logits.argmax(axis=1)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return EvaluationResult(
        dataset.name, len(labels), float((predicted == labels).mean()), loss, confusion, dataset.class_names
    )
