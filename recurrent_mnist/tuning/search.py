"""Running a search: `run_search`, the driver of a one-process search or a chief, and the best model.

`run_search` checks the configuration and the run folder, then hands a worker to `distributed`, or
runs the oracle here: keras-tuner's own search loop in one process, the gRPC service on a chief. It
writes the trials table after every trial, and at the end retrains the best configuration from
scratch, saves it and scores it once on the test split (`_best_model`).
"""

from __future__ import annotations

import contextlib
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

            def about_to_train() -> None:
                # Trials or a retrained model from other code would mix versions in one search; a
                # search with nothing left to run is only rebuilt, whatever code reads it.
                folder.check_code(code)
                atomic_write_json(
                    folder.path / "environment.json",
                    environment_info(command, dataset=dataset.describe(), config=config.to_dict(), role=role),
                )

            return _run_oracle(config, dataset, folder, role, tensorboard_dir, emit, retrain_best, about_to_train)


def _search_done(oracle, folder: _SearchFolder) -> bool:
    """Whether a run would train nothing: every trial of the budget ended, and the best one is retrained."""
    if not oracle.max_trials or len(oracle.end_order) < oracle.max_trials:
        return False
    with contextlib.suppress(OSError, ValueError):
        best = json.loads((folder.path / "best_hyperparameters.json").read_text())
        return bool(best.get("model")) and (folder.path / best["model"]).exists()
    return False


def _run_oracle(
    config, dataset, folder, role: str, tensorboard_dir, emit: Progress, retrain: bool, about_to_train
) -> TuneResult:
    args, kwargs = _search_arguments(config, dataset, tensorboard_dir)
    tuner = _make_tuner(config, dataset, folder, len(args[0]), emit)
    oracle = tuner.oracle
    kept = len(oracle.end_order)
    if not _search_done(oracle, folder):
        about_to_train()
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
    host, port = settings.parse_oracle_address(config.oracle) if role == "chief" else (None, None)
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
    atomic_write_text(folder.path / "summary.md", summary_markdown(result, config))
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
            atomic_write_json(best_json, best)
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
        for stale in (model_path, record_path(model_path)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()  # it belongs to another configuration
        atomic_write_json(best_json, {**best, "model": None})
        return best
    # The best trial's hyperparameters, trained as the search trained its trials.
    shared = {
        name: getattr(config, name)
        for name in (
            "validation_split",
            "early_stopping",
            "seed",
            "recurrent_dropout",
            "steps_per_execution",
            "jit_compile",
            "strategy",
            "threads",
        )
    }
    train_config = TrainConfig(**trial_settings(hyperparameters), **shared, epochs=config.max_epochs)
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
        for stale in (model_path, record_path(model_path)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    else:
        save_model(outcome.model, model_path)
        # The same record `train` writes beside its model: `evaluate` reads the data set from it.
        atomic_write_json(
            record_path(model_path),
            {"dataset": dataset.describe(), "config": train_config.to_dict(), "metrics": outcome.row},
        )
        best.update(
            model=model_path.name,
            test_accuracy=outcome.row["test_accuracy"],
            test_loss=outcome.row["test_loss"],
            retrained_epochs=outcome.row["epochs"],
        )
    atomic_write_json(best_json, best)
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
