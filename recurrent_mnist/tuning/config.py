"""What a search is: `TuneConfig`, its default run name, and the keras-tuner environment of its role.

keras-tuner reads its distributed role (one process, chief or worker) from `KERASTUNER_*` variables;
`keras_tuner_environment` says which, and `_keras_tuner_role` sets them for the length of a search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
from collections.abc import Iterator

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs.folder import digest as _digest
from recurrent_mnist.training.config import steps_per_execution_for
from recurrent_mnist.tuning.hypermodel import RowSequenceHyperModel

# The settings a TuneConfig checks one by one; the search ranges are checked by the hypermodel.
_CHECKED = (
    settings.DATASET,
    settings.TUNER,
    settings.MAX_TRIALS,
    settings.MAX_EPOCHS,
    settings.EXECUTIONS_PER_TRIAL,
    settings.OBJECTIVE,
    settings.SEED,
    settings.TIME_BUDGET,
    settings.VALIDATION_SPLIT,
    settings.RECURRENT_DROPOUT,
    settings.PERMUTATION_SEED,
    settings.CLIPNORM,
    settings.STEPS_PER_EXECUTION,
    settings.JIT_COMPILE,
    settings.STRATEGY,
    settings.THREADS,
    settings.DISTRIBUTED,
)
# Fields added after searches were first run: left out of a search's identity while at their
# default, so that those searches keep their run name and resume.
_IDENTITY_IF_SET = {
    "recurrent_dropout": settings.RECURRENT_DROPOUT.default,
    "readings": (settings.READING.default,),
    "permutation_seed": settings.PERMUTATION_SEED.default,
    "clipnorm": settings.CLIPNORM.default,
}


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
        recurrent_dropout: the dropout of the recurrent state of every trial's
            model (not searched), as `TrainConfig.recurrent_dropout`.
        readings: how the models read an image: one reading fixes it, several
            are the `reading` hyperparameter's choices.
        permutation_seed: the pixel order of the `permuted-pixels` reading.
        clipnorm: the gradient norm every trial clips to; None: no clipping.
        steps_per_execution, jit_compile: how each trial's training runs, as in
            `TrainConfig` (None: XLA by the same automatic rule as bench).
        strategy: `default` or `mirrored` (tf.distribute, every GPU or logical CPU).
        distributed: None (one process), `chief` (runs the oracle) or `worker`.
        oracle: `HOST:PORT` the chief listens on and workers connect to. The
            default, `127.0.0.1:8000`, keeps the chief to this machine:
            keras-tuner's gRPC channel has no TLS and no authentication, so
            anyone who reaches the port can take trials and report scores.
        worker_id: this worker's keras-tuner id; a worker restarted with the
            same id resumes its interrupted trial.
    """

    dataset: str = settings.DATASET.default
    cells: tuple[str, ...] = settings.DEFAULT_CELLS
    tuner: str = settings.TUNER.default
    max_trials: int = settings.MAX_TRIALS.default
    max_epochs: int = settings.MAX_EPOCHS.default
    executions_per_trial: int = settings.EXECUTIONS_PER_TRIAL.default
    objective: str = settings.OBJECTIVE.default
    seed: int = settings.SEED.default
    time_budget: float | None = settings.TIME_BUDGET.default
    early_stopping: int | None = settings.TUNE_EARLY_STOPPING
    validation_split: float = settings.VALIDATION_SPLIT.default
    units: tuple[int, int] = settings.UNITS.search
    layers: tuple[int, int] = settings.LAYERS.search
    bidirectional: bool | None = None
    dropout: tuple[float, float] = settings.DROPOUT.search
    learning_rate: tuple[float, float] = settings.LEARNING_RATE.search
    batch_size: tuple[int, int] = settings.BATCH_SIZE.search
    recurrent_dropout: float = settings.RECURRENT_DROPOUT.default
    readings: tuple[str, ...] = (settings.READING.default,)
    permutation_seed: int = settings.PERMUTATION_SEED.default
    clipnorm: float | None = settings.CLIPNORM.default
    steps_per_execution: int = settings.STEPS_PER_EXECUTION.default
    jit_compile: bool | None = settings.JIT_COMPILE.default
    strategy: str = settings.STRATEGY.default
    threads: int | None = settings.THREADS.default
    distributed: str | None = settings.DISTRIBUTED.default
    oracle: str | None = None
    worker_id: str | None = None

    def __post_init__(self):
        settings.check_fields(self, _CHECKED)
        if self.validation_split == 0:
            raise ConfigError(
                "`validation_split` must be above 0 for a search: the trials are scored on it",
                argument="validation_split",
            )
        if self.distributed is None:
            for name in ("oracle", "worker_id"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"`{name}` is for a distributed search (`distributed='chief'` or `distributed='worker'`)",
                        argument=name,
                    )
        else:
            object.__setattr__(self, "oracle", self.oracle or settings.ORACLE.default)
            settings.parse_oracle_address(self.oracle)
        if self.distributed == "chief" and self.worker_id is not None:
            raise ConfigError("`worker_id` is for workers; the chief's id is 'chief'", argument="worker_id")
        settings.check_worker_id(self.worker_id)
        hypermodel = self.hypermodel()  # validates the cells, the readings and every range
        object.__setattr__(self, "cells", hypermodel.cells)
        object.__setattr__(self, "readings", hypermodel.readings)

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
            recurrent_dropout=self.recurrent_dropout,
            readings=self.readings,
            permutation_seed=self.permutation_seed,
            clipnorm=self.clipnorm,
            objective=self.objective,
            early_stopping=self.early_stopping,
            steps_per_execution=steps_per_execution_for(self.strategy, self.steps_per_execution),
            jit_compile=self.jit_compile,
            strategy=self.strategy,
            parallel_chains=self.threads,
        )

    def identity(self) -> dict:
        """What defines the search: a run folder resumes only a search with the same identity.

        The budget (`max_trials`, `time_budget`), how the trials execute (device
        strategy, threads, steps per execution, XLA) and the distributed role
        may change between runs of the same search.
        """
        config = dataclasses.asdict(self)
        for key in (
            "max_trials",
            "time_budget",
            "strategy",
            "threads",
            "steps_per_execution",
            "jit_compile",
            "distributed",
            "oracle",
            "worker_id",
        ):
            config.pop(key)
        if "permuted-pixels" not in self.readings:
            config["permutation_seed"] = settings.PERMUTATION_SEED.default  # no pixel order is drawn
        for key, default in _IDENTITY_IF_SET.items():
            if config[key] == default:
                del config[key]
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
    host, port = settings.parse_oracle_address(config.oracle)
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
