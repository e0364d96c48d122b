"""The orchestrator: plan the runs, prepare the data, measure the peak and floors, run the rounds, record them.

Rounds are interleaved: in each round, for each (cell, shape), every
implementation runs once in a fresh worker process, its order rotated by one
each round, so that the machine's drift hits every implementation alike. The
tables are rewritten after every run, so an interrupted comparison keeps what
it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from peer_speed import report
from peer_speed.flops import epoch_floor_s
from peer_speed.impls import LEARNING_RATE, TORCH_MISSING, keras_cells
from peer_speed.launch import run_worker, worker_command
from peer_speed.quiet import quiet_import
from peer_speed.summary import Results


class Abort(Exception):
    """A failure that ends the comparison before its rounds: the message, the failed record, the exit code."""

    def __init__(self, message: str, record: dict | None = None, code: int = 1):
        super().__init__(message)
        self.record, self.code = record, code


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one invocation will run, decided before anything is measured."""

    run_id: str
    command: list[str]
    check_cells: list[str]  # the registered Keras cells the implementations need
    floors: list[str]  # the peak worker's `--floors`, CELL:UNITSxBATCH


def orchestrate(args: argparse.Namespace) -> int:
    """Runs the whole comparison; 0 when every run succeeded, 1 when some failed, 2 when it could not start."""
    try:
        return compare(args)
    except Abort as abort:
        progress(f"error: {abort}")
        if abort.record and abort.record.get("stderr_tail"):
            progress(abort.record["stderr_tail"])
        return abort.code


