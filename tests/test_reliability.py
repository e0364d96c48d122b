"""Reliability: interruptions, kill -9, failed variants, concurrent processes, reproducibility.

These run the real command as a user would: in child processes where a test interrupts,
kills or crashes it or runs two at once, in the test's own process otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pandas as pd
import pytest
from clirun import alive, children, invoke, read_line_containing, start, wait_for


@pytest.fixture
def tiny_bench(tiny_data_dir) -> list:
    """Options of a bench whose variants take a second or two: 14 x 14 digits, one epoch, eight units."""
    return [
        *("--dataset", "mnist", "--data-dir", tiny_data_dir, "--epochs", "1", "--units", "8"),
        *("--batch-size", "256", "--no-measure-inference"),
    ]


pytestmark = pytest.mark.slow


def _variant_files(folder):
    return sorted((folder / "variants").glob("*.json")) if (folder / "variants").is_dir() else []


def _all_tables_parse(folder):
    for name in ("runs.csv", "summary.csv", "history.csv"):
        if (folder / name).exists():
            pd.read_csv(folder / name)
    for path in [*folder.glob("*.json"), *_variant_files(folder)]:
        json.loads(path.read_text())


def test_kill_9_keeps_finished_variants_leaves_no_orphan_and_resumes(tmp_path, tiny_bench):
    args = ["bench", "--cells", "simple_rnn", "gru", *tiny_bench, "--results-dir", tmp_path, "--run-name", "k"]
    folder = tmp_path / "k"
    with start(*args, cwd=tmp_path) as process:
        wait_for(lambda: len(_variant_files(folder)) >= 1, process=process)
        wait_for(lambda: children(process.pid), timeout=60, process=process)  # the next variant's worker
        workers = children(process.pid)
        process.kill()
        process.wait()
    wait_for(lambda: not any(alive(w) for w in workers), timeout=30)  # workers die with the parent
    finished = {p.name: p.read_bytes() for p in _variant_files(folder)}
    assert finished
    _all_tables_parse(folder)

    rerun = invoke(*args, cwd=tmp_path)  # in this process: the variants still train in processes of their own
    assert rerun.returncode == 0, rerun.stderr
    for name, content in finished.items():
        assert (folder / "variants" / name).read_bytes() == content  # kept exactly as written
    runs = pd.read_csv(folder / "runs.csv")
    assert sorted(runs["cell"]) == ["gru", "simple_rnn"]  # no duplicates, none missing
    assert "already finished" in rerun.stdout


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupting_bench_stops_quickly_and_says_how_to_resume(tmp_path, sig, code, tiny_bench):
    with start(
        "bench",
        "--cells",
        "lstm",
        "gru",
        *tiny_bench,
        "--epochs",
        "1000",  # far longer than the test: it must be the signal that ends it
        "--in-process",
        "--results-dir",
        tmp_path,
        "--run-name",
        "i",
        cwd=tmp_path,
    ) as process:
        read_line_containing(process, "epoch 2/1000")  # inside the first variant's training
        sent = time.monotonic()
        process.send_signal(sig)
        process.wait(timeout=60)
        stderr = process.stderr.read()
    assert process.returncode == code
    assert time.monotonic() - sent < 20
    assert "Interrupted" in stderr and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    _all_tables_parse(tmp_path / "i")


def test_interrupted_train_resumes_from_its_last_epoch(tmp_path, tiny_data_dir):
    output = tmp_path / "model.keras"
    # Enough epochs that the signal, handled when a 50-step execution returns, arrives mid-training.
    args = ["train", "--cell", "gru", "--dataset", "mnist", "--data-dir", tiny_data_dir, "--units", "8"]
    args += ["--epochs", "80", "--batch-size", "64", "--train-images", "256", "--output", output]
    backup = tmp_path / "model.keras.backup"
    with start(*args, cwd=tmp_path) as process:
        read_line_containing(process, "epoch 1/80")
        wait_for(lambda: (backup / "state.json").exists(), process=process)  # the checkpoint of epoch 1
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        stderr = process.stderr.read()
    assert process.returncode == 130
    assert "resume" in stderr
    assert not output.exists()
    state = json.loads((backup / "state.json").read_text())
    assert state["epoch"] >= 1 and state["history"][0]["epoch"] == 1

    rerun = invoke(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "epoch 1/80" not in rerun.stdout  # resumed: the first epoch was not trained again
    history = pd.read_csv(tmp_path / "model.history.csv")
    assert history["epoch"].tolist()[-1] == 80 and history["epoch"].is_unique
    assert output.exists() and not (tmp_path / "model.keras.backup").exists()


def test_a_nan_variant_fails_and_the_run_goes_on(tmp_path, tiny_bench):
    result = invoke(
        "bench",
        "--import",
        "rm_test_cells",
        "--cells",
        "nan_cell",
        "gru",
        *tiny_bench,
        "--in-process",
        "--results-dir",
        tmp_path,
        "--run-name",
        "n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(tmp_path / "n" / "runs.csv").set_index("cell")
    assert runs.loc["nan_cell", "status"] == "failed"
    assert "loss became nan" in runs.loc["nan_cell", "error"]
    assert runs.loc["gru", "status"] == "ok"
    assert "1 variant(s) failed" in (tmp_path / "n" / "summary.md").read_text()
    assert "1 variant(s) failed" in result.stderr


def test_a_crashed_or_broken_variant_fails_alone(tmp_path, tiny_bench):
    result = invoke(  # the command in this process; each variant in a process of its own, as by default
        "bench",
        "--import",
        "rm_test_cells",
        "--cells",
        "crash_cell",
        "error_cell",
        "simple_rnn",
        *tiny_bench,
        "--results-dir",
        tmp_path,
        "--run-name",
        "c",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = pd.read_csv(tmp_path / "c" / "runs.csv").set_index("cell")
    assert "killed by SIGKILL (out of memory?)" in runs.loc["crash_cell", "error"]
    assert "RuntimeError: this layer is broken on purpose" in runs.loc["error_cell", "error"]
    assert runs.loc["simple_rnn", "status"] == "ok"
    summary = pd.read_csv(tmp_path / "c" / "summary.csv").set_index("cell")
    assert summary.loc["crash_cell", "failed"] == 1 and summary.loc["simple_rnn", "seeds"] == 1


def test_two_processes_fill_one_run_without_losing_rows(tmp_path, tiny_bench):
    common = [*tiny_bench, "--in-process", "--results-dir", tmp_path, "--run-name", "shared"]
    with (
        start("bench", "--cells", "lstm", "--seeds", "0", "1", *common, cwd=tmp_path) as first,
        start("bench", "--cells", "gru", "--seeds", "0", "1", *common, cwd=tmp_path) as second,
    ):
        outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0, outputs[0][1]
    assert second.returncode == 0, outputs[1][1]
    runs = pd.read_csv(tmp_path / "shared" / "runs.csv")
    assert sorted(zip(runs["cell"], runs["seed"], strict=True)) == [("gru", 0), ("gru", 1), ("lstm", 0), ("lstm", 1)]


def test_the_same_command_gives_the_same_accuracies(tmp_path, tiny_bench):
    outputs = []
    for name in ("a", "b"):
        result = invoke(
            "bench",
            "--cells",
            "gru",
            "--seeds",
            "5",
            *tiny_bench,
            "--in-process",
            "--results-dir",
            tmp_path,
            "--run-name",
            name,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(pd.read_csv(tmp_path / name / "runs.csv").iloc[0])
    assert outputs[0]["test_accuracy"] == outputs[1]["test_accuracy"]
    assert outputs[0]["test_loss"] == outputs[1]["test_loss"]
    environment = json.loads((tmp_path / "a" / "environment.json").read_text())
    assert environment["environments"][0]["variants"] == ["gru-seed5"] and environment["config"]["epochs"] == 1


def test_no_space_left_is_one_sentence_and_no_half_written_table(tmp_path, monkeypatch, tiny_bench):
    from recurrent_mnist_cli.app import app
    from typer.testing import CliRunner

    from recurrent_mnist.runs import atomic

    real_replace = os.replace

    def full_disk(src, dst):
        if str(dst).endswith("runs.csv"):
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--cells",
            "simple_rnn",
            *tiny_bench,
            "--in-process",
            "--results-dir",
            str(tmp_path),
            "--run-name",
            "full",
        ],
    )
    assert result.exit_code == 1
    assert "runs.csv cannot be written or read: no space left on the device" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "full" / "runs.csv").exists()
    assert not list((tmp_path / "full").glob(".runs.csv.*"))  # the temporary file is gone too
