"""Single-model chores behind `recurrent-mnist train` and `evaluate`.

`train_and_save` trains one variant with a per-epoch backup (an interrupted
training resumes from its last finished epoch), then saves the model as
`.keras`, its history as CSV and its record (`<stem>.metrics.json`: data set,
configuration, metrics), all atomically. `evaluate_model` loads a model with
safe mode and scores it on a test split (by default the data set its record
names), with a confusion matrix and bench's timing figures, and writes the
evaluation as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from recurrent_mnist import reporting
from recurrent_mnist.cells import import_cell_modules
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import environment_info, limit_threads
from recurrent_mnist.errors import ConfigError, ModelFileError, ResultsError
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.saving import load_model, save_model
from recurrent_mnist.settings import PRESETS
from recurrent_mnist.training import INFERENCE_BATCH, TrainConfig, measure_inference, measure_latency, train_variant
from recurrent_mnist.training.pipeline import check_train_images
from recurrent_mnist.training.tensorboard import check_tensorboard, prepare_tensorboard_root

__all__ = [
    "EvaluationResult",
    "TrainOutcome",
    "evaluate_model",
    "evaluation_path",
    "record_path",
    "recorded_dataset",
    "train_and_save",
    "train_config",
]


def record_path(model_path: str | os.PathLike) -> Path:
    """The record written beside a saved model: `<stem>.metrics.json` (data set, configuration, metrics)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".metrics.json")


