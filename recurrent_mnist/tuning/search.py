"""Running a search: `run_search`, the driver of a one-process search or a chief, and the best model.

`run_search` checks the configuration and the run folder, then hands a worker to `distributed`, or
runs the oracle here: keras-tuner's own search loop in one process, the gRPC service on a chief. It
writes the trials table after every trial, and at the end retrains the best configuration from
scratch, saves it and scores it once on the test split (`_best_model`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
from keras_tuner.engine.trial import Trial, TrialStatus

from recurrent_mnist import reporting, settings
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import code_identity, environment_info, limit_threads
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs.atomic import atomic_write_json, atomic_write_text
from recurrent_mnist.runs.folder import check_run_name
from recurrent_mnist.saving import save_model
from recurrent_mnist.single import record_path
from recurrent_mnist.training import TrainConfig, train_variant
from recurrent_mnist.training.variant import release_models
from recurrent_mnist.tuning.config import (
    TuneConfig,
    _keras_tuner_role,
    _require_optional_packages,
    default_run_name,
)
from recurrent_mnist.tuning.distributed import _run_worker, _serve
from recurrent_mnist.tuning.folder import _SearchFolder
from recurrent_mnist.tuning.hypermodel import SEARCH_SPACE, trial_settings
from recurrent_mnist.tuning.oracles import Progress, _make_tuner, _search_arguments, _trial_event
from recurrent_mnist.tuning.tables import (
    TuneResult,
    _failure_reason,
    best_per_cell,
    ranked,
    summary_markdown,
    trials_frame,
)


def run_search(
    config: TuneConfig,
    *,
    data_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = settings.RESULTS_DIR,
    run_name: str | None = None,
    fresh: bool = False,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    command: list[str] | None = None,
    dataset: Dataset | None = None,
    retrain_best: bool = True,
    imports: tuple[str, ...] = (),
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
        imports: the modules that registered custom cells (already imported):
            their source is part of the code a search is filled by.

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
    limit_threads(config.threads)
    check_run_name(run_name)
    role = config.distributed or "local"
    if role == "worker" and fresh:
        raise ConfigError(
            "`fresh=True` discards a search, which only its chief may do; start the chief with `fresh=True`",
            argument="fresh",
        )
    if dataset is None:
        dataset = load(config.dataset, data_dir)
    if dataset.name != config.dataset:
        raise ConfigError(f"the data set passed is {dataset.name!r}, the configuration names {config.dataset!r}")
    folder = _SearchFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    folder.prepare()

    with _keras_tuner_role(config) as variables:
        if role == "worker":
            worker_id = variables["KERASTUNER_TUNER_ID"]
            return _run_worker(config, dataset, folder, worker_id, tensorboard_dir, emit, code_identity(imports))
        busy = f"another process is running the search in {folder.path}; wait for it, or choose another `run_name`"
        with folder.lock(folder.path / ".search.lock", busy):
            if role == "chief":
                folder.set_chief_state("starting", config.oracle)
            if fresh:
                folder.discard()
            code = code_identity(imports)
            folder.check_config(config.identity(), dataset.sha256, code=code)
            search = _Search(config, dataset, folder, role, tensorboard_dir, emit, code, command)
            return _run_oracle(search, retrain_best)


@dataclasses.dataclass(frozen=True)
class _Search:
    """The search a one-process run or a chief drives: what it searches, on which data, into which
    folder, and what it records with the results."""

    config: TuneConfig
    dataset: Dataset
    folder: _SearchFolder
    role: str  # "local" or "chief"
    tensorboard_dir: str | os.PathLike | None
    emit: Progress
    code: dict
    command: list[str] | None


def _about_to_train(search: _Search) -> None:
    """Checks that this code may fill the search, and records the environment that fills it."""
    # Trials or a retrained model from other code would mix versions in one search; a search
    # with nothing left to run is only rebuilt, whatever code reads it.
    search.folder.check_code(search.code)
    atomic_write_json(
        search.folder.path / "environment.json",
        environment_info(
            search.command,
            dataset=search.dataset.describe(),
            config=search.config.to_dict(),
            role=search.role,
        ),
    )


def _search_done(oracle, folder: _SearchFolder) -> bool:
    """Whether a run would train nothing: every trial of the budget ended, and the best one is retrained."""
    if not oracle.max_trials or len(oracle.end_order) < oracle.max_trials:
        return False
    with contextlib.suppress(OSError, ValueError):
        best = json.loads((folder.path / "best_hyperparameters.json").read_text())
        return bool(best.get("model")) and (folder.path / best["model"]).exists()
    return False


# -- the trials ---------------------------------------------------------------------------


def _run_oracle(search: _Search, retrain: bool) -> TuneResult:
    """Runs the trials the search has left, then writes the tables and the best model."""
    config, folder, emit = search.config, search.folder, search.emit
    args, kwargs = _search_arguments(config, search.dataset, search.tensorboard_dir)
    tuner = _make_tuner(config, search.dataset, folder, len(args[0]), emit)
    oracle = tuner.oracle
    kept = len(oracle.end_order)
    if not _search_done(oracle, folder):
        _about_to_train(search)
    table = _TrialsTable(oracle, folder.path / "trials.csv")
    if config.time_budget is not None:
        oracle.deadline = time.time() + 60.0 * config.time_budget
    host, port = settings.parse_oracle_address(config.oracle) if search.role == "chief" else (None, None)
    chief_address = f"{host}:{port}" if search.role == "chief" else None
    emit(
        {
            "event": "search_start",
            "run_dir": str(folder.path),
            "role": search.role,
            "tuner": config.tuner,
            "total": config.max_trials,
            "kept": kept,
            "deadline": oracle.deadline,
            "address": chief_address,
            "dataset": search.dataset.describe(),
        }
    )
    with _trials_running(search, oracle, table, chief_address):
        if search.role == "chief":
            _serve(oracle, host, port, folder)
            folder.set_chief_state("finished", chief_address, complete=_search_complete(oracle))
        else:
            tuner.search(*args, **kwargs)
    if oracle.listener_error is not None:
        raise oracle.listener_error
    return _write_results(search, oracle, table, kept, retrain)


class _TrialsTable:
    """`trials.csv`, rewritten whole from the oracle by one writer at a time: on a chief the oracle's
    listener runs in the threads that serve the workers."""

    def __init__(self, oracle, path: Path):
        self._oracle = oracle
        self._path = path
        self._lock = threading.Lock()

    def write(self, final: bool = False) -> pd.DataFrame:
        with self._lock:
            frame = trials_frame(self._oracle, final=final)
            reporting.write_csv(frame, self._path)
            return frame


class _TrialEvents:
    """The oracle's listener: a progress event when a trial starts, and when one ends the trials table
    rewritten and an event with the best trial so far."""

    def __init__(self, oracle, table: _TrialsTable, config: TuneConfig, emit: Progress):
        self._oracle = oracle
        self._table = table
        self._config = config
        self._emit = emit

    def __call__(self, event: str, trial: Trial) -> None:
        common = self._describe(trial)
        if event == "trial_start":
            self._emit({"event": "trial_start", **common, "epochs": common["epochs"] or self._config.max_epochs})
            return
        frame = self._table.write()
        best = ranked(frame).head(1).to_dict("records")
        self._emit(
            {
                "event": "trial_end",
                **common,
                "error": _failure_reason(trial),
                "duration_s": frame.loc[frame["trial_id"] == trial.trial_id, "duration_s"].iloc[0],
                "finished": len(self._oracle.end_order),
                "failed": int((frame["status"] == "failed").sum()),
                "best": best[0] if best else None,
            }
        )

    def _describe(self, trial: Trial) -> dict:
        """What both events say of a trial: its settings, its place in the search, and its worker."""
        oracle = self._oracle
        number = oracle.start_order.index(trial.trial_id) + 1 if trial.trial_id in oracle.start_order else None
        common = {
            **_trial_event(trial),
            "number": number,
            "total": self._config.max_trials,
            "worker": oracle.workers.get(trial.trial_id),
        }
        if oracle.deadline is not None:
            common["time_left_s"] = max(0.0, oracle.deadline - time.time())
        return common


@contextlib.contextmanager
def _trials_running(search: _Search, oracle, table: _TrialsTable, chief_address: str | None):
    """While the trials run, the oracle tells a `_TrialEvents`. On any exception, a chief records that
    it stopped and the trials table is written before the exception goes on."""
    oracle.listener = _TrialEvents(oracle, table, search.config, search.emit)
    try:
        yield
    except BaseException:
        if chief_address is not None:
            search.folder.set_chief_state("stopped", chief_address)
        with contextlib.suppress(Exception):
            table.write(final=True)
        raise
    finally:
        oracle.listener = None


def _search_complete(oracle) -> bool:
    """Whether a chief's search is complete: its time budget not spent, and every trial completed or failed."""
    ended = (TrialStatus.COMPLETED, TrialStatus.FAILED)
    return not oracle.budget_spent and all(trial.status in ended for trial in oracle.trials.values())


