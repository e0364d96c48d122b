"""Starting one worker process and reading its record: the orchestrator's side of a run.

Every run is a fresh process of `benchmarks/vs_pytorch.py --worker ...`, so the
two frameworks never share a process. The worker prints one JSON line last; a
crash, a timeout or unreadable output becomes a failed record here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "vs_pytorch.py"
STDERR_TAIL = 3000


def worker_command(args: argparse.Namespace, worker: str, **extra: Any) -> list[str]:
    """The command line of one worker: the run's shared options, then `extra` as `--key value...`."""
    command = [sys.executable, str(SCRIPT), "--worker", worker, "--threads", str(args.threads)]
    command += ["--epochs", str(args.epochs), "--seed", str(args.seed), "--dataset", args.dataset]
    for flag, value in (("--data-dir", args.data_dir), ("--n-train", args.n_train), ("--n-test", args.n_test)):
        if value is not None:
            command += [flag, str(value)]
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    return command


def cpu_seconds() -> tuple[float | None, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its finished children)."""
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        user, nice, system, _idle, _iowait, irq, softirq = fields
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"), mine
    except (OSError, ValueError):
        return None, mine


def run_worker(command: list[str], timeout: float | None) -> dict:
    """Runs one worker process and returns its record, failed if the process failed.

    The record also says how much CPU time other processes took while it ran
    (`foreign_cpu_s`, and `foreign_cpu_share` of all CPUs): a disturbed run shows.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    busy_before, mine_before = cpu_seconds()
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return {"status": "failed", "error": f"timed out after {timeout:g} s", "stderr_tail": stderr[-STDERR_TAIL:]}
    wall = time.perf_counter() - started
    busy_after, mine_after = cpu_seconds()
    record = read_record(proc)
    foreign = None
    if busy_before is not None and busy_after is not None:
        foreign = max(0.0, (busy_after - busy_before) - (mine_after - mine_before))
    record["worker_wall_s"] = wall
    record["worker_cpu_s"] = mine_after - mine_before
    record["foreign_cpu_s"] = foreign
    record["foreign_cpu_share"] = None if foreign is None else foreign / (wall * (os.cpu_count() or 1))
    return record


def read_record(proc: subprocess.CompletedProcess) -> dict:
    """The worker's last stdout line as its record; failed, with its stderr's tail, unless it says ok and exited 0."""
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        record = json.loads(lines[-1])
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (IndexError, ValueError):
        record = {"status": "failed", "error": f"the worker exited with {proc.returncode} and no result"}
    if record.get("status") != "ok" or proc.returncode != 0:
        record["status"] = "failed"
        record.setdefault("error", f"the worker exited with {proc.returncode}")
        record["stderr_tail"] = proc.stderr[-STDERR_TAIL:]
    return record