def evaluation_path(model_path: str | os.PathLike) -> Path:
    """Where `evaluate_model` writes by default: `<stem>.evaluation.json` beside the model."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".evaluation.json")


def recorded_dataset(model_path: str | os.PathLike) -> str | None:
    """The name of the data set a model was trained on, from its record; None when it has none."""
    path = record_path(model_path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"the model's record {path} cannot be read: {exc}") from None
    name = record.get("dataset", {}).get("name") if isinstance(record, dict) else None
    if not isinstance(name, str):
        raise ModelFileError(f"the model's record {path} names no data set (no dataset.name)")
    return name


def train_config(preset: str | None = None, **options) -> TrainConfig:
    """The `TrainConfig` of one model: a preset's values (see `settings.PRESETS`), then `options` over them.

    Options that are None are left out (the preset or the setting's default
    applies). A preset that names one cell (`cells=("lstm",)`) sets `cell`.

    Raises:
        ConfigError: an unknown preset, or a value out of range.
    """
    values = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}", argument="preset")
        values = dict(PRESETS[preset])
        cells = values.pop("cells", ())
        if len(cells) == 1:
            values["cell"] = cells[0]
    values.update({key: value for key, value in options.items() if value is not None})
    return TrainConfig(**values)


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
    check_train_images(config.train_images, len(dataset.x_train), config.validation_split)
    if emit is not None:
        emit({"event": "dataset", "dataset": dataset.describe()})
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
        record_path(output), {"dataset": dataset.describe(), "config": config.to_dict(), "metrics": result.row}
    )
    if result.row["status"] != "ok":
        shutil.rmtree(checkpoint, ignore_errors=True)
        return TrainOutcome(result.row, result.history, None, history_path)
    save_model(result.model, output)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return TrainOutcome(result.row, result.history, output, history_path)


@dataclasses.dataclass
class EvaluationResult:
    """What `evaluate_model` measured, and where it wrote it.

    Attributes:
        dataset: the data set's name; `data` is its `Dataset.describe()`.
        samples, accuracy, loss, confusion, class_names: the scores on the test split.
        infer_samples_per_s, latency_ms_p50, latency_ms_p95: bench's timing
            figures (None when not measured).
        output: the JSON file written.
    """

    dataset: str
    samples: int
    accuracy: float
    loss: float
    confusion: np.ndarray
    class_names: tuple[str, ...]
    data: dict = dataclasses.field(default_factory=dict)
    infer_samples_per_s: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    output: Path | None = None


def load_saved_model(
    model_path: str | os.PathLike, *, trust_legacy_h5: bool = False, imports: Iterable[str] = ()
) -> keras.Model:
    """`saving.load_model` without compiling, after importing `imports` (the modules that register custom cells).

    Raises:
        ModelFileError: the model cannot be loaded safely; for a cell that no
            module registered, the sentence says to name that module in `imports`.
    """
    import_cell_modules(tuple(imports))
    try:
        return load_model(model_path, trust_legacy_h5=trust_legacy_h5, compile=False)
    except ModelFileError as exc:
        if "Unknown cell" not in str(exc):
            raise
        raise ModelFileError(f"{str(exc).rstrip('.')}; name the module that registers it in `imports`") from None


def evaluate_model(
    model_path: str | os.PathLike,
    dataset_name: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    trust_legacy_h5: bool = False,
    measure: bool = True,
    output: str | os.PathLike | None = None,
    command: list[str] | None = None,
    imports: Iterable[str] = (),
) -> EvaluationResult:
    """Scores a saved model (loaded with `safe_mode=True`) on a data set's test split and writes the result.

    The model file is checked and loaded before any data is read; a model
    with a custom cell needs the module that registers it (`imports`).

    Args:
        model_path: a `.keras` file (or a trusted legacy `.h5` file).
        dataset_name: the data set; by default the one the model's record
            (`<stem>.metrics.json`, written by `train_and_save`) names.
        data_dir: where to read the data set from (see `datasets.load`).
        trust_legacy_h5: allow a legacy HDF5 model (see `saving.load_model`).
        measure: also time inference (samples per second) and single-image
            latency, as bench does.
        output: the JSON file to write, atomically; by default
            `<stem>.evaluation.json` beside the model.
        command: the command line recorded with the environment.
        imports: modules to import first, e.g. one that registers the model's
            custom cell (`cells.register_cell`).

    Raises:
        ModelFileError: the model cannot be loaded safely (a cell that no
            module in `imports` registered, code that safe mode refuses), or
            does not fit the data.
        ConfigError: no data set is given and the model's record names none.
        DatasetError: the data set cannot be loaded.
    """
    model_path = Path(model_path)
    output = Path(output) if output is not None else evaluation_path(model_path)
    if output.suffix != ".json":
        raise ConfigError(f"`output` must be a .json file. Received: output={str(output)!r}", argument="output")
    model = load_saved_model(model_path, trust_legacy_h5=trust_legacy_h5, imports=imports)
    if dataset_name is None:
        dataset_name = recorded_dataset(model_path)
        if dataset_name is None:
            raise ConfigError(
                f"the data set {model_path} was trained on is not recorded (no {record_path(model_path).name} "
                "beside it); name one with `dataset_name`",
                argument="dataset_name",
            )
    dataset = load(dataset_name, data_dir)
    result = _score(_test_logits(model, model_path, dataset), dataset)
    result.output = output
    if measure:
        result.infer_samples_per_s = measure_inference(model, dataset.x_test)
        result.latency_ms_p50, result.latency_ms_p95 = measure_latency(model, dataset.x_test)
    atomic_write_json(
        output,
        {
            "model": str(model_path),
            "dataset": result.data,
            "samples": result.samples,
            "test_accuracy": result.accuracy,
            "test_loss": result.loss,
            "infer_samples_per_s": result.infer_samples_per_s,
            "latency_ms_p50": result.latency_ms_p50,
            "latency_ms_p95": result.latency_ms_p95,
            "class_names": list(result.class_names),
            "confusion": result.confusion.tolist(),
            "environment": environment_info(command),
        },
    )
    return result


def _test_logits(model: keras.Model, model_path: Path, dataset: Dataset) -> np.ndarray:
    """The model's logits of the test images, as float64, or ModelFileError for a model that does not
    take the images or does not return one logit per class."""
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
    return logits


def _score(logits: np.ndarray, dataset: Dataset) -> EvaluationResult:
    """Accuracy, cross-entropy loss and confusion matrix of the test split's logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # a stable log-softmax
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    labels = dataset.y_test
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    predicted = logits.argmax(axis=1)
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return EvaluationResult(
        dataset.name,
        len(labels),
        float((predicted == labels).mean()),
        loss,
        confusion,
        dataset.class_names,
        data=dataset.describe(),
    )
