"""`recurrent-mnist tune`: options, defaults, usage errors, interruptions and what the terminal shows."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from recurrent_mnist_cli._support import Terminated
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

import recurrent_mnist.tuning
from recurrent_mnist.tuning import RANGES, TuneResult

runner = CliRunner()
VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _trials() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "trial_id": "0",
                "status": "completed",
                "rank": 1,
                "cell": "gru",
                "units": 64,
                "layers": 1,
                "bidirectional": False,
                "dropout": 0.1,
                "learning_rate": 0.002,
                "batch_size": 128,
                "score": 0.91,
                "best_epoch": 2,
                "duration_s": 3.5,
                "error": "",
            },
            {
                "trial_id": "1",
                "status": "failed",
                "rank": None,
                "cell": "lstm",
                "units": 16,
                "layers": 2,
                "bidirectional": True,
                "dropout": 0.0,
                "learning_rate": 0.009,
                "batch_size": 32,
                "score": None,
                "best_epoch": None,
                "duration_s": 1.2,
                "error": "the loss became nan in epoch 1",
            },
        ]
    ).astype({"rank": "Int64"})


EVENTS = [
    {"event": "search_start", "run_dir": "RUN", "role": "local", "tuner": "random", "total": 2, "kept": 0,
     "deadline": None, "address": None,
     "dataset": {"name": "mnist-sample", "train_size": 4000, "test_size": 1000, "source": "embedded"}},
    {"event": "trial_start", "trial_id": "0", "number": 1, "total": 2, "epochs": 2, "status": "running",
     "hyperparameters": {"cell": "gru", "units": 64}},
    {"event": "batch", "trial_id": "0", "epoch": 1, "step": 3, "steps": 10},
    {"event": "epoch_end", "trial_id": "0", "epoch": 1, "logs": {"val_accuracy": 0.9}},
    {"event": "trial_end", "trial_id": "0", "number": 1, "total": 2, "status": "completed", "score": 0.91,
     "duration_s": 3.5, "best": {"trial_id": "0", "score": 0.91}, "hyperparameters": {}},
    {"event": "trial_start", "trial_id": "1", "number": 2, "total": 2, "epochs": 2, "status": "running",
     "hyperparameters": {"cell": "lstm", "units": 16}},
    {"event": "trial_end", "trial_id": "1", "number": 2, "total": 2, "status": "failed", "score": None,
     "error": "the loss became nan in epoch 1", "hyperparameters": {}},
    {"event": "search_end", "reason": "it reached 2 trials", "trials": 2},
    {"event": "retrain_start", "trial_id": "0", "hyperparameters": {}, "epochs": 2},
    {"event": "retrain_end", "kept": False, "test_accuracy": 0.9, "path": "RUN/best_model.keras"},
]  # fmt: skip


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Replaces the search with one that replays progress events and records what it was given."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    calls = []
    outcome = {"role": "local", "raise": None}

    def fake_run_search(config, **kwargs):
        # What keras-tuner will see while this search runs (the library sets it for the search only).
        role = {name: os.environ.get(name) for name in VARIABLES} | recurrent_mnist.tuning.keras_tuner_environment(
            config
        )
        calls.append((config, kwargs, role))
        if outcome["raise"] is not None:
            raise outcome["raise"]
        for event in EVENTS:
            kwargs["progress"](event)
        trials = _trials()
        best = {"trial_id": "0", "score": 0.91, "hyperparameters": {"cell": "gru", "units": 64}, "test_accuracy": 0.9,
                "model": "best_model.keras"}  # fmt: skip
        files = [tmp_path / "trials.csv", tmp_path / "best_model.keras"]
        return TuneResult(tmp_path, trials, trials.head(1), best, files, outcome["role"], 2, 0, "it reached 2 trials")

    monkeypatch.setattr(recurrent_mnist.tuning, "run_search", fake_run_search)
    yield calls, outcome
    for name in VARIABLES:
        os.environ.pop(name, None)


def test_help_documents_the_options():
    assert "tune" in invoke("--help").output
    result = invoke("tune", "--help")
    assert result.exit_code == 0
    for option in (
        "--cells", "--dataset", "--data-dir", "--tuner", "--max-trials", "--max-epochs", "--executions-per-trial",
        "--seed", "--objective", "--time-budget", "--results-dir", "--run-name", "--fresh", "--tensorboard-dir",
        "--distributed", "--oracle", "--worker-id", "--strategy", "--units-min", "--learning-rate-max",
        "--batch-size-min", "--bidirectional", "--threads",
    ):  # fmt: skip
        assert option in result.output, option
    assert "no TLS or authentication" in result.output


def test_defaults(captured):
    calls, _ = captured
    result = invoke("tune")
    assert result.exit_code == 0, result.output
    config, kwargs, variables = calls[0]
    assert config.cells == ("lstm", "gru", "simple_rnn") and config.dataset == "mnist"
    assert (config.tuner, config.max_trials, config.max_epochs, config.executions_per_trial) == ("random", 10, 10, 1)
    assert (config.objective, config.seed, config.time_budget, config.early_stopping) == ("val_accuracy", 0, None, 3)
    assert (config.units, config.layers, config.dropout) == (RANGES["units"], RANGES["layers"], RANGES["dropout"])
    assert (config.learning_rate, config.batch_size) == (RANGES["learning_rate"], RANGES["batch_size"])
    assert config.bidirectional is None and config.strategy == "default" and config.distributed is None
    # The training settings bench and train have, with their defaults.
    assert (config.recurrent_dropout, config.steps_per_execution, config.jit_compile) == (0.0, 50, None)
    # Not given: the library's defaults apply (results/, a derived run name, resuming).
    assert not {"results_dir", "run_name", "fresh"} & set(kwargs)
    assert kwargs["tensorboard_dir"] is None
    assert variables == dict.fromkeys(VARIABLES)  # one process: keras-tuner must not see a distributed role


@pytest.mark.parametrize(("given", "expected"), [(["--threads", "3"], 3), ([], None)])
def test_threads_reach_the_search_configuration(captured, given, expected):
    from recurrent_mnist.settings import default_threads

    calls, _ = captured
    result = invoke("tune", *given)
    assert result.exit_code == 0, result.output
    # As for bench: a setting of the configuration, applied by the library to the trials' process.
    assert calls[0][0].threads == (expected or default_threads())
    assert all(name not in os.environ for name in VARIABLES)  # nothing left behind for the rest of the process


def test_options_narrow_the_search(captured):
    calls, _ = captured
    result = invoke(
        "tune", "--cells", "lstm", "gru", "--tuner", "grid", "--units-min", "32", "--units-max", "64",
        "--unidirectional", "--learning-rate-max", "0.005", "--time-budget", "1.5", "--batch-size-max", "16",
        "--objective", "val_loss", "--strategy", "mirrored", "--dataset", "mnist-sample",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = calls[0][0]
    assert config.cells == ("lstm", "gru") and config.tuner == "grid" and config.objective == "val_loss"
    assert config.units == (32, 64) and config.bidirectional is False and config.time_budget == 1.5
    assert config.learning_rate == (1e-4, 0.005) and config.batch_size == (16, 16)  # a lone max below the minimum
    assert config.strategy == "mirrored"


def test_the_training_options_of_bench_reach_the_search(captured):
    calls, _ = captured
    result = invoke(
        "tune", "--recurrent-dropout", "0.2", "--steps-per-execution", "5", "--no-jit-compile",
        "--early-stopping", "2", "--seed", "4", "--dataset", "mnist-sample",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = calls[0][0]
    assert (config.recurrent_dropout, config.steps_per_execution, config.jit_compile) == (0.2, 5, False)
    assert (config.early_stopping, config.seed) == (2, 4)
    assert invoke("tune", "--recurrent-dropout", "1").exit_code == 2


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (["--distributed", "chief", "--oracle", "127.0.0.1:9123"], ("chief", "127.0.0.1", "9123")),
        (
            ["--distributed", "worker", "--worker-id", "tuner0", "--oracle", "10.0.0.5:9000"],
            ("tuner0", "10.0.0.5", "9000"),
        ),
        (["--distributed", "chief"], ("chief", "127.0.0.1", "8000")),
    ],
)
def test_distributed_roles_set_keras_tuner_variables(captured, role, expected):
    calls, outcome = captured
    outcome["role"] = "worker" if "worker" in role else "local"
    result = invoke("tune", "--dataset", "mnist-sample", *role)
    assert result.exit_code == 0, result.output
    assert tuple(calls[0][2].values()) == expected


def test_a_worker_may_not_discard_the_search(tmp_path):
    # Checked by the library's run_search before anything is loaded: only the chief may discard a search.
    result = invoke("tune", "--distributed", "worker", "--fresh", "--results-dir", tmp_path)
    assert result.exit_code == 2, result.output
    assert "--fresh" in result.output and "chief" in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--units-min", "64", "--units-max", "16"], "--units-min 64 is above --units-max 16"),
        (["--learning-rate-min", "0.1", "--learning-rate-max", "0.01"], "--learning-rate-min"),
        (["--units-min", "0"], "--units-min"),
        (["--dropout-max", "1.0"], "--dropout-max"),
        (["--learning-rate-min", "0"], "--learning-rate-min"),
        (["--validation-split", "0"], "--validation-split"),
        (["--tuner", "annealing"], "--tuner"),
        (["--max-trials", "0"], "--max-trials"),
        (["--max-epochs", "0"], "--max-epochs"),
        (["--time-budget", "0"], "--time-budget"),
        (["--objective", "accuracy"], "--objective"),
        (["--cells", "transformer"], "Unknown cell 'transformer'"),
        (["--distributed", "boss"], "--distributed"),
        (["--distributed", "chief", "--oracle", "nohost"], "--oracle"),
        (["--distributed", "worker", "--oracle", "host:99999"], "--oracle"),
        (["--distributed", "worker", "--worker-id", "chief2"], "--worker-id"),
        (["--distributed", "chief", "--worker-id", "tuner0"], "--worker-id"),
        (["--oracle", "127.0.0.1:8000"], "--oracle"),
        (["--import", "no_such_module_here"], "--import"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(captured, args, message):
    calls, _ = captured
    result = invoke("tune", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not calls


def test_a_library_error_is_one_sentence_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    result = invoke("tune", "--dataset", "mnist", "--data-dir", tmp_path / "absent", "--results-dir", results)
    assert result.exit_code == 1
    assert "absent does not exist" in result.output and "Traceback" not in result.output
    assert not results.exists()


def test_a_results_folder_that_cannot_be_created_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("tune", "--dataset", "mnist-sample", "--results-dir", blocker / "results")
    assert result.exit_code == 1
    assert "cannot be created or written: a file stands where a folder is needed" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("interruption", "code"), [(KeyboardInterrupt(), 130), (Terminated(), 143)])
def test_an_interruption_says_what_is_kept_and_how_to_resume(captured, interruption, code):
    _, outcome = captured
    outcome["raise"] = interruption
    result = invoke("tune", "--dataset", "mnist-sample")
    assert result.exit_code == code
    assert "finished trial(s) are kept" in result.output and "run the same command again" in result.output


def test_progress_and_the_top_trials(captured):
    result = invoke("tune", "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "up to 2 trial(s), 0 finished earlier" in output
    assert "trial 0 (1 of 2): gru, 64 units" in output and "✓ trial 0: score 0.9100 (3.5 s)" in output
    assert "✗ trial 1 failed: the loss became nan in epoch 1" in output
    assert "Search over: it reached 2 trials." in output and "Top trials" in output
    assert "1 trial(s) failed" in output
    assert "retrained: test accuracy 0.9000" in output and "Wrote trials.csv, best_model.keras" in output


def test_a_worker_leaves_the_tables_to_its_chief(captured):
    _, outcome = captured
    outcome["role"] = "worker"
    result = invoke("tune", "--dataset", "mnist-sample", "--distributed", "worker", "--worker-id", "w1")
    assert result.exit_code == 0, result.output
    assert "Worker done: it ran 2 trial(s)" in result.output and "Top trials" not in result.output