def _stop_reason(oracle, config: TuneConfig) -> str:
    """Why the search ended, as a clause: "the search stopped because ..."."""
    if oracle.budget_spent:
        return f"the time budget of {config.time_budget:g} min was spent"
    if oracle.max_trials and len(oracle.trials) >= oracle.max_trials:
        return f"it reached {oracle.max_trials} trial{'s' if oracle.max_trials != 1 else ''}"
    return "the tuner had no new configuration to try"


def _write_results(search: _Search, oracle, table: _TrialsTable, kept: int, retrain: bool) -> TuneResult:
    """Writes the final trials table, the best model and `summary.md`, once the trials have ended."""
    folder = search.folder
    stop_reason = _stop_reason(oracle, search.config)
    trials = table.write(final=True)
    search.emit({"event": "search_end", "reason": stop_reason, "trials": len(trials)})
    result = TuneResult(
        run_dir=folder.path,
        trials=trials,
        best_per_cell=best_per_cell(trials),
        best=None,
        files=[folder.path / "trials.csv"],
        role=search.role,
        ran=len(oracle.end_order) - kept,
        kept=kept,
        stop_reason=stop_reason,
    )
    result.best = _best_model(search, trials, retrain)
    if result.best is not None:
        result.files.append(folder.path / "best_hyperparameters.json")
        if result.best.get("model"):
            result.files.append(folder.path / result.best["model"])
    atomic_write_text(folder.path / "summary.md", summary_markdown(result, search.config))
    result.files += [folder.path / "summary.md", folder.path / "environment.json"]
    return result


