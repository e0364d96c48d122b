"""The recurrent-mnist command line: help, parsing, a tiny real run, and clear errors."""

from __future__ import annotations

import pandas as pd
import pytest
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

import recurrent_mnist.bench

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("bench", "report", "train", "evaluate", "datasets"):
        assert command in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.startswith("recurrent-mnist ")


def test_bench_help_documents_the_contract_options():
    result = invoke("bench", "--help")
    assert result.exit_code == 0
    for option in (
        "--cells",
        "--dataset",
        "--data-dir",
        "--epochs",
        "--batch-size",
        "--units",
        "--layers",
        "--bidirectional",
        "--dropout",
        "--learning-rate",
        "--seeds",
        "--results-dir",
        "--run-name",
        "--preset",
        "--fresh",
    ):
        assert option in result.output


@pytest.fixture
def captured_bench(monkeypatch, tmp_path):
    """Replaces the expensive run with one that records what it was given."""
    calls = []

    def fake_run_bench(config, **kwargs):
        calls.append((config, kwargs))
        empty = pd.DataFrame()
        return recurrent_mnist.bench.BenchResult(
            run_dir=tmp_path,
            runs=empty,
            summary=recurrent_mnist.reporting.summary_frame(empty),
            history=empty,
            files=[],
        )

    monkeypatch.setattr(recurrent_mnist.bench, "run_bench", fake_run_bench)
    return calls


