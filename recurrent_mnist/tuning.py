"""Hyperparameter search with keras-tuner: the search space as a HyperModel, and a resumable, exported search.

`RowSequenceHyperModel` declares the search space (cell, units, layers,
bidirectional, dropout, learning rate on a log scale, batch size) and builds
each candidate with the public `RowSequenceClassifier` constructor.
`run_search(TuneConfig(...))` runs keras-tuner over it and writes, under
`<results>/<run>/`: `trials.csv` (every trial, failed ones with their reason),
`best_hyperparameters.json`, `best_model.keras` (the best configuration
retrained, with its test accuracy), `summary.md` and `environment.json`.

The cell is a hyperparameter of one search, not a search per cell: one
keras-tuner project and one oracle serve every cell, so `max_trials` is the
whole budget, the tuner spends trials where they pay (Bayesian optimisation
learns which cell does well, Hyperband drops a weak cell early), and
keras-tuner's distributed mode (one chief oracle, many workers) works
unchanged. The best configuration of each cell is read from the trials table.
For an equal budget per cell, run one search per cell (`cells=("gru",)`), or
compare fixed configurations with `bench`.

What keras-tuner 1.4 leaves to its users is done here: every state file is
written atomically, so a `kill -9` loses at most the running trial and the
same call resumes (a grid search too); a trial whose loss turns NaN fails with
its reason and is never ranked, while the search goes on (keras-tuner's
`max_consecutive_failed_trials` limit is lifted); a time budget stops handing
out trials; and a distributed chief ends by itself once the search is over
and its workers are gone, instead of polling every 20 seconds for workers
that may never come back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import io
import json
import math
import numbers
import os
import re
import shutil
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import keras_tuner
import pandas as pd
from keras_tuner.engine.trial import Trial, TrialStatus

from recurrent_mnist import reporting
from recurrent_mnist.cells import canonical_cell_name
from recurrent_mnist.datasets import DATASETS, Dataset, load
from recurrent_mnist.distribute import STRATEGIES, get_strategy
from recurrent_mnist.environment import environment_info
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.model import RowSequenceClassifier
from recurrent_mnist.saving import save_model
from recurrent_mnist.training import TrainConfig, compile_model, split_validation, train_variant

__all__ = [
    "DEFAULTS",
    "OBJECTIVES",
    "RANGES",
    "TUNERS",
    "RowSequenceHyperModel",
    "TuneConfig",
    "TuneResult",
    "default_run_name",
    "keras_tuner_environment",
    "parse_oracle_address",
    "run_search",
]

Progress = Callable[[dict], None]

# The component's own defaults: the first configuration a search tries.
DEFAULTS = {"units": 128, "layers": 1, "bidirectional": False, "dropout": 0.0, "learning_rate": 1e-3, "batch_size": 128}
# The search space when no option narrows it: (min, max), both included.
RANGES = {
    "units": (16, 256),
    "layers": (1, 3),
    "dropout": (0.0, 0.5),
    "learning_rate": (1e-4, 1e-2),
    "batch_size": (32, 256),
}
SEARCH_SPACE = ["cell", "units", "layers", "bidirectional", "dropout", "learning_rate", "batch_size"]
OBJECTIVES = {"val_accuracy": "max", "val_loss": "min"}
TUNERS = ("random", "bayesian", "hyperband", "grid")
ROLES = ("chief", "worker")
# keras-tuner stops a search after 3 failed trials in a row; here failed trials are recorded and the search goes on.
NO_FAILURE_LIMIT = sys.maxsize
PROJECT = "search"


# --------------------------------------------------------------------------- the search space


def _check_range(name: str, bounds, integer: bool, minimum: float, below: float | None = None) -> tuple:
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be a (min, max) pair. Received: {name}={bounds!r}") from None
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
            kind = "integers" if integer else "numbers"
            raise ConfigError(f"`{name}` bounds must be {kind}. Received: {name}={bounds!r}")
        if not math.isfinite(value) or value < minimum or (below is not None and value >= below):
            limit = f"in [{minimum}, {below})" if below is not None else f">= {minimum}"
            raise ConfigError(f"`{name}` bounds must be {limit}. Received: {name}={bounds!r}")
    if low > high:
        raise ConfigError(f"`{name}`: the minimum {low} is above the maximum {high}")
    cast = int if integer else float
    return cast(low), cast(high)


def _powers_of_two(low: int, high: int) -> list[int]:
    values = [low]
    while values[-1] * 2 <= high:
        values.append(values[-1] * 2)
    return values


class RowSequenceHyperModel(keras_tuner.HyperModel):
    """The search space of `RowSequenceClassifier` models, as a keras-tuner HyperModel.

    `build(hp)` declares, with the component's defaults as the first values tried:

    | name | kind | range | default |
    | --- | --- | --- | --- |
    | `cell` | choice | `cells` | the first cell |
    | `units` | int, powers of two times the minimum | 16 to 256 | 128 |
    | `layers` | int | 1 to 3 | 1 |
    | `bidirectional` | boolean | | False |
    | `dropout` | float, steps of 0.1 | 0 to 0.5 | 0 |
    | `learning_rate` | float, log scale | 1e-4 to 1e-2 | 1e-3 |
    | `batch_size` | int, powers of two times the minimum (in `fit`) | 32 to 256 | 128 |

    A range whose minimum equals its maximum, and a single cell, are fixed
    rather than searched; a default outside a narrowed range becomes the
    nearest value inside it. `fit(hp, model, ...)` trains with the searched
    batch size, stops early when the objective stops improving, fails the
    trial (`keras_tuner.errors.FailedTrialError`) when the loss becomes NaN or
    infinite, and returns the metrics of the best epoch with `best_epoch` and
    `epochs`.

    Args:
        cells: the cell names to choose from. Defaults to `("lstm",)`.
        num_classes: number of output logits. Defaults to 10.
        input_shape: `(H, W)` of the images; when given, models are built
            at once (keras-tuner can then count their parameters).
        units, layers, dropout, learning_rate, batch_size: `(min, max)`
            ranges; see the table for the defaults.
        bidirectional: None searches both; True or False fixes it.
        objective: `"val_accuracy"` (default) or `"val_loss"`: what early
            stopping watches and what picks the best epoch.
        early_stopping: stop a trial after this many epochs without a better
            objective. Defaults to 3; None trains every epoch.
        **kwargs: passed to `keras_tuner.HyperModel` (`name`, `tunable`).

    Example:

    >>> import keras_tuner
    >>> hypermodel = RowSequenceHyperModel(cells=("lstm", "gru"), units=(32, 64))
    >>> model = hypermodel.build(keras_tuner.HyperParameters())
    >>> (model.cell, model.units, model.num_layers)
    ('lstm', 64, 1)
    """

    def __init__(
        self,
        cells=("lstm",),
        num_classes=10,
        input_shape=None,
        units=RANGES["units"],
        layers=RANGES["layers"],
        bidirectional=None,
        dropout=RANGES["dropout"],
        learning_rate=RANGES["learning_rate"],
        batch_size=RANGES["batch_size"],
        objective="val_accuracy",
        early_stopping=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(cells, str) or not cells:
            raise ConfigError(f"`cells` must be a non-empty list of cell names. Received: cells={cells!r}")
        try:
            self.cells = tuple(dict.fromkeys(canonical_cell_name(c) for c in cells))
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
            raise ConfigError(f"`num_classes` must be an integer >= 2. Received: num_classes={num_classes!r}")
        self.num_classes = int(num_classes)
        if input_shape is not None and (len(tuple(input_shape)) != 2 or not all(int(d) > 0 for d in input_shape)):
            raise ConfigError(f"`input_shape` must be (height, width). Received: input_shape={input_shape!r}")
        self.input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
        self.units = _check_range("units", units, True, 1)
        self.layers = _check_range("layers", layers, True, 1)
        self.dropout = _check_range("dropout", dropout, False, 0.0, below=1.0)
        self.learning_rate = _check_range("learning_rate", learning_rate, False, 0.0)
        if self.learning_rate[0] <= 0:
            raise ConfigError(f"`learning_rate` bounds must be positive. Received: learning_rate={learning_rate!r}")
        self.batch_size = _check_range("batch_size", batch_size, True, 1)
        if bidirectional is not None and not isinstance(bidirectional, bool):
            raise ConfigError(f"`bidirectional` must be None, True or False. Received: bidirectional={bidirectional!r}")
        self.bidirectional = bidirectional
        if objective not in OBJECTIVES:
            raise ConfigError(f"`objective` must be one of {', '.join(OBJECTIVES)}. Received: objective={objective!r}")
        self.objective = objective
        if early_stopping is not None and (
            isinstance(early_stopping, bool) or not isinstance(early_stopping, numbers.Integral) or early_stopping < 1
        ):
            raise ConfigError(f"`early_stopping` must be None or an integer >= 1. Received: {early_stopping!r}")
        self.early_stopping = early_stopping

    # -- one declaration per hyperparameter -------------------------------------------

    @staticmethod
    def _int(hp, name, bounds, default, powers=False) -> int:
        low, high = bounds
        if low == high:
            return int(hp.Fixed(name, low))
        if powers:
            values = _powers_of_two(low, high)
            if len(values) == 1:
                return int(hp.Fixed(name, low))
            nearest = min(values, key=lambda v: abs(math.log(v / default)))
            # int(): keras-tuner's grid hands out log-sampled Int values as floats (8.0).
            return int(hp.Int(name, low, values[-1], step=2, sampling="log", default=nearest))
        return int(hp.Int(name, low, high, default=min(max(default, low), high)))

    @staticmethod
    def _float(hp, name, bounds, default, log=False):
        low, high = bounds
        if low == high:
            return hp.Fixed(name, low)
        default = min(max(default, low), high)
        if log:
            return hp.Float(name, low, high, sampling="log", default=default)
        step = min(0.1, high - low)
        return hp.Float(name, low, high, step=step, default=round(low + round((default - low) / step) * step, 10))

    def declare_hyperparameters(self, hp):
        # The batch size is used in `fit`; declared here too, so the oracle knows it before the first trial.
        self.batch_size_value(hp)

    def batch_size_value(self, hp) -> int:
        """Declares (or reads) the batch size."""
        return self._int(hp, "batch_size", self.batch_size, DEFAULTS["batch_size"], powers=True)

    def build(self, hp):
        if len(self.cells) == 1:
            cell = hp.Fixed("cell", self.cells[0])
        else:
            cell = hp.Choice("cell", list(self.cells), default=self.cells[0])
        if self.bidirectional is None:
            bidirectional = hp.Boolean("bidirectional", default=DEFAULTS["bidirectional"])
        else:
            bidirectional = hp.Fixed("bidirectional", self.bidirectional)
        model = RowSequenceClassifier(
            cell=cell,
            units=self._int(hp, "units", self.units, DEFAULTS["units"], powers=True),
            num_classes=self.num_classes,
            num_layers=self._int(hp, "layers", self.layers, DEFAULTS["layers"]),
            bidirectional=bool(bidirectional),
            dropout=self._float(hp, "dropout", self.dropout, DEFAULTS["dropout"]),
        )
        if self.input_shape is not None:
            model.build((None, *self.input_shape))
        learning_rate = self._float(hp, "learning_rate", self.learning_rate, DEFAULTS["learning_rate"], log=True)
        return compile_model(model, learning_rate)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        guard = _StopOnNonFiniteLoss()
        callbacks = [guard, *(callbacks or [])]
        if self.early_stopping is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=self.objective, mode=OBJECTIVES[self.objective], patience=self.early_stopping
                )
            )
        kwargs.setdefault("verbose", 0)
        history = model.fit(*args, batch_size=self.batch_size_value(hp), callbacks=callbacks, **kwargs)
        if guard.failure:
            raise keras_tuner.errors.FailedTrialError(guard.failure)
        return _best_epoch_metrics(history, self.objective)


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training when the training or validation loss is NaN or infinite, keeping the reason."""

    def __init__(self):
        super().__init__()
        self.failure = None
        self._epoch = 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.failure = f"the loss became {float(loss)} in epoch {self._epoch}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if self.failure is None and value is not None and not math.isfinite(float(value)):
                self.failure = f"the {key.replace('_', ' ')} became {float(value)} in epoch {epoch + 1}"
                self.model.stop_training = True