# -- the best model -----------------------------------------------------------------------

# The settings a retrained best model takes from the search, as its trials took them.
_SEARCH_SETTINGS = (
    "validation_split",
    "early_stopping",
    "seed",
    "recurrent_dropout",
    "permutation_seed",
    "clipnorm",
    "steps_per_execution",
    "jit_compile",
    "strategy",
    "threads",
)


# What `best_hyperparameters.json` records of the retrained model.
_RETRAINED_FIELDS = ("model", "test_accuracy", "test_loss", "retrained_epochs")


def _best_model(search: _Search, trials: pd.DataFrame, retrain: bool) -> dict | None:
    """Retrains the best configuration from scratch, saves it and scores it once on the test split.

    Kept as it is when the best trial has not changed since the last run.

    Returns:
        What `best_hyperparameters.json` holds; None before any trial completed.
    """
    best = _best_trial(search.config, trials)
    if best is None:
        return None
    best_json = search.folder.path / "best_hyperparameters.json"
    model_path = search.folder.path / "best_model.keras"
    kept = _kept_model(best, best_json, model_path)
    if kept is not None:
        best.update(kept)
        atomic_write_json(best_json, best)
        search.emit(
            {"event": "retrain_end", "kept": True, "test_accuracy": best.get("test_accuracy"), "path": str(model_path)}
        )
        return best
    if not retrain:
        _remove_model(model_path)  # it belongs to another configuration
        atomic_write_json(best_json, {**best, "model": None})
        return best
    best.update(_retrain(search, best, model_path))
    atomic_write_json(best_json, best)
    search.emit(
        {
            "event": "retrain_end",
            "kept": False,
            "test_accuracy": best.get("test_accuracy"),
            "path": str(model_path),
            "error": best.get("error"),
        }
    )
    return best