@pytest.mark.parametrize(
    "cells",
    [
        ["--cells", "lstm", "gru"],
        ["--cells", "lstm", "--cells", "gru"],
        ["--cells", "lstm,gru"],
        ["--cells", "LSTM", "GRU"],
    ],
)
def test_cells_take_several_values_in_every_spelling(captured_bench, cells):
    result = invoke("bench", *cells, "--seeds", "0", "1", "2", "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    config, _ = captured_bench[0]
    assert config.cells == ("lstm", "gru")
    assert config.seeds == (0, 1, 2)


def test_bench_defaults(captured_bench):
    result = invoke("bench")
    assert result.exit_code == 0, result.output
    config, kwargs = captured_bench[0]
    assert config.cells == ("lstm", "gru", "simple_rnn")
    assert config.dataset == "mnist" and config.seeds == (0,)
    assert config.train.epochs == 10 and config.train.units == 128 and config.train.batch_size == 128
    # Not given: the library's defaults apply (results/, a derived run name, resuming).
    assert not {"results_dir", "run_name", "fresh"} & set(kwargs)
    assert kwargs["isolate"] is True
    assert config.train.steps_per_execution == 50 and config.train.jit_compile is None  # automatic


def test_bench_speed_options_reach_the_configuration(captured_bench):
    result = invoke("bench", "--steps-per-execution", "5", "--jit-compile", "--cells", "keras_lstm")
    assert result.exit_code == 0, result.output
    config, _ = captured_bench[0]
    assert config.train.steps_per_execution == 5 and config.train.jit_compile is True
    assert config.cells == ("keras_lstm",)
    assert config.variants()[0].jit_compile is True


def test_tutorial_preset_and_overrides(captured_bench):
    result = invoke("bench", "--preset", "tutorial", "--epochs", "3", "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    config, _ = captured_bench[0]
    train = config.train
    assert (config.cells, train.units, train.batch_size, train.learning_rate, train.epochs) == (
        ("lstm",),
        100,
        50,
        1e-4,
        3,
    )


def test_units_per_cell_match_params_and_from_tune_reach_the_configuration(captured_bench, tmp_path):
    result = invoke("bench", "--cells", "lstm", "gru", "--units", "64", "gru=80", "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    config, _ = captured_bench[-1]
    assert config.train.units == 64 and config.per_cell == {"gru": {"units": 80}}
    assert [v.units for v in config.variants()] == [64, 80]
    assert invoke("bench", "--cells", "lstm", "gru", "--match-params").exit_code == 0
    assert captured_bench[-1][0].match_params is True
    search = tmp_path / "search"
    search.mkdir()
    (search / "best_hyperparameters.json").write_text(
        '{"objective": "val_accuracy", "per_cell": {"gru": {"trial_id": "2", "units": 32, "layers": 2}}}'
    )
    (search / "search.json").write_text('{"config": {"cells": ["lstm", "gru", "simple_rnn"]}}')
    result = invoke("bench", "--from-tune", search, "--tensorboard-dir", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    # Which cells the search covered without a finished trial: said, not silently left out.
    said = " ".join(result.output.split())
    assert "the best trial of gru; the search also covered lstm, simple_rnn but finished no trial of them" in said
    config, kwargs = captured_bench[-1]
    assert (
        config.cells == ("gru",) and config.config_of("gru").layers == 2 and config.from_tune["trials"] == {"gru": "2"}
    )
    assert kwargs["tensorboard_dir"] == tmp_path / "tb"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--units", "gru=abc"], "--units"),
        (["--units", "=8"], "--units"),
        (["--cells", "lstm", "--units", "gru=8"], "--units names gru, which is not compared"),
        (["--cells", "lstm", "--match-params"], "--match-params needs two cells or more"),
        (["--from-tune", "absent-search"], "--from-tune absent-search is not a folder"),
        (["--units", "-3"], "--units"),
        (["--batch-size", "0"], "--batch-size"),
        (["--layers", "0"], "--layers"),
        (["--dropout", "1.0"], "--dropout"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--cells", "transformer"], "Unknown cell 'transformer'"),
        (["--dataset", "cifar"], "--dataset"),
        (["--seeds"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--preset", "huge"], "--preset"),
    ],
)
def test_bad_options_are_usage_errors_without_traceback(captured_bench, args, message):
    result = invoke("bench", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not captured_bench


def test_a_missing_data_folder_is_one_sentence_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    result = invoke("bench", "--dataset", "mnist", "--data-dir", tmp_path / "absent", "--results-dir", results)
    assert result.exit_code == 1
    assert "absent does not exist" in result.output
    assert "Traceback" not in result.output
    assert not results.exists()


@pytest.mark.slow
def test_tiny_bench_on_real_digits(tmp_path, tiny_data_dir):
    result = invoke(
        "bench",
        "--cells",
        "lstm",
        "gru",
        "--dataset",
        "mnist",
        "--data-dir",
        tiny_data_dir,
        "--epochs",
        "1",
        "--units",
        "8",
        "--in-process",
        "--no-measure-inference",
        "--results-dir",
        tmp_path,
        "--run-name",
        "tiny",
    )
    assert result.exit_code == 0, result.output
    runs = pd.read_csv(tmp_path / "tiny" / "runs.csv")
    assert sorted(runs["cell"]) == ["gru", "lstm"]
    assert (runs["status"] == "ok").all()
    assert "Summary" in result.output and "lstm" in result.output
    # A slice of MNIST is no published set: it trains, with a warning, and every row says so.
    assert "Warning: the mnist data in" in result.output and "is not MNIST as published" in result.output
    assert (runs["dataset_verified"] == False).all()  # noqa: E712 - a column of booleans read back from CSV


def test_files_of_the_other_data_set_are_refused_naming_it(tmp_path):
    # The embedded sample's files are real MNIST digits: passed as Fashion-MNIST, nothing is trained.
    from recurrent_mnist.datasets import sources

    results = tmp_path / "results"
    result = invoke("bench", "--dataset", "fashion-mnist", "--data-dir", sources._SAMPLE_DIR, "--results-dir", results)
    assert result.exit_code == 1, result.output
    assert "holds the embedded mnist-sample (MNIST digits), not fashion-mnist; use --dataset mnist-sample" in (
        " ".join(result.output.split())
    )
    assert "Traceback" not in result.output and not results.exists()


def test_datasets_lists_and_checks(tmp_path):
    listing = invoke("datasets")
    assert listing.exit_code == 0 and "fashion-mnist" in listing.output
    sample_line = next(line for line in listing.output.splitlines() if line.strip("│ ").startswith("mnist-sample"))
    assert "✓ verified in" in sample_line, listing.output
    check = invoke("datasets", "--check", "mnist-sample")
    assert check.exit_code == 0, check.output
    assert "sha256" in check.output and "4,000 train" in check.output
    assert "verified: its decoded arrays are the embedded mnist-sample" in check.output
    from idx_files import write_idx_set

    write_idx_set(tmp_path)
    own = invoke("datasets", "--check", "fashion-mnist", "--data-dir", tmp_path)
    assert own.exit_code == 0, own.output
    assert "is not Fashion-MNIST as published" in " ".join(own.output.split())


def test_evaluate_a_missing_model_file(tmp_path):
    result = invoke("evaluate", tmp_path / "missing.keras", "--dataset", "mnist-sample")
    assert result.exit_code == 1
    assert "missing.keras does not exist" in result.output
    assert "Traceback" not in result.output


def test_report_on_a_folder_without_a_run(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code == 1
    assert "holds no bench run" in result.output


@pytest.mark.parametrize(("given", "expected"), [(["--threads", "3"], 3), ([], None)])
def test_threads_reach_the_configuration(captured_bench, given, expected):
    from recurrent_mnist.settings import default_threads

    result = invoke("bench", *given, "--dataset", "mnist-sample")
    assert result.exit_code == 0, result.output
    config, _ = captured_bench[0]
    # Data of the configuration: in every variant, every row and the run's identity (not process state).
    assert config.train.threads == (expected or default_threads())
    assert all(v.threads == config.train.threads for v in config.variants())
    assert config.shared()["threads"] == config.train.threads


def test_threads_must_be_positive():
    result = invoke("bench", "--threads", "0")
    assert result.exit_code == 2 and "--threads" in result.output