def _best_epoch_metrics(history, objective: str) -> dict:
    values = history.history.get(objective)
    if not values:
        raise keras_tuner.errors.FailedTrialError(f"{objective} was not reported (no validation data?)")
    scored = [(float(v), i) for i, v in enumerate(values) if math.isfinite(float(v))]
    if not scored:
        raise keras_tuner.errors.FailedTrialError(f"{objective} was never a finite number")
    pick = max if OBJECTIVES[objective] == "max" else min
    best = pick(scored, key=lambda pair: pair[0])[1]
    metrics = {name: float(series[best]) for name, series in history.history.items() if len(series) > best}
    metrics["best_epoch"] = history.epoch[best] + 1
    metrics["epochs"] = history.epoch[-1] + 1
    return metrics


# --------------------------------------------------------------------------- configuration


def parse_oracle_address(text: str) -> tuple[str, int]:
    """Splits `HOST:PORT` (or `[IPv6]:PORT`) into a host and a port number.

    Raises:
        ConfigError: the text is not HOST:PORT with a port in 1..65535.
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.\-]+):(\d{1,5})", str(text).strip())
    port = int(match.group(2) or match.group(4)) if match else 0
    if not match or not 1 <= port <= 65535:
        raise ConfigError(f"--oracle must be HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:8000; received {text!r}")
    return (match.group(1) or match.group(3)), port


def _default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()).replace("chief", "chf")
    return f"worker-{host}-{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """A hyperparameter search: data, cells, search space, tuner, budget and role.

    Attributes:
        dataset: `mnist`, `fashion-mnist` or `mnist-sample`.
        cells: the cells searched over (the `cell` hyperparameter).
        tuner: `random`, `bayesian` (needs scipy and scikit-learn),
            `hyperband` or `grid`.
        max_trials: the most trials of the search (resumed trials included).
        max_epochs: the most epochs of one trial.
        executions_per_trial: models trained per trial, their scores averaged.
        objective: `val_accuracy` (maximised) or `val_loss` (minimised), on
            the fixed validation split of the training images.
        seed: seeds the tuner and every trial.
        time_budget: minutes after which no new trial starts; None: no limit.
        early_stopping: epochs without a better objective before a trial stops.
        validation_split: the fraction of the training images validated on.
        units, layers, dropout, learning_rate, batch_size: `(min, max)` ranges.
        bidirectional: None searches both directions; True or False fixes it.
        strategy: `default` or `mirrored` (tf.distribute, every GPU or logical CPU).
        distributed: None (one process), `chief` (runs the oracle) or `worker`.
        oracle: `HOST:PORT` the chief listens on and workers connect to. The
            default, `127.0.0.1:8000`, keeps the chief to this machine:
            keras-tuner's gRPC channel has no TLS and no authentication, so
            anyone who reaches the port can take trials and report scores.
        worker_id: this worker's keras-tuner id; a worker restarted with the
            same id resumes its interrupted trial.
    """

    dataset: str = "mnist"
    cells: tuple[str, ...] = ("lstm", "gru", "simple_rnn")
    tuner: str = "random"
    max_trials: int = 10
    max_epochs: int = 10
    executions_per_trial: int = 1
    objective: str = "val_accuracy"
    seed: int = 0
    time_budget: float | None = None
    early_stopping: int | None = 3
    validation_split: float = 0.1
    units: tuple[int, int] = RANGES["units"]
    layers: tuple[int, int] = RANGES["layers"]
    bidirectional: bool | None = None
    dropout: tuple[float, float] = RANGES["dropout"]
    learning_rate: tuple[float, float] = RANGES["learning_rate"]
    batch_size: tuple[int, int] = RANGES["batch_size"]
    strategy: str = "default"
    distributed: str | None = None
    oracle: str = "127.0.0.1:8000"
    worker_id: str | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown data set {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.tuner not in TUNERS:
            raise ConfigError(f"unknown tuner {self.tuner!r}; choose one of {', '.join(TUNERS)}")
        for name in ("max_trials", "max_epochs", "executions_per_trial"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; received {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; received {self.seed!r}")
        if self.time_budget is not None and not (
            isinstance(self.time_budget, (int, float)) and math.isfinite(self.time_budget) and self.time_budget > 0
        ):
            raise ConfigError(f"time_budget must be a positive number of minutes; received {self.time_budget!r}")
        if not 0.0 < self.validation_split < 1.0:
            raise ConfigError(
                f"validation_split must be in (0, 1): the search scores on it; received {self.validation_split!r}"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; received {self.strategy!r}")
        if self.distributed is not None and self.distributed not in ROLES:
            raise ConfigError(f"distributed must be None, 'chief' or 'worker'; received {self.distributed!r}")
        parse_oracle_address(self.oracle)
        if self.worker_id is not None and (
            not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", self.worker_id) or "chief" in self.worker_id
        ):
            raise ConfigError(
                "--worker-id must be letters, digits, '.', '_' or '-' and must not contain 'chief' "
                f"(keras-tuner reads that as the chief); received {self.worker_id!r}"
            )
        object.__setattr__(self, "cells", self.hypermodel().cells)  # validates the cells and every range

    def hypermodel(self, num_classes: int = 10, input_shape=None) -> RowSequenceHyperModel:
        return RowSequenceHyperModel(
            cells=self.cells,
            num_classes=num_classes,
            input_shape=input_shape,
            units=self.units,
            layers=self.layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            objective=self.objective,
            early_stopping=self.early_stopping,
        )

    def identity(self) -> dict:
        """What defines the search: a run folder resumes only a search with the same identity.

        The budget (`max_trials`, `time_budget`), the device strategy and the
        distributed role may change between runs of the same search.
        """
        config = dataclasses.asdict(self)
        for key in ("max_trials", "time_budget", "strategy", "distributed", "oracle", "worker_id"):
            config.pop(key)
        return json.loads(json.dumps(config))  # tuples as lists, as they read back from JSON

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def keras_tuner_environment(config: TuneConfig) -> dict[str, str]:
    """The `KERASTUNER_*` variables that put keras-tuner in this configuration's distributed role.

    Empty for a one-process search (which must run without them: keras-tuner
    would otherwise act as a worker).
    """
    if config.distributed is None:
        return {}
    host, port = parse_oracle_address(config.oracle)
    tuner_id = "chief" if config.distributed == "chief" else (config.worker_id or _default_worker_id())
    return {"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port)}


_KERASTUNER_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@contextlib.contextmanager
def _keras_tuner_role(config: TuneConfig) -> Iterator[dict[str, str]]:
    wanted = keras_tuner_environment(config)
    if config.distributed == "worker" and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        wanted["KERASTUNER_TUNER_ID"] = os.environ["KERASTUNER_TUNER_ID"]  # the id the caller already set
    saved = {name: os.environ.get(name) for name in _KERASTUNER_VARIABLES}
    for name in _KERASTUNER_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def default_run_name(config: TuneConfig, dataset_sha256: str) -> str:
    """A readable name with a short hash of the search's identity, so searches never mix."""
    digest = _digest([config.identity(), dataset_sha256])[:8]
    return f"tune-{config.tuner}-{config.dataset}-{'-'.join(config.cells)}-{digest}"