def _best_trial(config: TuneConfig, trials: pd.DataFrame) -> dict | None:
    """The best trial as `best_hyperparameters.json` describes it, with the best trial of each cell;
    None when no trial completed."""
    top = ranked(trials).head(1).to_dict("records")
    if not top:
        return None
    row = top[0]
    names = [c for c in trials.columns if c in SEARCH_SPACE]
    return {
        "trial_id": str(row["trial_id"]),
        "objective": config.objective,
        "score": float(row["score"]),
        "best_epoch": None if pd.isna(row.get("best_epoch")) else float(row["best_epoch"]),
        "hyperparameters": {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in names},
        "per_cell": {
            r["cell"]: {"trial_id": str(r["trial_id"]), "score": float(r["score"]), **{n: r[n] for n in names}}
            for r in best_per_cell(trials).to_dict("records")
        },
    }


def _kept_model(best: dict, best_json: Path, model_path: Path) -> dict | None:
    """What the last run recorded of its retrained model, if that model is there and of the same
    best trial and hyperparameters; else None."""
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(best_json.read_text())
        if (
            previous.get("trial_id") == best["trial_id"]
            and previous.get("hyperparameters") == json.loads(json.dumps(best["hyperparameters"]))
            and previous.get("model")
            and model_path.exists()
        ):
            return {k: previous[k] for k in _RETRAINED_FIELDS if k in previous}
    return None


def _remove_model(model_path: Path) -> None:
    """Removes a saved best model and the record beside it, where they exist."""
    for stale in (model_path, record_path(model_path)):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _retrain(search: _Search, best: dict, model_path: Path) -> dict:
    """Trains the best trial's hyperparameters from scratch, as the search trained its trials, and
    saves the model at `model_path`.

    Returns:
        What `best_hyperparameters.json` gains: the model's file and test figures, or the error.
    """
    config, hyperparameters = search.config, best["hyperparameters"]
    shared = {name: getattr(config, name) for name in _SEARCH_SETTINGS}
    train_config = TrainConfig(**trial_settings(hyperparameters), **shared, epochs=config.max_epochs)
    search.emit(
        {
            "event": "retrain_start",
            "trial_id": best["trial_id"],
            "hyperparameters": hyperparameters,
            "epochs": config.max_epochs,
        }
    )
    with release_models():  # the model is saved and dropped: it leaves nothing in this process
        return _train_and_save(search, train_config, model_path)


def _train_and_save(search: _Search, train_config: TrainConfig, model_path: Path) -> dict:
    """`_retrain`'s training and saving, in a frame of its own so that the model is gone when it returns."""
    outcome = train_variant(search.dataset, train_config, measure=False, keep_model=True)
    if outcome.row["status"] != "ok":
        _remove_model(model_path)
        return {"model": None, "error": outcome.row["error"]}
    save_model(outcome.model, model_path)
    # The same record `train` writes beside its model: `evaluate` reads the data set from it.
    atomic_write_json(
        record_path(model_path),
        {"dataset": search.dataset.describe(), "config": train_config.to_dict(), "metrics": outcome.row},
    )
    return {
        "model": model_path.name,
        "test_accuracy": outcome.row["test_accuracy"],
        "test_loss": outcome.row["test_loss"],
        "retrained_epochs": outcome.row["epochs"],
    }
