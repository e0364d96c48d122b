"""keras-tuner 1.4's oracles and tuners with its gaps filled, and `_make_tuner`, which builds a search's pair.

The oracles write every state file atomically, keep a time budget, record when and on which worker
each trial ran, tell a listener of every trial that starts or ends, and resume a grid search where
it stopped. The tuners seed every trial, report progress events, and wait instead of spinning while
the oracle has no trial to hand out.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import numbers
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable

import keras
import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from recurrent_mnist.datasets import Dataset
from recurrent_mnist.distribute import get_strategy
from recurrent_mnist.runs.atomic import atomic_write_text
from recurrent_mnist.training import split_validation
from recurrent_mnist.tuning.config import TuneConfig
from recurrent_mnist.tuning.folder import PROJECT, _SearchFolder
from recurrent_mnist.tuning.hypermodel import DEFAULTS, OBJECTIVES
from recurrent_mnist.tuning.tables import _failure_reason, _status

Progress = Callable[[dict], None]
# keras-tuner stops a search after 3 failed trials in a row; here failed trials are recorded and the search goes on.
NO_FAILURE_LIMIT = sys.maxsize


def _write_state(path: str | os.PathLike, state: dict) -> None:
    # keras-tuner writes its state files in place; a kill -9 mid-write would leave one unreadable.
    atomic_write_text(path, json.dumps(state))


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
        # A worker's trials as the chief recorded them when each ended: once the chief says the
        # search is over it may stop serving at any moment, so nothing is asked of it afterwards.
        self.ended: dict[str, Trial] = {}
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

    def _steps(self, trial) -> int:
        batch_size = trial.hyperparameters.values.get("batch_size") or DEFAULTS["batch_size"]
        return math.ceil(self.train_size / batch_size)

    def on_epoch_begin(self, trial, model, epoch, logs=None):
        self._epoch = epoch + 1
        self.emit(
            {
                "event": "epoch_begin",
                "trial_id": trial.trial_id,
                "epoch": self._epoch,
                "steps": self._steps(trial),
                "steps_per_call": int(getattr(model, "steps_per_execution", 1) or 1),
            }
        )

    def on_batch_end(self, trial, model, batch, logs=None):
        now = time.monotonic()
        steps = self._steps(trial)
        step = min(batch + 1, steps)  # Keras names the last step of a call, which may lie past the epoch's end
        if now - self._last_batch_event >= 0.25 or step == steps:  # at most 4 a second, and the epoch's last
            self._last_batch_event = now
            self.emit(
                {
                    "event": "batch",
                    "trial_id": trial.trial_id,
                    "epoch": self._epoch,
                    "step": step,
                    "steps": steps,
                }
            )

    def on_epoch_end(self, trial, model, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, numbers.Real)}
        self.emit({"event": "epoch_end", "trial_id": trial.trial_id, "epoch": epoch + 1, "logs": logs})

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.ran.append(trial.trial_id)
        if self._is_worker():
            ended = self.ended[trial.trial_id] = self.oracle.get_trial(trial.trial_id)
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
