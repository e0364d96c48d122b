"""The pixel tasks from the command line: readings, IndRNN, a parameter budget and clipping, and their bad values."""

import pandas as pd
import pytest
from clirun import invoke


@pytest.mark.slow
def test_bench_sizes_four_cells_to_one_budget_and_records_the_reading_in_every_row(tmp_path, tiny_data_dir):
    result = invoke(
        *("bench", "--cells", "lstm", "gru", "simple_rnn", "indrnn", "--reading", "permuted-pixels"),
        *("--params", "70000", "--layers", "1", "indrnn=3", "--clipnorm", "1"),
        *("--dataset", "mnist", "--data-dir", tiny_data_dir),
        *("--epochs", "1", "--train-images", "100", "--in-process", "--no-measure-inference"),
        *("--results-dir", tmp_path, "--run-name", "long"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = pd.read_csv(tmp_path / "long" / "runs.csv")
    assert sorted(runs["cell"]) == ["gru", "indrnn", "lstm", "simple_rnn"]
    assert (runs["status"] == "ok").all()
    assert (runs["reading"] == "permuted-pixels").all() and (runs["clipnorm"] == 1.0).all()
    assert (runs["train_images"] == 100).all()
    assert ((runs["params"] - 70000).abs() <= 0.05 * 70000).all(), runs[["cell", "units", "params"]]
    assert runs["units"].nunique() == 4  # each cell sized on its own
    assert runs.set_index("cell")["layers"].to_dict() == {"lstm": 1, "gru": 1, "simple_rnn": 1, "indrnn": 3}
    summary = (tmp_path / "long" / "summary.md").read_text()
    assert "reading=permuted-pixels" in summary and "params=70000" in summary
    # The task's published figures beside the run's own.
    published = summary.split("## Published figures for mnist read as permuted-pixels")[1]
    assert (
        "| LSTM | lstm " in published
        and " %" in published.split("| LSTM | lstm ")[1][:8]
        and "| 85.7 % | about 70 K parameters | Bai, Kolter and Koltun" in published
    )
    assert "| coRNN | – | 97.34 %" in published


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--reading", "columns"), "--reading"),
        (("--permutation-seed", "x"), "--permutation-seed"),
        (("--clipnorm", "0"), "--clipnorm"),
        (("--params", "0"), "--params"),
        (("--layers", "indrnn=0"), "--layers"),
        (("--layers", "=2"), "--layers"),
    ],
)
def test_bad_long_task_options_are_usage_errors_naming_the_option(tmp_path, args, words):
    result = invoke("bench", "--dataset", "mnist-sample", *args, "--results-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stdout + result.stderr
    assert not any(tmp_path.iterdir())


def test_a_training_subset_larger_than_the_training_images_stops_before_training(tmp_path):
    result = invoke(
        *("bench", "--dataset", "mnist-sample", "--train-images", "3601", "--results-dir", tmp_path),
        *("--run-name", "subset"),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--train-images 3601 is more than the 3,600 training images" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / "subset" / "runs.csv").exists()


def test_a_budget_too_small_for_a_cell_stops_before_training(tmp_path):
    result = invoke(
        *("bench", "--dataset", "mnist-sample", "--cells", "lstm", "simple_rnn", "--params", "40"),
        *("--results-dir", tmp_path, "--run-name", "small"),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--params is too small for lstm" in result.stderr and "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "small" / "runs.csv").exists()


@pytest.mark.slow
def test_tune_searches_over_readings_and_records_them(tmp_path):
    result = invoke(
        *("tune", "--dataset", "mnist-sample", "--cells", "indrnn", "--reading", "pixels", "permuted-pixels"),
        *("--permutation-seed", "3", "--clipnorm", "1", "--units-min", "8", "--units-max", "8", "--layers-max", "1"),
        *("--batch-size-min", "256", "--max-trials", "2", "--max-epochs", "1", "--tuner", "grid"),
        *("--results-dir", tmp_path, "--run-name", "search"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = pd.read_csv(tmp_path / "search" / "trials.csv")
    assert set(trials["reading"]) <= {"pixels", "permuted-pixels"} and trials["status"].eq("completed").all()
    summary = (tmp_path / "search" / "summary.md").read_text()
    assert "reading pixels or permuted-pixels, permutation seed 3, gradients clipped to norm 1" in summary
    assert "reading" in result.stdout


def test_tune_names_a_bad_reading(tmp_path):
    result = invoke(
        "tune", "--dataset", "mnist-sample", "--reading", "rows", "columns", "--results-dir", tmp_path, cwd=tmp_path
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--reading" in result.stderr and "columns" in result.stderr and "Traceback" not in result.stderr