def compare(args: argparse.Namespace) -> int:
    """Plans the runs, prepares the data, measures the peak and floors, runs the rounds and records them."""
    if not torch_installed():
        raise Abort(TORCH_MISSING, code=2)
    plan = make_plan(args)
    results = Results(args, args.results_dir, plan.run_id)
    with tempfile.TemporaryDirectory(prefix="vs_pytorch-") as tmp:
        data_file = Path(tmp) / "data.npz"
        prepared = prepare(args, plan, data_file)
        results.dataset = prepared["dataset"]
        peak = measure_peak(args, plan, results)
        environment = record_environment(args, plan, prepared, peak, results)
        results.header = report.header_lines(
            args, environment, prepared["data_digest"], results.peak_gflops, plan.run_id, plan.command
        )
        failed = run_rounds(args, results, data_file, prepared["data_digest"])
    environment["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    environment["benchmark"]["failed_runs"] = failed
    write_environment(args, environment)
    print(results.write(), end="")
    folder = args.results_dir
    progress(f"wrote {results.jsonl}, {folder / (args.name + '.csv')}, {folder / (args.name + '.md')}")
    return 1 if failed else 0


# --------------------------------------------------------------------------- plan


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's identity, the Keras cells to check and the products floors to measure."""
    return Plan(
        run_id=time.strftime("%Y%m%dT%H%M%S"),
        command=["python", *sys.argv],
        check_cells=sorted({name for names in keras_cells(args.impls, args.cells).values() for name in names.values()}),
        floors=[f"{cell}:{units}x{batch}" for cell in args.cells for units, batch in args.shapes],
    )


def schedule(args: argparse.Namespace) -> Iterator[tuple[int, str, int, int, str]]:
    """(round index, cell, units, batch, impl) of every run, in order: the implementations rotated each round."""
    for round_index in range(args.rounds):
        for cell in args.cells:
            for units, batch in args.shapes:
                for impl in rotated(args.impls, round_index):
                    yield round_index, cell, units, batch, impl


def rotated(items: list[str], by: int) -> list[str]:
    items = list(items)
    by %= len(items)
    return items[by:] + items[:by]


# --------------------------------------------------------------------------- run


def prepare(args: argparse.Namespace, plan: Plan, data_file: Path) -> dict:
    """Loads the data once (saved to `data_file` for the torch workers) and checks the Keras cells exist."""
    progress(f"preparing: {args.dataset}, checking cells {', '.join(plan.check_cells) or '(none)'}")
    prepared = run_worker(
        worker_command(args, "prepare", data_file=data_file, check_cells=plan.check_cells), args.timeout
    )
    if prepared.get("status") != "ok":
        raise Abort(f"preparing the data failed: {prepared.get('error')}", prepared)
    if prepared["cell_errors"]:
        raise Abort(
            "the Keras cells this comparison needs are not registered in recurrent_mnist ("
            + "; ".join(prepared["cell_errors"])
            + "); keras-stock needs keras_lstm, keras_gru and keras_simple_rnn: update recurrent_mnist "
            "or leave keras-stock out of --impls",
            code=2,
        )
    return prepared


def measure_peak(args: argparse.Namespace, plan: Plan, results: Results) -> dict:
    """The peak worker's record; sets `results.peak_gflops` and each shape's epoch floor when it succeeded."""
    progress(f"measuring the fp32 matmul peak at {args.threads} threads")
    peak = run_worker(worker_command(args, "peak", floors=plan.floors), args.timeout)
    results.append({"kind": "peak", **peak})
    if peak.get("status") != "ok":
        progress(f"the peak measurement failed ({peak.get('error')}); peak_fraction stays empty")
        return peak
    results.peak_gflops = peak["peak_gflops"]
    train_size = results.dataset["train_size"]
    for cell in args.cells:
        for units, batch in args.shapes:
            key = f"{cell}:{units}x{batch}"
            results.floors[key] = epoch_floor_s(peak["floors"][key]["step_s"], train_size, batch)
    progress(
        f"peak: {results.peak_gflops:.1f} GFLOP/s; products floor per epoch: "
        + ", ".join(f"{key} {value:.2f} s" for key, value in results.floors.items())
    )
    return peak


def run_rounds(args: argparse.Namespace, results: Results, data_file: Path, digest: str) -> int:
    """Runs every training run of the schedule, rewriting the tables after each; returns how many failed."""
    failed = 0
    for round_index, cell, units, batch, impl in schedule(args):
        extra = {"cell": cell, "units": units, "batch": batch}
        if impl == "torch":
            extra["data_file"] = data_file
        record = run_worker(worker_command(args, impl, **extra), args.timeout)
        record = {"kind": "train", "impl": impl, "cell": cell, "units": units, "batch_size": batch, **record}
        record["round"] = round_index + 1
        if record.get("status") == "ok" and record.get("data_digest") != digest:
            record.update(status="failed", error="the run saw other data than the prepared set")
        results.append(record)
        failed += record["status"] != "ok"
        show_run(args, record)
        results.write()
    return failed


def show_run(args: argparse.Namespace, record: dict) -> None:
    """One progress line for a finished run: its epoch times, or why it failed."""
    label = (
        f"round {record['round']}/{args.rounds} {record['cell']:<10} "
        f"{record['units']}x{record['batch_size']:<5} {record['impl']:<11}"
    )
    if record["status"] == "ok":
        progress(
            f"{label} steady {record['epoch_time_s']:.3f} s  first {record['first_epoch_s']:.2f} s"
            f"  acc {record['test_accuracy']:.4f}  epochs " + " ".join(f"{t:.3f}" for t in record["epoch_times"])
        )
        return
    progress(f"{label} FAILED: {record.get('error')}")
    if record.get("stderr_tail"):
        progress("  " + record["stderr_tail"][-800:].replace("\n", "\n  "))


# --------------------------------------------------------------------------- record


def record_environment(args: argparse.Namespace, plan: Plan, prepared: dict, peak: dict, results: Results) -> dict:
    """`<name>.environment.json`: the machine, the code, the data, torch and the benchmark's settings; written now."""
    environment = {
        **prepared["environment"],
        "command": plan.command,
        "dataset": results.dataset,
        "torch": peak.get("torch"),
        "benchmark": benchmark_settings(args, plan, prepared, peak, results.peak_gflops),
    }
    write_environment(args, environment)
    return environment


def benchmark_settings(
    args: argparse.Namespace, plan: Plan, prepared: dict, peak: dict, peak_gflops: float | None
) -> dict:
    """The comparison's own settings, as the environment file records them."""
    return {
        "name": args.name,
        "run_id": plan.run_id,
        "cells": args.cells,
        "shapes": [f"{u}x{b}" for u, b in args.shapes],
        "impls": args.impls,
        "keras_cells": keras_cells(args.impls, args.cells),
        "epochs": args.epochs,
        "rounds": args.rounds,
        "threads": args.threads,
        "tensorflow_threads": prepared["tensorflow_threads"],
        "torch_threads": {"num_threads": args.threads, "num_interop_threads": 1},
        "seed": args.seed,
        "n_train": prepared["dataset"]["train_size"],
        "n_test": prepared["dataset"]["test_size"],
        "data_digest": prepared["data_digest"],
        "learning_rate": LEARNING_RATE,
        "peak_gflops": peak_gflops,
        "peak": {k: peak.get(k) for k in ("gflops_by_size", "method", "status", "error")},
    }


def write_environment(args: argparse.Namespace, environment: dict) -> None:
    atomic_write_json = quiet_import("recurrent_mnist.runs.atomic").atomic_write_json
    atomic_write_json(args.results_dir / f"{args.name}.environment.json", environment)


# --------------------------------------------------------------------------- helpers


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it here (the orchestrator measures nothing)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
