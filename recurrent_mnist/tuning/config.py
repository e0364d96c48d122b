"""What a search is: `TuneConfig`, its default run name, and the keras-tuner environment of its role.

keras-tuner reads its distributed role (one process, chief or worker) from `KERASTUNER_*` variables;
`keras_tuner_environment` says which, and `_keras_tuner_role` sets them for the length of a search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Iterator

from recurrent_mnist.datasets import DATASETS
from recurrent_mnist.distribute import STRATEGIES
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.training import steps_per_execution_for
from recurrent_mnist.tuning.hypermodel import RANGES, RowSequenceHyperModel

TUNERS = ("random", "bayesian", "hyperband", "grid")
ROLES = ("chief", "worker")


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
            steps_per_execution=steps_per_execution_for(self.strategy),
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
