"""The tune library: the HyperModel's search space, and real searches on a slice of the embedded sample."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest

from recurrent_mnist import RowSequenceClassifier, register_cell
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.saving import load_model
from recurrent_mnist.tuning import (
    RowSequenceHyperModel,
    TuneConfig,
    keras_tuner_environment,
    parse_oracle_address,
    run_search,
)

# One epoch of a unidirectional single-layer cell of a few units: a trial takes seconds.
TINY = dict(
    dataset="mnist-sample", max_epochs=1, units=(4, 8), layers=(1, 1), bidirectional=False, batch_size=(128, 256)
)


@pytest.fixture(scope="module")
def small(tiny):
    return tiny


# --------------------------------------------------------------------------- the search space


def test_built_from_empty_hyperparameters_it_has_the_documented_defaults():
    hypermodel = RowSequenceHyperModel(cells=("lstm", "gru"), input_shape=(28, 28))
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    model = hypermodel.build(hp)
    assert isinstance(model, RowSequenceClassifier) and model.built
    assert (model.cell, model.units, model.num_layers, model.bidirectional, model.dropout) == ("lstm", 128, 1, False, 0)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert hp.values == {
        "batch_size": 128,
        "cell": "lstm",
        "bidirectional": False,
        "units": 128,
        "layers": 1,
        "dropout": 0.0,
        "learning_rate": pytest.approx(1e-3),
    }
    space = {p.name: p for p in hp.space}
    assert list(space["cell"].values) == ["lstm", "gru"]
    assert list(space["units"].values) == [16, 32, 64, 128, 256]
    assert list(space["batch_size"].values) == [32, 64, 128, 256]
    assert (space["layers"].min_value, space["layers"].max_value) == (1, 3)
    assert (space["dropout"].min_value, space["dropout"].max_value, space["dropout"].step) == (0.0, 0.5, 0.1)
    lr = space["learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-2, "log")
    assert isinstance(space["bidirectional"], keras_tuner.engine.hyperparameters.Boolean)


def test_fixed_values_override_the_search_space():
    hp = keras_tuner.HyperParameters()
    hp.Fixed("cell", "gru")
    hp.Fixed("units", 32)
    hp.Fixed("layers", 2)
    hp.Fixed("bidirectional", True)
    hp.Fixed("dropout", 0.25)
    hp.Fixed("learning_rate", 0.005)
    model = RowSequenceHyperModel(cells=("lstm", "gru")).build(hp)
    assert (model.cell, model.units, model.num_layers, model.bidirectional, model.dropout) == ("gru", 32, 2, True, 0.25)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def test_options_narrow_the_space_and_defaults_follow():
    hypermodel = RowSequenceHyperModel(
        cells=("simple_rnn",),
        units=(24, 100),
        layers=(2, 2),
        bidirectional=True,
        dropout=(0.2, 0.4),
        learning_rate=(0.01, 0.1),
        batch_size=(64, 64),
    )
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    model = hypermodel.build(hp)
    assert (model.cell, model.units, model.num_layers, model.bidirectional) == ("simple_rnn", 96, 2, True)
    assert model.dropout == pytest.approx(0.2)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    space = {p.name: type(p).__name__ for p in hp.space}
    assert space == {
        "batch_size": "Fixed",
        "cell": "Fixed",
        "bidirectional": "Fixed",
        "units": "Int",
        "layers": "Fixed",
        "dropout": "Float",
        "learning_rate": "Float",
    }
    assert list(next(p for p in hp.space if p.name == "units").values) == [24, 48, 96]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": (64, 16)}, "`units`: the minimum 64 is above the maximum 16"),
        ({"batch_size": (0, 16)}, "`batch_size` must be an integer >= 1. Received: batch_size=0"),
        ({"dropout": (0.0, 1.0)}, r"`dropout` must be a number in \[0, 1\)"),
        ({"learning_rate": (0.0, 0.1)}, "`learning_rate` must be a number > 0"),
        ({"layers": (1.5, 2)}, "`layers` must be an integer"),
        ({"cells": ()}, "`cells` is empty"),
        ({"cells": ("transformer",)}, "Unknown cell 'transformer'"),
        ({"objective": "accuracy"}, "`objective` must be one of val_accuracy, val_loss"),
        ({"early_stopping": 0}, "`early_stopping` must be an integer >= 1 or None"),
    ],
)
def test_invalid_structural_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RowSequenceHyperModel(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"tuner": "annealing"},
            "`tuner` must be one of random, bayesian, hyperband, grid. Received: tuner='annealing'",
        ),
        ({"max_trials": 0}, "`max_trials` must be an integer >= 1"),
        ({"time_budget": 0}, "`time_budget` must be a number > 0 or None"),
        ({"validation_split": 0.0}, "`validation_split` must be above 0 for a search"),
        ({"distributed": "worker", "oracle": "nohost"}, "`oracle` must be HOST:PORT"),
        ({"distributed": "chief", "oracle": "host:70000"}, "`oracle` must be HOST:PORT"),
        ({"distributed": "worker", "worker_id": "chief-2"}, "without 'chief'"),
        ({"oracle": "127.0.0.1:8000"}, "`oracle` is for a distributed search"),
        ({"distributed": "chief", "worker_id": "w1"}, "`worker_id` is for workers"),
        ({"units": (256, 16)}, "`units`: the minimum 256 is above the maximum 16"),
    ],
)
def test_invalid_search_configuration(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TuneConfig(**kwargs)


@pytest.mark.slow
def test_trials_train_through_the_bench_pipeline_with_multi_step_executions(monkeypatch, tiny):
    import tensorflow as tf

    hypermodel = RowSequenceHyperModel(cells=("gru",), units=(8, 8), batch_size=(64, 64), early_stopping=None)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert model.steps_per_execution == 50
    seen = {}
    real_fit = model.fit

    def spy(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(model, "fit", spy)
    x, y = tiny.x_train[:256], tiny.y_train[:256]
    metrics = hypermodel.fit(hp, model, x, y, validation_data=(x[:64], y[:64]), epochs=1)
    (train,) = seen["args"]
    assert isinstance(train, tf.data.Dataset) and "batch_size" not in seen["kwargs"]
    assert isinstance(seen["kwargs"]["validation_data"], tf.data.Dataset) and seen["kwargs"]["shuffle"] is False
    assert train.element_spec[0].dtype == tf.uint8  # the model scales the images itself
    assert np.isfinite(metrics["val_accuracy"]) and metrics["epochs"] == 1
    # Anything but arrays goes to Keras as given, with the searched batch size.
    monkeypatch.setattr(model, "fit", lambda *a, **k: seen.update(args=a, kwargs=k) or real_fit(*a, **k))
    hypermodel.fit(hp, model, x=x, y=y, validation_data=(x[:64], y[:64]), epochs=1)
    assert seen["kwargs"]["batch_size"] == 64 and seen["kwargs"]["x"] is x


def test_one_step_per_execution_under_a_distribution_strategy():
    assert TuneConfig(strategy="mirrored").hypermodel().steps_per_execution == 1
    assert TuneConfig().hypermodel().steps_per_execution == 50
    with pytest.raises(ConfigError, match="steps_per_execution"):
        RowSequenceHyperModel(steps_per_execution=0)


def test_the_training_settings_of_bench_reach_every_trial():
    hypermodel = TuneConfig(
        cells=("gru",), recurrent_dropout=0.25, steps_per_execution=7, jit_compile=False, units=(8, 8)
    ).hypermodel()
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.recurrent_dropout == 0.25 and model.steps_per_execution == 7 and model.jit_compile is False
    # jit_compile=None: bench's automatic rule, per trial (XLA for the lstm cell at small batches on one thread).
    automatic = RowSequenceHyperModel(cells=("lstm", "gru"), parallel_chains=1)
    assert automatic.uses_xla("lstm", 32) and not automatic.uses_xla("gru", 32)
    assert not automatic.uses_xla("lstm", 128)
    assert not RowSequenceHyperModel(cells=("lstm",), parallel_chains=2).uses_xla("lstm", 32)
    assert RowSequenceHyperModel(cells=("gru",), jit_compile=True).uses_xla("gru", 256)
    with pytest.raises(ConfigError, match="recurrent_dropout"):
        TuneConfig(recurrent_dropout=1.0)


def test_how_trials_execute_is_no_part_of_a_searchs_identity():
    base = TuneConfig().identity()
    # Searches run before these options existed keep their identity (and so their run name).
    assert "recurrent_dropout" not in base and "steps_per_execution" not in base and "jit_compile" not in base
    assert TuneConfig(steps_per_execution=5, jit_compile=True).identity() == base
    assert TuneConfig(recurrent_dropout=0.1).identity() == {**base, "recurrent_dropout": 0.1}
    # The readings too: rows alone (the default) is no part of it, and a permutation seed only where one is drawn.
    assert "readings" not in base and "permutation_seed" not in base and "clipnorm" not in base
    assert TuneConfig(permutation_seed=4).identity() == base
    permuted = TuneConfig(readings=("permuted-pixels", "pixels"), permutation_seed=4, clipnorm=1.0).identity()
    assert permuted == {**base, "readings": ["permuted-pixels", "pixels"], "permutation_seed": 4, "clipnorm": 1.0}


def test_the_reading_is_a_fixed_or_searched_hyperparameter():
    import keras_tuner

    from recurrent_mnist.tuning.hypermodel import trial_settings

    rows = keras_tuner.HyperParameters()
    assert RowSequenceHyperModel().build(rows).reading == "rows"
    assert "reading" not in rows.values  # as a search before the readings declared it
    fixed = keras_tuner.HyperParameters()
    model = RowSequenceHyperModel(readings=("permuted-pixels",), permutation_seed=5, clipnorm=0.5).build(fixed)
    assert fixed.values["reading"] == "permuted-pixels" and model.permutation_seed == 5
    assert model.optimizer.clipnorm == 0.5
    chosen = keras_tuner.HyperParameters()
    RowSequenceHyperModel(readings=("pixels", "rows")).build(chosen)
    choice = next(hp for hp in chosen.space if hp.name == "reading")
    assert chosen.values["reading"] == "pixels" and choice.values == ["pixels", "rows"]
    assert trial_settings(fixed.values)["reading"] == "permuted-pixels"
    assert "reading" not in trial_settings(rows.values)
    with pytest.raises(ConfigError, match="`readings` must be one of rows, pixels, permuted-pixels"):
        TuneConfig(readings=("columns",))
    with pytest.raises(ConfigError, match="`readings` is empty"):
        TuneConfig(readings=())


def test_oracle_addresses_and_keras_tuner_variables():
    assert parse_oracle_address("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_oracle_address("[::1]:9000") == ("::1", 9000)
    assert parse_oracle_address("chief.example.org:1") == ("chief.example.org", 1)
    assert keras_tuner_environment(TuneConfig()) == {}
    assert keras_tuner_environment(TuneConfig(distributed="chief")) == {
        "KERASTUNER_TUNER_ID": "chief",
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": "8000",
    }
    worker = TuneConfig(distributed="worker", worker_id="tuner0", oracle="10.1.2.3:9001")
    assert keras_tuner_environment(worker) == {
        "KERASTUNER_TUNER_ID": "tuner0",
        "KERASTUNER_ORACLE_IP": "10.1.2.3",
        "KERASTUNER_ORACLE_PORT": "9001",
    }


# --------------------------------------------------------------------------- real searches


@pytest.mark.slow
def test_a_real_search_writes_every_file(tmp_path, small):
    events = []
    config = TuneConfig(cells=("lstm", "gru"), max_trials=2, seed=3, steps_per_execution=5, **TINY)
    result = run_search(
        config,
        results_dir=tmp_path,
        run_name="run",
        dataset=small,
        progress=events.append,
        tensorboard_dir=tmp_path / "tb",
    )
    folder = tmp_path / "run"
    for name in ("trials.csv", "best_hyperparameters.json", "best_model.keras", "summary.md", "environment.json"):
        assert (folder / name).stat().st_size > 0, name

    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    hyperparameters = ["cell", "units", "layers", "bidirectional", "dropout", "learning_rate", "batch_size"]
    for column in ("trial_id", "status", "rank", *hyperparameters):
        assert column in trials, column
    for column in ("score", "val_accuracy", "best_epoch", "epochs", "duration_s", "error"):
        assert column in trials, column
    assert sorted(trials["rank"]) == [1, 2] and (trials["duration_s"] > 0).all()
    assert set(trials["units"]) <= {4, 8} and set(trials["batch_size"]) <= {128, 256}

    best = json.loads((folder / "best_hyperparameters.json").read_text())
    assert best["score"] == pytest.approx(trials["score"].max())
    assert best["trial_id"] == str(trials.loc[trials["rank"] == 1, "trial_id"].iloc[0])
    assert set(best["hyperparameters"]) == set(hyperparameters)
    assert 0 <= best["test_accuracy"] <= 1 and result.best["test_accuracy"] == best["test_accuracy"]
    model = load_model(folder / "best_model.keras")
    assert model.cell == best["hyperparameters"]["cell"] and model.units == best["hyperparameters"]["units"]
    assert model.predict(small.x_test[:3], verbose=0).shape == (3, 10)
    # Beside it, the record train writes beside its models: evaluate reads the data set there. The best
    # configuration is retrained as the trials trained (steps per execution, XLA, recurrent dropout).
    record = json.loads((folder / "best_model.metrics.json").read_text())
    assert record["dataset"]["name"] == "mnist-sample" and record["config"]["cell"] == model.cell
    assert (record["config"]["steps_per_execution"], record["config"]["jit_compile"]) == (5, None)
    assert record["config"]["recurrent_dropout"] == 0.0

    environment = json.loads((folder / "environment.json").read_text())
    assert environment["dataset"]["sha256"] == small.sha256 and environment["versions"]["keras-tuner"]
    assert "Best configuration" in (folder / "summary.md").read_text()

    names = [e["event"] for e in events]
    assert names.count("trial_start") == 2 and names.count("trial_end") == 2 and "epoch_end" in names
    ends = [e for e in events if e["event"] == "trial_end"]
    assert [(e["number"], e["total"], e["finished"]) for e in ends] == [(1, 2, 1), (2, 2, 2)]
    assert ends[-1]["best"]["score"] == pytest.approx(best["score"])
    assert names[-2:] == ["retrain_start", "retrain_end"]
    # keras-tuner's HParams view: one log folder per trial.
    assert {p.name for p in (tmp_path / "tb").iterdir()} == {str(t) for t in trials["trial_id"]}
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))


@pytest.mark.slow
def test_resuming_after_an_interruption_does_not_repeat_finished_trials(tmp_path, small):
    config = TuneConfig(cells=("simple_rnn",), max_trials=2, objective="val_loss", **TINY)
    started = []

    def interrupt_the_second_trial(event):
        if event["event"] == "trial_start":
            started.append(event["trial_id"])
        if event["event"] == "epoch_end" and len(started) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(config, results_dir=tmp_path, run_name="run", dataset=small, progress=interrupt_the_second_trial)
    before = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert list(before["status"]) == ["completed", "interrupted"]
    assert not (tmp_path / "run" / "best_model.keras").exists()

    events = []
    result = run_search(
        config, results_dir=tmp_path, run_name="run", dataset=small, progress=events.append, retrain_best=False
    )
    ran = [e["trial_id"] for e in events if e["event"] == "trial_start"]
    assert ran == [started[1]]  # only the interrupted trial runs again
    assert (result.kept, result.ran, result.completed) == (1, 1, 2)
    after = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert list(after["status"]) == ["completed", "completed"]
    first = before.iloc[0][["trial_id", "score", "duration_s", "started_at"]]
    assert after.iloc[0][["trial_id", "score", "duration_s", "started_at"]].equals(first)
    # val_loss is minimised: rank 1 has the lowest.
    assert after.sort_values("rank")["score"].is_monotonic_increasing
    assert np.allclose(after["score"], after["val_loss"])

    again = []
    run_search(config, results_dir=tmp_path, run_name="run", dataset=small, progress=again.append, retrain_best=False)
    assert not any(e["event"] == "trial_start" for e in again)


class _NaNRNN(keras.layers.SimpleRNN):
    """A cell whose output is NaN, so the loss is NaN from the first step: a diverging trial."""

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training) * float("nan")


def _nan_cell(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
    return _NaNRNN(units, return_sequences=return_sequences, name=name)


@pytest.mark.slow
def test_nan_trials_fail_with_their_reason_are_never_ranked_and_the_search_goes_on(tmp_path, small):
    register_cell("nan_for_tune", _nan_cell, overwrite=True)
    # A grid over cell x units: the NaN cell's three trials come first, then gru's. keras-tuner alone
    # stops a search after 3 failures in a row; a resumed grid search alone stops at once.
    space = dict(TINY, units=(4, 16), batch_size=(256, 256), dropout=(0.0, 0.0), learning_rate=(1e-2, 1e-2))
    config = TuneConfig(cells=("nan_for_tune", "gru"), tuner="grid", max_trials=3, **space)
    first = run_search(config, results_dir=tmp_path, run_name="run", dataset=small, retrain_best=False)
    assert first.best is None and first.failed == 3
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert set(trials["status"]) == {"failed"} and trials["rank"].isna().all()
    assert all("the loss became nan in epoch 1" in error for error in trials["error"])
    assert "3 failed" in (tmp_path / "run" / "summary.md").read_text()

    resumed = run_search(
        dataclasses.replace(config, max_trials=4),
        results_dir=tmp_path,
        run_name="run",
        dataset=small,
        retrain_best=False,
    )
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert resumed.ran == 1 and len(trials) == 4
    assert sorted(trials["units"][:3]) == [4, 8, 16] and trials.iloc[3]["cell"] == "gru"
    assert list(trials["status"]) == ["failed"] * 3 + ["completed"] and trials.iloc[3]["rank"] == 1
    assert resumed.best["hyperparameters"]["cell"] == "gru"
    assert "Failed trials (never ranked)" in (tmp_path / "run" / "summary.md").read_text()


@pytest.mark.slow
def test_hyperband_continues_earlier_trials_from_their_checkpoints(tmp_path, small):
    config = TuneConfig(cells=("simple_rnn",), tuner="hyperband", max_trials=4, **dict(TINY, max_epochs=3))
    result = run_search(config, results_dir=tmp_path, run_name="run", dataset=small, retrain_best=False)
    trials = result.trials
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    continued = trials[trials["tuner/trial_id"].notna()]
    assert len(continued) == 1  # the best of the first round goes on from its checkpoint, Adam's state included
    assert (continued["tuner/initial_epoch"].iloc[0], continued["epochs"].iloc[0]) == (1, 3)


@pytest.mark.slow
def test_the_bayesian_tuner_or_the_packages_it_needs(tmp_path, small):
    config = TuneConfig(cells=("simple_rnn", "gru"), tuner="bayesian", max_trials=2, **TINY)
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install 'keras-tuner\[bayesian\]'"):
            run_search(config, results_dir=tmp_path, run_name="run", dataset=small)
        assert not (tmp_path / "run").exists()
        return
    result = run_search(config, results_dir=tmp_path, run_name="run", dataset=small, retrain_best=False)
    assert list(result.trials["status"]) == ["completed", "completed"]


@pytest.mark.slow
def test_no_trial_starts_after_the_time_budget(tmp_path, small):
    config = TuneConfig(cells=("simple_rnn",), max_trials=5, time_budget=0.01, **TINY)  # 0.6 seconds

    def slow_first_trial(event):
        if event["event"] == "trial_start":
            time.sleep(0.7)

    result = run_search(
        config, results_dir=tmp_path, run_name="run", dataset=small, progress=slow_first_trial, retrain_best=False
    )
    assert len(result.trials) == 1 and result.completed == 1  # the running trial finished, no other started
    assert "time budget of 0.01 min was spent" in result.stop_reason
    assert "time budget" in (tmp_path / "run" / "summary.md").read_text()


def test_a_run_folder_resumes_only_the_same_search(tmp_path, small):
    def no_trials(config):  # a budget spent before the first trial: the folder, without training
        return dataclasses.replace(config, time_budget=0.001)

    def late(event):
        if event["event"] == "search_start":
            time.sleep(0.1)

    gru, lstm = (no_trials(TuneConfig(cells=(cell,), **TINY)) for cell in ("gru", "lstm"))
    assert run_search(gru, results_dir=tmp_path, run_name="run", dataset=small, progress=late).trials.empty
    with pytest.raises(ResultsError, match=r"another configuration \(cells: \['lstm'\] now, \['gru'\] there\)"):
        run_search(lstm, results_dir=tmp_path, run_name="run", dataset=small, progress=late)
    run_search(lstm, results_dir=tmp_path, run_name="run", dataset=small, progress=late, fresh=True)
    assert json.loads((tmp_path / "run" / "search.json").read_text())["config"]["cells"] == ["lstm"]


@pytest.mark.slow
def test_a_finished_search_reruns_under_other_code_and_trains_nothing(tmp_path, small, monkeypatch):
    from recurrent_mnist.environment import code_identity
    from recurrent_mnist.tuning import search

    config = TuneConfig(cells=("gru",), max_trials=1, seed=1, **TINY)
    run_search(config, results_dir=tmp_path, run_name="run", dataset=small)
    folder = tmp_path / "run"
    kept = {name: (folder / name).read_bytes() for name in ("trials.csv", "best_model.keras", "environment.json")}
    theirs = {**code_identity(), "source_sha256": "f" * 64, "git_commit": "b" * 40, "git_dirty": False}
    monkeypatch.setattr(search, "code_identity", lambda imports=(): theirs)
    # Nothing left to run: the tables are rebuilt, the model and the environment that made them kept.
    again = run_search(config, results_dir=tmp_path, run_name="run", dataset=small)
    assert (again.ran, again.kept) == (0, 1)
    assert {name: (folder / name).read_bytes() for name in kept} == kept
    # With the best model gone there is something to train again, and other code may not.
    (folder / "best_model.keras").unlink()
    with pytest.raises(ResultsError, match="trained by other code"):
        run_search(config, results_dir=tmp_path, run_name="run", dataset=small)


def test_a_chief_hands_a_dead_workers_trial_on_and_ends_when_no_live_worker_is_left(tmp_path):
    import fcntl

    from recurrent_mnist.tuning import distributed, oracles
    from recurrent_mnist.tuning.folder import _SearchFolder

    folder = _SearchFolder(tmp_path / "run")
    folder.prepare()
    oracle = oracles._RandomOracle(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=1, seed=0)
    oracle._init_bookkeeping()
    oracle._set_project_dir(str(folder.path), "search")
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 4, 8)
    oracle.update_space(hp)
    # w1 lives (it holds its lock); w0 dies (by kill -9, say) while it runs the only trial.
    with open(folder.workers / "w1.lock", "a") as w1_lock, open(folder.workers / "w0.lock", "a") as w0_lock:
        fcntl.flock(w1_lock, fcntl.LOCK_EX)
        fcntl.flock(w0_lock, fcntl.LOCK_EX)
        trial = oracle.create_trial("w0")
        assert distributed._workers_busy(oracle, folder)
        fcntl.flock(w0_lock, fcntl.LOCK_UN)
        distributed._requeue_dead_workers(oracle, folder)
        handed_on = oracle.create_trial("w1")
        assert handed_on.trial_id == trial.trial_id and distributed._workers_busy(oracle, folder)
        oracle.update_trial(handed_on.trial_id, {"val_accuracy": 0.5})
        handed_on.status = "COMPLETED"
        oracle.end_trial(handed_on)
        assert oracle.snapshot()["exhausted"] and distributed._workers_busy(oracle, folder)  # w1 is yet to be told
        assert oracle.create_trial("w1").status == "STOPPED"
        assert not distributed._workers_busy(oracle, folder)
    saved = json.loads((folder.project / "oracle.json").read_text())
    assert saved["ongoing_trials"] == {} and saved["end_order"] == [trial.trial_id]


def test_a_worker_asks_its_chief_nothing_once_the_search_is_over(tmp_path, monkeypatch):
    # The chief may stop serving as soon as it has told the last worker to stop: the worker's
    # table comes from the trials as the chief recorded them when each ended.
    from types import SimpleNamespace

    from recurrent_mnist.tuning import distributed
    from recurrent_mnist.tuning.folder import _SearchFolder

    folder = _SearchFolder(tmp_path / "run")
    folder.prepare()
    config = TuneConfig(cells=("lstm",), distributed="worker", oracle="127.0.0.1:1")
    folder.check_config(config.identity(), "digest")  # as the chief wrote it
    hp = keras_tuner.HyperParameters()
    hp.Fixed("cell", "lstm")
    ended = keras_tuner.engine.trial.Trial(hp, trial_id="00", status="COMPLETED")
    ended.score = 0.5

    class StoppedChief:
        def get_trial(self, trial_id):
            raise RuntimeError("UNAVAILABLE: the chief has stopped serving")

    class Worker:
        oracle, ran, ended = StoppedChief(), [], {}

        def search(self, *args, **kwargs):
            self.ran.append("00")
            self.ended["00"] = ended

    monkeypatch.setattr(distributed, "_make_tuner", lambda *args: Worker())
    monkeypatch.setattr(distributed, "_search_arguments", lambda *args: (([0],), {}))
    dataset = SimpleNamespace(sha256="digest", describe=lambda: "data")
    result = distributed._run_worker(config, dataset, folder, "w0", None, lambda event: None)
    assert result.ran == 1 and result.trials.to_dict("records")[0]["score"] == 0.5


# --------------------------------------------------------------------------- separate processes


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", COLUMNS="200")
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_chief_and_two_workers_complete_every_trial_and_exit_by_themselves(tmp_path, tiny_data_dir):
    port = _free_port()
    search = [
        *("tune", "--cells", "lstm", "gru", "--dataset", "mnist", "--data-dir", tiny_data_dir),
        *("--max-trials", "3", "--max-epochs", "1"),
        *("--units-min", "4", "--units-max", "8", "--layers-max", "1", "--unidirectional", "--batch-size-min", "256"),
        *("--results-dir", tmp_path, "--run-name", "dist", "--oracle", f"127.0.0.1:{port}"),
    ]

    def start(*role):
        return subprocess.Popen(
            [sys.executable, "-m", "recurrent_mnist_cli", *map(str, search), *role],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    processes = {
        "chief": start("--distributed", "chief"),
        "tuner0": start("--distributed", "worker", "--worker-id", "tuner0"),
        "tuner1": start("--distributed", "worker", "--worker-id", "tuner1"),
    }
    outputs = {}
    deadline = time.monotonic() + 420
    try:
        for name, process in processes.items():
            outputs[name] = process.communicate(timeout=max(1, deadline - time.monotonic()))[0]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for name, process in processes.items():
        assert process.returncode == 0, f"{name}:\n{outputs.get(name)}"
    trials = pd.read_csv(tmp_path / "dist" / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}, trials
    assert set(trials["worker"]) <= {"tuner0", "tuner1"}
    assert "Top trials" in outputs["chief"] and "Worker done" in outputs["tuner0"]
    # The chief's best model loads with safe_mode=True in this, another, process.
    best = json.loads((tmp_path / "dist" / "best_hyperparameters.json").read_text())
    model = load_model(tmp_path / "dist" / "best_model.keras")
    assert model.cell == best["hyperparameters"]["cell"]
    assert json.loads((tmp_path / "dist" / "chief.json").read_text())["state"] == "finished"
    # No finished trial is left marked as running, which a resumed chief would run again.
    assert json.loads((tmp_path / "dist" / "search" / "oracle.json").read_text())["ongoing_trials"] == {}


MIRRORED = """
    import dataclasses, json, sys
    from recurrent_mnist.distribute import split_cpu
    split_cpu(2)  # before TensorFlow starts: two logical CPU devices
    from recurrent_mnist import datasets, tuning
    from recurrent_mnist.tuning import oracles  # where the search's tuner takes its strategy from
    used = []
    get_strategy = oracles.get_strategy
    oracles.get_strategy = lambda name: used.append(get_strategy(name)) or used[-1]
    sample = datasets.load("mnist-sample")
    small = dataclasses.replace(sample, x_train=sample.x_train[:400, ::2, ::2], y_train=sample.y_train[:400],
                                x_test=sample.x_test[:100, ::2, ::2], y_test=sample.y_test[:100])
    config = tuning.TuneConfig(dataset="mnist-sample", cells=("gru",), max_trials=1, max_epochs=1, units=(4, 4),
                               layers=(1, 1), bidirectional=False, batch_size=(64, 64), strategy="mirrored")
    result = tuning.run_search(config, results_dir=sys.argv[1], run_name="m", dataset=small, retrain_best=False)
    print(json.dumps({"replicas": [s.num_replicas_in_sync for s in used], "status": list(result.trials["status"])}))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpu_devices(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MIRRORED), str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"replicas": [2], "status": ["completed"]}