def _require_optional_packages(config: TuneConfig) -> None:
    try:
        import tensorboard.plugins.hparams.api  # noqa: F401
    except ImportError as exc:
        # keras-tuner imports it in every trial under TensorFlow; without it every trial fails.
        raise ConfigError(
            f"keras-tuner needs the tensorboard package in every trial: pip install tensorboard ({exc})"
        ) from None
    if config.tuner == "bayesian":
        try:
            import scipy  # noqa: F401
            import sklearn  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the bayesian tuner needs scipy and scikit-learn: pip install 'keras-tuner[bayesian]'"
            ) from None


# --------------------------------------------------------------------------- keras-tuner, made reliable


def _write_state(path: str | os.PathLike, state: dict) -> None:
    # keras-tuner writes its state files in place; a kill -9 mid-write would leave one unreadable.
    reporting.atomic_write_text(path, json.dumps(state))


class _Bookkeeping:
    """Mixed into keras-tuner's oracles: atomic state files, the time budget, when and where each
    trial ran, and a listener told of every trial that starts or ends (in this process or, on a
    chief, in a worker)."""

    def _init_bookkeeping(self) -> None:
        self.started_at: dict[str, float] = {}
        self.ended_at: dict[str, float] = {}
        self.workers: dict[str, str] = {}
        self.stopped_tuners: set[str] = set()
        self.deadline: float | None = None
        self.budget_spent = False
        self.listener: Callable[[str, Trial], None] | None = None
        self.listener_error: BaseException | None = None

    def past_deadline(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            self.budget_spent = True
        return self.budget_spent

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        running = self.ongoing_trials.get(tuner_id)
        if running is None and self.past_deadline():
            self.tuner_ids.discard(tuner_id)
            self.stopped_tuners.add(tuner_id)
            return Trial(self.get_space(), trial_id="stopped", status=TrialStatus.STOPPED)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.STOPPED:
            self.stopped_tuners.add(tuner_id)
        elif trial.status == TrialStatus.RUNNING:  # new, retried, or handed back to a restarted worker
            self.started_at[trial.trial_id] = time.time()
            self.ended_at.pop(trial.trial_id, None)
            self.workers[trial.trial_id] = tuner_id
            self.save()
            self._notify("trial_start", trial)
        return trial

    @keras_tuner.synchronized
    def end_trial(self, trial):
        self.ended_at[trial.trial_id] = time.time()
        super().end_trial(trial)
        # keras-tuner saves before it forgets the trial as running; on a chief nothing saves again, and a
        # resumed search would run the finished trial again.
        self.save()
        self._notify("trial_end", self.trials[trial.trial_id])

    def reload(self):
        super().reload()
        # Trials that were running when the search stopped run again; never one that has finished.
        self._retry_queue = [
            trial_id
            for trial_id in self._retry_queue
            if trial_id in self.trials
            and self.trials[trial_id].status not in (TrialStatus.COMPLETED, TrialStatus.FAILED)
        ]

    def _notify(self, event: str, trial: Trial) -> None:
        if self.listener is None:
            return
        try:
            self.listener(event, trial)
        except Exception as exc:
            if threading.current_thread() is threading.main_thread():
                raise
            # On a chief this runs in a gRPC thread: the serving loop raises it instead.
            self.listener_error = self.listener_error or exc

    @keras_tuner.synchronized
    def requeue(self, tuner_ids) -> None:
        """Gives the trials of workers that died back to the search, for the next worker that asks."""
        for tuner_id in tuner_ids:
            trial = self.ongoing_trials.pop(tuner_id, None)
            self.tuner_ids.discard(tuner_id)
            if trial is not None and trial.trial_id not in self._retry_queue:
                self._retry_queue.append(trial.trial_id)
        self.save()

    @keras_tuner.synchronized
    def snapshot(self) -> dict:
        """A consistent view for a chief deciding whether the search is over."""
        return {
            "ongoing": {tuner_id: trial.trial_id for tuner_id, trial in self.ongoing_trials.items()},
            "registered": set(self.tuner_ids),
            "stopped": set(self.stopped_tuners),
            "exhausted": bool(self.max_trials) and len(self.trials) >= self.max_trials and not self._retry_queue,
        }

    def get_state(self):
        state = super().get_state()
        state["recurrent_mnist"] = {"started_at": self.started_at, "ended_at": self.ended_at, "workers": self.workers}
        return state

    def set_state(self, state):
        super().set_state(state)
        extra = state.get("recurrent_mnist", {})
        self.started_at = dict(extra.get("started_at", {}))
        self.ended_at = dict(extra.get("ended_at", {}))
        self.workers = dict(extra.get("workers", {}))

    def save(self):
        _write_state(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        _write_state(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())


class _RandomOracle(_Bookkeeping, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOracle(_Bookkeeping, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _HyperbandOracle(_Bookkeeping, keras_tuner.oracles.HyperbandOracle):
    pass


class _GridOracle(_Bookkeeping, keras_tuner.oracles.GridSearchOracle):
    def set_state(self, state):
        super().set_state(state)
        # keras-tuner 1.4 does not save a grid's position, so a resumed grid search would stop at
        # once: rebuild it from the trials, in the grid's own order.
        values = {trial_id: trial.hyperparameters.values for trial_id, trial in self.trials.items()}

        def order(a, b):
            try:
                return self._compare(values[a], values[b])
            except (KeyError, ValueError):
                return (a > b) - (a < b)

        ordered = sorted(values, key=functools.cmp_to_key(order))
        self._ordered_ids = type(self._ordered_ids)()
        for trial_id in ordered:
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(ordered)


def _trial_seed(seed: int, trial_id: str) -> int:
    return zlib.crc32(f"{seed}/{trial_id}".encode()) % (2**31)


class _TunerHooks:
    """Mixed into keras-tuner's Keras tuner: seeded trials, atomic saves, progress events, and a
    pause instead of a busy loop while the oracle has no trial to hand out."""

    def __init__(self, oracle, hypermodel, *, seed: int, emit: Progress, train_size: int, max_epochs: int, **kwargs):
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.trial_seed = seed
        self.emit = emit
        self.train_size = train_size
        self.max_epochs = max_epochs
        self.ran: list[str] = []
        self._waiting = False
        self._epoch = 1
        self._last_batch_event = 0.0

    def pre_create_trial(self):
        if self._waiting:  # the oracle answered IDLE: it waits for other workers' trials
            time.sleep(0.5)
        self._waiting = True

    def on_trial_begin(self, trial):
        self._waiting = False
        keras.utils.set_random_seed(_trial_seed(self.trial_seed, trial.trial_id))
        super().on_trial_begin(trial)
        if self._is_worker():
            event = _trial_event(trial)
            self.emit({**event, "event": "trial_start", "epochs": event["epochs"] or self.max_epochs})

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        self._epoch = epoch + 1

    def on_batch_end(self, trial, model, batch, logs=None):
        now = time.monotonic()
        if now - self._last_batch_event >= 0.25:
            self._last_batch_event = now
            batch_size = trial.hyperparameters.values.get("batch_size") or DEFAULTS["batch_size"]
            self.emit(
                {
                    "event": "batch",
                    "trial_id": trial.trial_id,
                    "epoch": self._epoch,
                    "step": batch + 1,
                    "steps": math.ceil(self.train_size / batch_size),
                }
            )

    def on_epoch_end(self, trial, model, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, numbers.Real)}
        self.emit({"event": "epoch_end", "trial_id": trial.trial_id, "epoch": epoch + 1, "logs": logs})

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.ran.append(trial.trial_id)
        if self._is_worker():
            ended = self.oracle.get_trial(trial.trial_id)
            self.emit({"event": "trial_end", **_trial_event(ended), "error": _failure_reason(ended)})

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        _write_state(self._get_tuner_fname(), self.get_state())


class _Tuner(_TunerHooks, keras_tuner.Tuner):
    pass


class _HyperbandTuner(_TunerHooks, keras_tuner.Hyperband):
    """keras-tuner's Hyperband trials (they continue earlier trials' checkpoints), with our oracle."""

    def _build_hypermodel(self, hp):
        # As keras-tuner's Hyperband, without its `build_from_config` step (our models are built in
        # `build`, and building twice only warns), and with the optimizer built first, so that a
        # continued trial continues Adam's state too instead of warning that it was skipped.
        model = keras_tuner.Tuner._build_hypermodel(self, hp)
        if "tuner/trial_id" in hp.values:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(self._get_checkpoint_fname(hp.values["tuner/trial_id"]))
        return model


def _trial_event(trial: Trial) -> dict:
    values = dict(trial.hyperparameters.values)
    return {
        "trial_id": trial.trial_id,
        "status": _status(trial.status, final=False),
        "score": trial.score,
        "hyperparameters": values,
        "epochs": values.get("tuner/epochs"),
    }


# --------------------------------------------------------------------------- the trials table


def _status(status: str, final: bool) -> str:
    if status == TrialStatus.COMPLETED:
        return "completed"
    if status in (TrialStatus.FAILED, TrialStatus.INVALID):
        return "failed"
    return "interrupted" if final else "running"


def _failure_reason(trial: Trial) -> str:
    if trial.status not in (TrialStatus.FAILED, TrialStatus.INVALID):
        return ""
    lines = [line.strip() for line in (trial.message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "the objective was not a number (NaN)"
    name, separator, text = lines[-1].partition(": ")
    name = name.rsplit(".", 1)[-1]
    if separator and name == "FailedTrialError":
        return text[:500]
    return (f"{name}: {text}" if separator else lines[-1])[:500]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _clean(value, integer: bool = False):
    if isinstance(value, float):
        return int(value) if integer and value.is_integer() else float(f"{value:.10g}")
    return value


METRIC_COLUMNS = ["val_accuracy", "val_loss", "accuracy", "loss", "best_epoch", "epochs"]


def trials_frame(oracle, final: bool = False) -> pd.DataFrame:
    """Every trial of an oracle, in the order they started: status, rank, one column per
    hyperparameter, score, metrics of the best epoch, duration, worker and failure reason.

    Only completed trials with a finite score are ranked (1 is best); failed ones never are.
    """
    direction = OBJECTIVES.get(oracle.objective.name, oracle.objective.direction)
    space = oracle.get_space().space
    declared = [hp.name for hp in space]
    integers = {hp.name for hp in space if isinstance(hp, keras_tuner.engine.hyperparameters.Int)}
    hp_names = [name for name in SEARCH_SPACE if name in declared] + [n for n in declared if n not in SEARCH_SPACE]
    order = {trial_id: i for i, trial_id in enumerate(oracle.start_order)}
    trials = sorted(oracle.trials.values(), key=lambda t: (order.get(t.trial_id, len(order)), t.trial_id))
    rows = []
    for trial in trials:
        values = trial.hyperparameters.values
        for name in values:
            if name not in hp_names:
                hp_names.append(name)
        started, ended = oracle.started_at.get(trial.trial_id), oracle.ended_at.get(trial.trial_id)
        completed = trial.status == TrialStatus.COMPLETED
        row = {
            "trial_id": trial.trial_id,
            "status": _status(trial.status, final),
            "rank": None,
            **{name: _clean(values.get(name), name in integers) for name in values},
            "score": trial.score if completed and trial.score is not None and math.isfinite(trial.score) else None,
        }
        for metric in METRIC_COLUMNS:
            row[metric] = trial.metrics.get_last_value(metric) if completed and trial.metrics.exists(metric) else None
        row.update(
            duration_s=None if started is None or ended is None or ended < started else round(ended - started, 3),
            worker=oracle.workers.get(trial.trial_id),
            started_at=_iso(started),
            error=_failure_reason(trial),
        )
        rows.append(row)
    columns = ["trial_id", "status", "rank", *hp_names, "score", *METRIC_COLUMNS]
    columns += ["duration_s", "worker", "started_at", "error"]
    frame = pd.DataFrame(rows, columns=columns)
    ranked = frame[frame["score"].notna()].sort_values("score", ascending=direction == "min", kind="stable")
    frame.loc[ranked.index, "rank"] = range(1, len(ranked) + 1)
    frame["rank"] = frame["rank"].astype("Int64")
    for column in ("best_epoch", "epochs"):  # averaged over executions by keras-tuner; whole numbers stay whole
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.dropna().mod(1).eq(0).all():
            frame[column] = values.astype("Int64")
    return frame


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """The completed trials, best first."""
    return trials[trials["rank"].notna()].sort_values("rank").reset_index(drop=True)


def best_per_cell(trials: pd.DataFrame) -> pd.DataFrame:
    """The best completed trial of each cell, best cell first."""
    done = ranked(trials)
    if done.empty or "cell" not in done:
        return done
    return done.groupby("cell", sort=False).head(1).reset_index(drop=True)


def _markdown_rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    def text(value):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return "–"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return [[text(record.get(c)) for c in columns] for record in frame.to_dict("records")]


def summary_markdown(result: TuneResult, config: TuneConfig) -> str:
    trials = result.trials
    objective = f"{config.objective} ({OBJECTIVES[config.objective]}imised on the validation split)"
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    lines = [
        f"# Hyperparameter search: {result.run_dir.name}",
        "",
        f"Tuner `{config.tuner}`, cells {', '.join(config.cells)}, objective {objective}, on `{config.dataset}`. "
        f"{len(trials)} trial(s): {counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed"
        + (f", {counts.get('interrupted', 0)} interrupted" if counts.get("interrupted") else "")
        + f". The search stopped because {result.stop_reason}.",
        "",
    ]
    columns = [c for c in SEARCH_SPACE if c in trials]
    best = result.best
    if best:
        lines += ["## Best configuration", ""]
        lines.append(
            reporting.markdown_table(
                ["trial", *columns, "score", "test accuracy (retrained)"],
                [
                    [
                        str(best["trial_id"]),
                        *[str(_clean(best["hyperparameters"].get(c))) for c in columns],
                        f"{best['score']:.4f}",
                        "–" if best.get("test_accuracy") is None else f"{best['test_accuracy']:.4f}",
                    ]
                ],
            )
        )
        if best.get("model"):
            lines += [
                f"Retrained from scratch on the same training split (seed {config.seed}, early stopping on the "
                f"validation split), saved as `{best['model']}` and scored once on the test split.",
                "",
            ]
        elif best.get("error"):
            lines += [f"The retraining of the best configuration failed: {best['error']}.", ""]
    per_cell = result.best_per_cell
    if len(per_cell) > 1:
        lines += ["## Best per cell", ""]
        lines.append(
            reporting.markdown_table(
                ["cell", "trial", *columns[1:], "score"],
                _markdown_rows(per_cell, ["cell", "trial_id", *columns[1:], "score"]),
            )
        )
    top = ranked(trials).head(10)
    if not top.empty:
        shown = ["rank", "trial_id", *columns, "score", "best_epoch", "epochs", "duration_s"]
        lines += ["## Top trials", ""]
        lines.append(reporting.markdown_table(shown, _markdown_rows(top, shown)))
    failed = trials[trials["status"] == "failed"] if not trials.empty else trials
    if not failed.empty:
        lines += ["## Failed trials (never ranked)", ""]
        lines += [
            f"- trial {r['trial_id']} ({', '.join(f'{c} {_clean(r.get(c))}' for c in columns)}): {r['error']}"
            for r in failed.to_dict("records")
        ]
        lines.append("")
    lines.append("Every trial, with each hyperparameter as a column, is in `trials.csv`.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the run folder


def _os_message(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a file stands where a folder is needed"
    return f"the results folder {path} cannot be created or written: {reason}"


def _flock(handle, blocking: bool = False) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks; the search still works, without the checks they allow
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks
    return True


class _SearchFolder:
    """`<results>/<run>/`: the tables, `search.json` (what the search is), keras-tuner's project
    `search/`, and `workers/` (one lock file held by each live worker, and the chief's state)."""

    FILES = ("trials.csv", "best_hyperparameters.json", "best_model.keras", "summary.md", "search.json", "chief.json")

    def __init__(self, path: Path):
        self.path = path
        self.project = path / PROJECT
        self.workers = path / "workers"
        self._handles: list = []

    def prepare(self) -> None:
        try:
            self.workers.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ResultsError(_os_message(self.path, exc)) from None

    def discard(self) -> None:
        for name in (*self.FILES, "environment.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.project, ignore_errors=True)

    def check_config(self, identity: dict, dataset_sha256: str, write: bool = True) -> None:
        """Writes search.json, or checks that an existing one describes the same search."""
        path = self.path / "search.json"
        wanted = {"config": identity, "dataset_sha256": dataset_sha256}
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{path} cannot be read ({exc}); pass --fresh to start the search over") from None
            old, new = existing.get("config", {}), identity
            changed = [
                f"{k}: {new.get(k)!r} now, {old.get(k)!r} there"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            ]
            if existing.get("dataset_sha256") != dataset_sha256:
                changed.append("the data set's files differ")
            if changed:
                raise ResultsError(
                    f"{self.path} holds a search with another configuration ({'; '.join(changed)}); "
                    "choose another --run-name, or pass --fresh to discard it"
                )
        elif write:
            reporting.atomic_write_json(path, wanted)

    @contextlib.contextmanager
    def lock(self, path: Path, busy_message: str, tries: int = 1) -> Iterator[None]:
        """Holds an exclusive lock on `path` for the block; the kernel releases it when the process dies."""
        try:
            handle = open(path, "a")
        except OSError as exc:
            raise ResultsError(_os_message(path.parent, exc)) from None
        with handle:
            for attempt in range(tries):
                if _flock(handle):
                    break
                if attempt == tries - 1:
                    raise ResultsError(busy_message)
                time.sleep(0.2)  # a chief checking whether this worker lives holds the lock for a moment
            yield

    def live_workers(self) -> dict[str, bool]:
        """Each worker that left a lock file, and whether a process still holds it."""
        found = {}
        for path in self.workers.glob("*.lock"):
            try:
                with open(path, "a") as handle:
                    found[path.stem] = not _flock(handle)
            except OSError:
                continue
        return found

    def chief_state(self) -> dict:
        """What the chief last said: `starting`, `serving`, `finishing`, `finished` (with `complete`: no
        trial left to run) or `stopped` (interrupted); empty when no chief shares this folder."""
        try:
            state = json.loads((self.path / "chief.json").read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def set_chief_state(self, state: str, address: str, **extra) -> None:
        record = {"state": state, "address": address, "pid": os.getpid(), "at": _iso(time.time()), **extra}
        reporting.atomic_write_json(self.path / "chief.json", record)

    def search_ended(self, grace_s: float = 20.0) -> bool:
        """Whether a worker arrives too late: its chief is ending, or has ended.

        A chief restarted at the same moment as its workers may still be starting: a stale state
        counts only if it does not turn into `starting` or `serving` within `grace_s`.
        """
        deadline = time.monotonic() + grace_s
        while True:
            state = self.chief_state()
            ended = state.get("state") in ("finishing", "finished")
            if not ended or time.monotonic() >= deadline:
                return ended
            time.sleep(0.5)


# --------------------------------------------------------------------------- the search


@dataclasses.dataclass
class TuneResult:
    """What `run_search` returns: the tables (pandas DataFrames) and what happened.

    Attributes:
        run_dir: the run folder.
        trials: every trial (see `trials_frame`); on a worker, the trials it ran.
        best_per_cell: the best completed trial of each cell, best first.
        best: the best trial's id, hyperparameters and score, and the retrained
            model's file and test accuracy; None when no trial completed.
        files: the files written.
        role: `local`, `chief` or `worker`.
        ran: trials run by this call; kept: trials finished before it.
        stop_reason: why the search ended.
    """

    run_dir: Path
    trials: pd.DataFrame
    best_per_cell: pd.DataFrame
    best: dict | None
    files: list[Path]
    role: str
    ran: int = 0
    kept: int = 0
    stop_reason: str = ""

    @property
    def completed(self) -> int:
        return int((self.trials["status"] == "completed").sum()) if not self.trials.empty else 0

    @property
    def failed(self) -> int:
        return int((self.trials["status"] == "failed").sum()) if not self.trials.empty else 0


def run_search(
    config: TuneConfig,
    *,
    data_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = "results",
    run_name: str | None = None,
    fresh: bool = False,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    dataset: Dataset | None = None,
    retrain_best: bool = True,
) -> TuneResult:
    """Runs (or resumes) a hyperparameter search and writes its tables and best model.

    A one-process search, or a chief, resumes the keras-tuner project in
    `<results_dir>/<run_name>/search/` (`overwrite=False`): finished trials are
    kept and an interrupted one runs again. A chief serves the oracle to its
    workers over gRPC on `config.oracle` and ends once the search is over and
    no live worker holds a trial; a worker runs trials until the chief says
    the search is over. The chief or the one process then retrains the best
    configuration and writes the files.

    Args:
        config: the search.
        data_dir: where to read the data set from (see `datasets.load`).
        results_dir: the folder that holds run folders (shared by the chief
            and its workers).
        run_name: the run folder's name; defaults to one derived from the search.
        fresh: discard this run's earlier trials instead of resuming.
        tensorboard_dir: where keras.callbacks.TensorBoard writes each trial's
            logs and keras-tuner its HParams view.
        progress: receives progress events (dicts with an `"event"` key).
        command: the command line recorded in environment.json.
        dataset: an already loaded data set (it must be `config.dataset`).
        retrain_best: retrain the best configuration and save it as
            `best_model.keras`; False writes only its hyperparameters.

    Returns:
        A `TuneResult`.

    Raises:
        DatasetError, ConfigError, ResultsError: the search cannot run; nothing
            was trained.
        KeyboardInterrupt: interrupted; finished trials are kept and the
            trials table is written first.
    """
    emit = progress or (lambda event: None)
    _require_optional_packages(config)
    if run_name is not None and (not run_name.strip() or Path(run_name).name != run_name or run_name in (".", "..")):
        raise ConfigError(f"--run-name must be a plain folder name; received {run_name!r}")
    role = config.distributed or "local"
    if role == "worker" and fresh:
        raise ConfigError("--fresh discards a search, which only its chief may do; start the chief with --fresh")
    if dataset is None:
        dataset = load(config.dataset, data_dir)
    if dataset.name != config.dataset:
        raise ConfigError(f"the data set passed is {dataset.name!r}, the configuration names {config.dataset!r}")
    folder = _SearchFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    folder.prepare()

    with _keras_tuner_role(config) as variables:
        if role == "worker":
            return _run_worker(config, dataset, folder, variables["KERASTUNER_TUNER_ID"], tensorboard_dir, emit)
        busy = f"another tune process is running the search in {folder.path}; wait for it, or choose another --run-name"
        with folder.lock(folder.path / ".search.lock", busy):
            if role == "chief":
                folder.set_chief_state("starting", config.oracle)
            if fresh:
                folder.discard()
            folder.check_config(config.identity(), dataset.sha256)
            reporting.atomic_write_json(
                folder.path / "environment.json",
                environment_info(command, dataset=dataset.describe(), config=config.to_dict(), role=role),
            )
            return _run_oracle(config, dataset, folder, role, tensorboard_dir, emit, retrain_best)


def _make_tuner(config: TuneConfig, dataset: Dataset, folder: _SearchFolder, train_size: int, emit: Progress):
    objective = keras_tuner.Objective(config.objective, OBJECTIVES[config.objective])
    common = dict(
        objective=objective,
        seed=config.seed,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=NO_FAILURE_LIMIT,
    )
    if config.tuner == "hyperband":
        oracle = _HyperbandOracle(max_epochs=config.max_epochs, factor=3, **common)
        oracle.max_trials = config.max_trials  # keras-tuner's Hyperband has no trial limit of its own
    else:
        oracle_class = {"random": _RandomOracle, "bayesian": _BayesianOracle, "grid": _GridOracle}[config.tuner]
        oracle = oracle_class(max_trials=config.max_trials, **common)
    oracle._init_bookkeeping()
    tuner_class = _HyperbandTuner if config.tuner == "hyperband" else _Tuner
    strategy = get_strategy(config.strategy) if config.strategy != "default" else None
    hypermodel = config.hypermodel(dataset.num_classes, dataset.image_shape)
    tuner_file = folder.project / f"{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}.json"
    if (folder.project / "oracle.json").exists() and not tuner_file.exists():
        # keras-tuner reloads a project only when this tuner id saved in it before: a chief resuming,
        # or a one-process search continued by a chief, would otherwise start over on top of it.
        _write_state(tuner_file, {})
    with contextlib.redirect_stdout(io.StringIO()):  # keras-tuner prints "Reloading Tuner from ..."
        tuner = tuner_class(
            oracle,
            hypermodel,
            seed=config.seed,
            emit=emit,
            train_size=train_size,
            max_epochs=config.max_epochs,
            executions_per_trial=config.executions_per_trial,
            distribution_strategy=strategy,
            directory=str(folder.path),
            project_name=PROJECT,
            overwrite=False,
        )
    if not tuner._is_worker():
        tuner.oracle.verbose = 0
        tuner.save()  # as keras-tuner's own search does first: a later run reloads this project
    return tuner


def _search_arguments(config: TuneConfig, dataset: Dataset, tensorboard_dir) -> tuple[tuple, dict]:
    x_train, y_train, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_split)
    callbacks = []
    if tensorboard_dir is not None:
        # keras-tuner gives each trial its own log folder and adds the HParams callback.
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    kwargs = dict(validation_data=(x_val, y_val), epochs=config.max_epochs, callbacks=callbacks, verbose=0)
    return (x_train, y_train), kwargs


def _run_oracle(config, dataset, folder, role: str, tensorboard_dir, emit: Progress, retrain: bool) -> TuneResult:
    args, kwargs = _search_arguments(config, dataset, tensorboard_dir)
    tuner = _make_tuner(config, dataset, folder, len(args[0]), emit)
    oracle = tuner.oracle
    kept = len(oracle.end_order)
    write_lock = threading.Lock()

    def write_trials(final: bool = False) -> pd.DataFrame:
        with write_lock:
            frame = trials_frame(oracle, final=final)
            reporting.write_csv(frame, folder.path / "trials.csv")
            return frame

    def listener(event: str, trial: Trial) -> None:
        number = oracle.start_order.index(trial.trial_id) + 1 if trial.trial_id in oracle.start_order else None
        common = {
            **_trial_event(trial),
            "number": number,
            "total": config.max_trials,
            "worker": oracle.workers.get(trial.trial_id),
        }
        if oracle.deadline is not None:
            common["time_left_s"] = max(0.0, oracle.deadline - time.time())
        if event == "trial_start":
            emit({"event": "trial_start", **common, "epochs": common["epochs"] or config.max_epochs})
            return
        frame = write_trials()
        best = ranked(frame).head(1).to_dict("records")
        emit(
            {
                "event": "trial_end",
                **common,
                "error": _failure_reason(trial),
                "duration_s": frame.loc[frame["trial_id"] == trial.trial_id, "duration_s"].iloc[0],
                "finished": len(oracle.end_order),
                "failed": int((frame["status"] == "failed").sum()),
                "best": best[0] if best else None,
            }
        )

    oracle.listener = listener
    if config.time_budget is not None:
        oracle.deadline = time.time() + 60.0 * config.time_budget
    host, port = parse_oracle_address(config.oracle)
    emit(
        {
            "event": "search_start",
            "run_dir": str(folder.path),
            "role": role,
            "tuner": config.tuner,
            "total": config.max_trials,
            "kept": kept,
            "deadline": oracle.deadline,
            "address": f"{host}:{port}" if role == "chief" else None,
            "dataset": dataset.describe(),
        }
    )
    try:
        if role == "chief":
            _serve(oracle, host, port, folder)
            unfinished = [
                t for t in oracle.trials.values() if t.status not in (TrialStatus.COMPLETED, TrialStatus.FAILED)
            ]
            folder.set_chief_state("finished", f"{host}:{port}", complete=not oracle.budget_spent and not unfinished)
        else:
            tuner.search(*args, **kwargs)
    except BaseException:
        if role == "chief":
            folder.set_chief_state("stopped", f"{host}:{port}")
        with contextlib.suppress(Exception):
            write_trials(final=True)
        raise
    finally:
        oracle.listener = None
    if oracle.listener_error is not None:
        raise oracle.listener_error
    if oracle.budget_spent:
        stop_reason = f"the time budget of {config.time_budget:g} min was spent"
    elif oracle.max_trials and len(oracle.trials) >= oracle.max_trials:
        stop_reason = f"it reached {oracle.max_trials} trial{'s' if oracle.max_trials != 1 else ''}"
    else:
        stop_reason = "the tuner had no new configuration to try"
    trials = write_trials(final=True)
    emit({"event": "search_end", "reason": stop_reason, "trials": len(trials)})
    result = TuneResult(
        run_dir=folder.path,
        trials=trials,
        best_per_cell=best_per_cell(trials),
        best=None,
        files=[folder.path / "trials.csv"],
        role=role,
        ran=len(oracle.end_order) - kept,
        kept=kept,
        stop_reason=stop_reason,
    )
    result.best = _best_model(config, dataset, folder, trials, emit, retrain)
    if result.best is not None:
        result.files.append(folder.path / "best_hyperparameters.json")
        if result.best.get("model"):
            result.files.append(folder.path / result.best["model"])
    reporting.atomic_write_text(folder.path / "summary.md", summary_markdown(result, config))
    result.files += [folder.path / "summary.md", folder.path / "environment.json"]
    return result


def _best_model(config, dataset, folder: _SearchFolder, trials: pd.DataFrame, emit, retrain: bool) -> dict | None:
    """Retrains the best configuration from scratch, saves it and scores it once on the test split.

    Kept as it is when the best trial has not changed since the last run.
    """
    top = ranked(trials).head(1).to_dict("records")
    if not top:
        return None
    row = top[0]
    names = [c for c in trials.columns if c in SEARCH_SPACE]
    hyperparameters = {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in names}
    best = {
        "trial_id": str(row["trial_id"]),
        "objective": config.objective,
        "score": float(row["score"]),
        "best_epoch": None if pd.isna(row.get("best_epoch")) else float(row["best_epoch"]),
        "hyperparameters": hyperparameters,
        "per_cell": {
            r["cell"]: {"trial_id": str(r["trial_id"]), "score": float(r["score"]), **{n: r[n] for n in names}}
            for r in best_per_cell(trials).to_dict("records")
        },
    }
    best_json = folder.path / "best_hyperparameters.json"
    model_path = folder.path / "best_model.keras"
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(best_json.read_text())
        if (
            previous.get("trial_id") == best["trial_id"]
            and previous.get("hyperparameters") == json.loads(json.dumps(hyperparameters))
            and previous.get("model")
            and model_path.exists()
        ):
            best.update(
                {k: previous[k] for k in ("model", "test_accuracy", "test_loss", "retrained_epochs") if k in previous}
            )
            reporting.atomic_write_json(best_json, best)
            emit(
                {
                    "event": "retrain_end",
                    "kept": True,
                    "test_accuracy": best.get("test_accuracy"),
                    "path": str(model_path),
                }
            )
            return best
    if not retrain:
        with contextlib.suppress(FileNotFoundError):
            model_path.unlink()  # it belongs to another configuration
        reporting.atomic_write_json(best_json, {**best, "model": None})
        return best
    train_config = TrainConfig(
        cell=hyperparameters["cell"],
        units=int(hyperparameters["units"]),
        num_layers=int(hyperparameters["layers"]),
        bidirectional=bool(hyperparameters["bidirectional"]),
        dropout=float(hyperparameters["dropout"]),
        learning_rate=float(hyperparameters["learning_rate"]),
        batch_size=int(hyperparameters["batch_size"]),
        epochs=config.max_epochs,
        validation_split=config.validation_split,
        early_stopping=config.early_stopping,
        seed=config.seed,
        strategy=config.strategy,
    )
    emit(
        {
            "event": "retrain_start",
            "trial_id": best["trial_id"],
            "hyperparameters": hyperparameters,
            "epochs": config.max_epochs,
        }
    )
    outcome = train_variant(dataset, train_config, measure=False, keep_model=True)
    if outcome.row["status"] != "ok":
        best.update(model=None, error=outcome.row["error"])
        with contextlib.suppress(FileNotFoundError):
            model_path.unlink()
    else:
        save_model(outcome.model, model_path)
        best.update(
            model=model_path.name,
            test_accuracy=outcome.row["test_accuracy"],
            test_loss=outcome.row["test_loss"],
            retrained_epochs=outcome.row["epochs"],
        )
    reporting.atomic_write_json(best_json, best)
    emit(
        {
            "event": "retrain_end",
            "kept": False,
            "test_accuracy": best.get("test_accuracy"),
            "path": str(model_path),
            "error": best.get("error"),
        }
    )
    return best


# --------------------------------------------------------------------------- distributed: chief and workers


def _serve(oracle, host: str, port: int, folder: _SearchFolder, poll_s: float = 0.2) -> None:
    """Serves `oracle` to workers over keras-tuner's gRPC service until the search is over.

    keras-tuner's own chief loop (`oracle_chief.start_server`) waits until
    every worker it ever saw has been told to stop, checking every 20 seconds,
    so a worker that dies keeps it waiting for ever. Here a worker is live
    while it holds its lock file in the shared results folder (the kernel
    releases it when the process dies, even by kill -9; a worker that left no
    lock file, without a shared folder, counts as live). The trial of a worker
    that died goes back to the search for the next worker that asks. The chief
    ends once the oracle has stopped handing out trials (trial limit, time
    budget, nothing left to try) and no live worker holds a trial or has yet
    to be told.
    """
    # keras-tuner's service and servicer, as its own chief uses them (checked with keras-tuner 1.4.7-1.4.8).
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise ConfigError(
            f"--oracle {host}:{port}: the chief cannot listen there "
            "(the port is taken, or the address is not this machine's)"
        )
    folder.set_chief_state("serving", address)
    server.start()
    try:
        while True:
            time.sleep(poll_s)
            if oracle.listener_error is not None:
                raise oracle.listener_error
            _requeue_dead_workers(oracle, folder)
            if not _search_over(oracle, servicer) or _workers_busy(oracle, folder):
                continue
            # A worker that starts now reads "finishing" and leaves; one that locked just before is seen here.
            folder.set_chief_state("finishing", address)
            if _workers_busy(oracle, folder):
                folder.set_chief_state("serving", address)
                continue
            break
    finally:
        server.stop(grace=1.0).wait()


def _requeue_dead_workers(oracle, folder: _SearchFolder) -> None:
    locks = folder.live_workers()
    dead = [tuner_id for tuner_id in oracle.snapshot()["ongoing"] if locks.get(tuner_id) is False]
    if dead:
        oracle.requeue(dead)


def _search_over(oracle, servicer) -> bool:
    return servicer.stop_triggered or oracle.past_deadline() or oracle.snapshot()["exhausted"]


def _workers_busy(oracle, folder: _SearchFolder) -> bool:
    state = oracle.snapshot()
    locks = folder.live_workers()

    def live(tuner_id):
        return locks.get(tuner_id, True)  # no lock file: a worker elsewhere, assumed live

    if any(live(tuner_id) for tuner_id in state["ongoing"]):
        return True
    untold = (state["registered"] - state["stopped"]) | {w for w, held in locks.items() if held} - state["stopped"]
    return any(live(tuner_id) for tuner_id in untold)


def _run_worker(config, dataset, folder: _SearchFolder, worker_id: str, tensorboard_dir, emit: Progress) -> TuneResult:
    busy = f"a worker with --worker-id {worker_id} is already running on {folder.path}; give each worker its own id"
    with folder.lock(folder.workers / f"{worker_id}.lock", busy, tries=10):
        folder.check_config(config.identity(), dataset.sha256, write=False)
        host, port = parse_oracle_address(config.oracle)
        emit(
            {
                "event": "search_start",
                "run_dir": str(folder.path),
                "role": "worker",
                "worker_id": worker_id,
                "tuner": config.tuner,
                "total": config.max_trials,
                "kept": 0,
                "deadline": None,
                "address": f"{host}:{port}",
                "dataset": dataset.describe(),
            }
        )
        if folder.search_ended():
            reason = "the chief has already ended this search"
            emit({"event": "search_end", "reason": reason, "trials": 0})
            return TuneResult(folder.path, pd.DataFrame(), pd.DataFrame(), None, [], "worker", stop_reason=reason)
        args, kwargs = _search_arguments(config, dataset, tensorboard_dir)
        tuner = _make_tuner(config, dataset, folder, len(args[0]), emit)
        tuner.search(*args, **kwargs)
        rows = []
        for trial_id in tuner.ran:
            trial = tuner.oracle.get_trial(trial_id)
            rows.append(
                {
                    "trial_id": trial_id,
                    "status": _status(trial.status, final=True),
                    **trial.hyperparameters.values,
                    "score": trial.score,
                    "error": _failure_reason(trial),
                }
            )
        reason = "the chief ended the search"
        emit({"event": "search_end", "reason": reason, "trials": len(rows)})
        return TuneResult(
            folder.path, pd.DataFrame(rows), pd.DataFrame(), None, [], "worker", ran=len(rows), stop_reason=reason
        )
