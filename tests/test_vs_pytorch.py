"""benchmarks/vs_pytorch.py (its package, benchmarks/peer_speed): the FLOP count, the products floor, failed
workers, the summary and its report, and one tiny side-by-side run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_pytorch.py"


@pytest.fixture(scope="module")
def speed():
    """The package behind the script, `benchmarks/peer_speed`, imported as the script imports it."""
    sys.path.insert(0, str(SCRIPT.parent))
    from peer_speed import cli, flops, launch, summary

    return SimpleNamespace(cli=cli, flops=flops, launch=launch, summary=summary)


def test_training_flops_per_step(speed):
    flops = speed.flops
    # LSTM 100/50: the recurrent products three times, the input products twice
    assert flops.train_flops_per_step("lstm", 100, 50) == 3 * 28 * 2 * 50 * 100 * 400 + 2 * 28 * 2 * 50 * 28 * 400
    assert flops.train_flops_per_epoch("lstm", 100, 50, 60_000) == 1200 * flops.train_flops_per_step("lstm", 100, 50)
    assert flops.train_flops_per_step("lstm", 128, 256) == pytest.approx(3.22e9, rel=0.01)
    assert flops.train_flops_per_epoch("gru", 128, 256, 60_000) == 235 * flops.train_flops_per_step("gru", 128, 256)
    assert flops.train_flops_per_step("simple_rnn", 16, 50) * 4 == flops.train_flops_per_step("lstm", 16, 50)


class CountingTorch:
    """Enough of torch for `step_products`: records the FLOPs of every `mm`."""

    def __init__(self):
        import torch

        self.torch, self.flops = torch, 0

    def __getattr__(self, name):
        return getattr(self.torch, name)

    def mm(self, a, b, out):
        self.flops += 2 * a.shape[0] * a.shape[1] * b.shape[1]
        assert out.shape == (a.shape[0], b.shape[1])


@pytest.mark.parametrize(("cell", "units", "batch"), [("lstm", 100, 50), ("gru", 128, 25), ("simple_rnn", 16, 8)])
def test_the_products_floor_does_the_counted_flops(speed, cell, units, batch):
    pytest.importorskip("torch")
    counting = CountingTorch()
    speed.flops.step_products(counting, cell, units, batch)()
    assert counting.flops == speed.flops.train_flops_per_step(cell, units, batch)


def test_the_products_floor_of_two_chains_on_two_threads_is_one_chains_step(speed):
    torch = pytest.importorskip("torch")
    floor = speed.flops.products_floor(torch, "simple_rnn", 16, 32, threads=2)
    assert floor["chains"] == [16, 16] and floor["step_s"] == floor["chain_step_s"]["16"] > 0
    alone = speed.flops.products_floor(torch, "simple_rnn", 16, 32, threads=1)
    assert alone["chains"] == [32] and alone["step_s"] == alone["chain_step_s"]["32"]
    assert speed.flops.epoch_floor_s(0.01, 1000, 32) == pytest.approx(1000 / 32 * 0.01)  # the partial batch by share


def test_a_failed_worker_is_recorded_with_its_stderr(speed):
    run_worker = speed.launch.run_worker
    crash = run_worker([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], 60)
    assert crash["status"] == "failed" and "exited with 3" in crash["error"] and "boom" in crash["stderr_tail"]
    ok = run_worker([sys.executable, "-c", 'print(\'noise\'); print(\'{"status": "ok", "x": 1}\')'], 60)
    assert ok["status"] == "ok" and ok["x"] == 1 and ok["worker_wall_s"] > 0
    slow = run_worker([sys.executable, "-c", "import time; time.sleep(30)"], 1)
    assert slow["status"] == "failed" and "timed out" in slow["error"]


def test_a_torch_worker_never_loads_tensorflow():
    # Without --data-file the worker fails at once, after its imports (torch or not, installed or not).
    command = [sys.executable, str(SCRIPT), "--worker", "torch", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    record = json.loads(done.stdout.splitlines()[-1])
    assert record["status"] == "failed" and "needs --data-file" in record["error"], done.stderr[-3000:]
    assert record["tensorflow_loaded"] is False


def test_summary_medians_ratios_and_failures(speed, tmp_path):
    args = speed.cli.parse_args(["--cells", "gru", "--shapes", "8x50", "--impls", "keras", "torch", "--rounds", "3"])
    args.results_dir = tmp_path
    results = speed.summary.Results(args, tmp_path, "test")
    results.peak_gflops = 100.0
    results.floors = {"gru:8x50": 0.5}

    def run(impl, round_index, seconds, status="ok"):
        return {
            "kind": "train",
            "impl": impl,
            "cell": "gru",
            "units": 8,
            "batch_size": 50,
            "round": round_index,
            "status": status,
            "error": "" if status == "ok" else "it broke",
            "epoch_time_s": seconds,
            "first_epoch_s": 5.0,
            "test_accuracy": 0.5,
            "train_samples": 1000,
            "foreign_cpu_share": 0.0,
        }

    for record in (
        run("keras", 1, 1.0),
        run("torch", 1, 2.0),
        run("keras", 2, 3.0),
        run("torch", 2, 2.0),
        run("keras", 3, 2.0),
        run("torch", 3, None, status="failed"),
    ):
        results.append(record)
    summary = results.summary().set_index("impl")
    assert summary.loc["keras", "epoch_time_s"] == 2.0 and summary.loc["keras", "epoch_time_min_s"] == 1.0
    assert summary.loc["torch", "runs"] == 2 and summary.loc["torch", "failed"] == 1
    assert summary.loc["torch", "error"] == "it broke"
    assert summary.loc["keras", "keras_over_torch"] == 1.0 and summary.loc["keras", "keras_le_torch_rounds"] == "1/2"
    assert summary.loc["keras", "train_samples_per_s"] == 500.0
    flops = speed.flops.train_flops_per_epoch("gru", 8, 50, 1000)
    assert summary.loc["keras", "peak_fraction"] == pytest.approx(flops / 2.0 / 100e9)
    assert summary.loc["keras", "products_floor_s"] == 0.5 and summary.loc["keras", "floor_over_torch"] == 0.25
    text = results.write()
    # keras / torch is 1.0: the goal of 0.75 is shown as missed, with the floor beside it
    assert "| gru | 8 | 50 | 1.000 | – | yes | 1/2 | **missed** | 0.50 | 0.250 |" in text
    assert (tmp_path / "vs_pytorch.csv").exists() and "2 (1 failed)" in text
    assert "## Failed runs" in text and "it broke" in text
    assert len((tmp_path / "vs_pytorch.jsonl").read_text().splitlines()) == 6


@pytest.mark.slow
def test_side_by_side_run_writes_every_file(tmp_path):
    pytest.importorskip("torch")
    results = tmp_path / "speed"
    command = [
        sys.executable,
        str(SCRIPT),
        "--dataset",
        "mnist-sample",
        "--n-train",
        "300",
        "--n-test",
        "100",
        "--epochs",
        "2",
        "--rounds",
        "1",
        "--cells",
        "simple_rnn",
        "--shapes",
        "16x50",
        "--impls",
        "keras",
        "torch",
        "keras-stock",
        "--results-dir",
        str(results),
        "--name",
        "smoke",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    for name in ("smoke.csv", "smoke.md", "smoke.jsonl", "smoke.environment.json"):
        assert (results / name).stat().st_size > 0, name

    table = pd.read_csv(results / "smoke.csv")
    assert sorted(table["impl"]) == ["keras", "keras-stock", "torch"]
    assert (table["cell"] == "simple_rnn").all()
    assert (table["units"] == 16).all() and (table["batch_size"] == 50).all()
    assert (table["runs"] == 1).all() and (table["failed"] == 0).all()
    assert (table["epoch_time_s"] > 0).all() and (table["first_epoch_s"] > 0).all()
    assert table["test_accuracy"].between(0, 1).all()
    assert (table["train_samples"] == 300).all()
    assert (table["peak_fraction"] > 0).all()
    assert (table["products_floor_s"] > 0).all()
    assert table["products_floor_s"].nunique() == 1  # one floor per shape
    keras_row = table[table["impl"] == "keras"].iloc[0]
    torch_row = table[table["impl"] == "torch"].iloc[0]
    assert keras_row["keras_over_torch"] == pytest.approx(keras_row["epoch_time_s"] / torch_row["epoch_time_s"])
    assert torch_row["vs_torch"] == pytest.approx(1.0)

    runs = [json.loads(line) for line in (results / "smoke.jsonl").read_text().splitlines()]
    trained = [r for r in runs if r["kind"] == "train"]
    assert sorted(r["impl"] for r in trained) == ["keras", "keras-stock", "torch"]
    layers = {r["impl"]: r["layer"] for r in trained}
    assert layers["keras"] == "recurrent_mnist.fast_rnn.FastSimpleRNN"
    assert layers["keras-stock"].endswith(".SimpleRNN") and layers["torch"] == "torch.nn.RNN"
    assert all(len(r["epoch_times"]) == 2 and r["status"] == "ok" for r in trained)
    assert len({r["data_digest"] for r in trained}) == 1  # both sides trained on the same arrays
    assert [r["kind"] for r in runs].count("peak") == 1
    peak = next(r for r in runs if r["kind"] == "peak")
    assert peak["tensorflow_loaded"] is False and peak["floors"]["simple_rnn:16x50"]["step_s"] > 0
    threads = {r["impl"]: r["thread_settings"] for r in trained if r["impl"] != "torch"}
    n = trained[0]["threads"]
    assert threads["keras"] == {"intra_op": 1, "inter_op": n}  # as bench sets it
    assert threads["keras-stock"] == {"intra_op": n, "inter_op": n}  # TensorFlow's default shape

    environment = json.loads((results / "smoke.environment.json").read_text())
    assert environment["benchmark"]["threads"] == environment["torch"]["num_threads"]
    # TensorFlow as bench sets it: one thread per op, `threads` ops (batch chains) side by side.
    assert environment["benchmark"]["tensorflow_threads"] == {
        "intra_op": 1,
        "inter_op": environment["benchmark"]["threads"],
    }
    assert environment["torch"]["num_interop_threads"] == 1
    assert environment["dataset"]["train_size"] == 300

    markdown = (results / "smoke.md").read_text()
    assert "keras / torch" in markdown and "| simple_rnn |" in markdown
    assert "keras / torch" in done.stdout  # the table goes to stdout, progress to stderr
    assert "round 1/1" in done.stderr
