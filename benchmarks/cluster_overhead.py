"""What a Dask cluster adds to a bench run: per variant, and for the run as a whole.

Trains the same equal variants (one cell, one seed each, `--threads 1`) on the embedded sample three ways:
on `local:2` (two worker processes started by `bench --cluster local:2`), on a scheduler and two workers
started with Dask's own `dask scheduler` / `dask worker` commands on loopback, and on a scheduler with one
such worker of one slot (`--resources threads=1`). Per variant it records, by the clocks of this machine:

- the first variant of each worker, submitted → started: scheduling, plus the worker's one-time import of
  the library when it first runs a task;
- every later variant, slot free → started: from the end of the worker's previous variant to the start of
  this one (the dispatch gap; the wait for a free worker is by design and not counted);
- trained → recorded: from the training process's end on the worker to the record written by the client.

and per run its wall time; the 2-worker run's time over the 1-worker run's is the speed-up's inverse.
The fresh training process itself (Python, TensorFlow, the data) is what `--isolate` costs on one
machine too, and is not counted as overhead.

    python benchmarks/cluster_overhead.py [--variants 8] [--out results/cluster]

Writes overhead.json and overhead.md in --out.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from script_support import provenance, provenance_lines, write

GOAL_OVERHEAD_S = 2.0  # per variant, each way
GOAL_RATIO = 0.6  # the 2-worker run's wall time over the 1-worker run's


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(cluster: str, variants: int, results: Path) -> dict:
    from recurrent_mnist.bench import BenchConfig, run_bench

    events = []
    config = BenchConfig.from_options(
        cells=("simple_rnn",), seeds=tuple(range(variants)), units=16, epochs=1, threads=1, dataset="mnist-sample"
    )
    started = time.perf_counter()
    result = run_bench(
        config, results_dir=results, run_name="run", fresh=True, measure=False, progress=events.append, cluster=cluster
    )
    wall = time.perf_counter() - started
    queued = {(e["cell"], e["seed"]): e["at"] for e in events if e["event"] == "variant_queued"}
    ended = [e for e in events if e["event"] == "variant_end"]
    failed = [f"{e['cell']} seed {e['seed']}: {e['row'].get('error')}" for e in ended if e["row"].get("status") != "ok"]
    if failed or result.failed or len(ended) != variants:
        raise SystemExit(f"variants failed on {cluster}: {'; '.join(failed)} (see {result.run_dir})")
    rows = [
        {
            "seed": event["seed"],
            "worker": event.get("worker"),
            "queued_at": queued[(event["cell"], event["seed"])],
            "started_at": event["started_at"],
            "trained_at": event["trained_at"],
            "to_start_s": event["started_at"] - queued[(event["cell"], event["seed"])],
            "to_record_s": event["recorded_at"] - event["trained_at"],
        }
        for event in ended
    ]
    _dispatch_gaps(rows)
    return {"cluster": cluster, "wall_s": wall, "variants": rows}


def _dispatch_gaps(rows: list[dict]) -> None:
    """Sets each variant's `gap_s`: None for a worker's first, else from its previous variant's end to its start.

    Meant for workers of one slot (one variant at a time), as every setup here has on two cores.
    """
    for worker in {row["worker"] for row in rows}:
        mine = sorted((row for row in rows if row["worker"] == worker), key=lambda row: row["started_at"])
        mine[0]["gap_s"] = None
        for previous, row in itertools.pairwise(mine):
            row["gap_s"] = row["started_at"] - previous["trained_at"]


def _summary(run: dict, label: str) -> dict:
    rows = run["variants"]
    gaps = [row["gap_s"] for row in rows if row["gap_s"] is not None]
    return {
        "setup": label,
        "wall_s": run["wall_s"],
        "first_to_start_s": max(row["to_start_s"] for row in rows if row["gap_s"] is None),
        "gap_s_median": statistics.median(gaps) if gaps else None,
        "gap_s_max": max(gaps) if gaps else None,
        "to_record_s_median": statistics.median(row["to_record_s"] for row in rows),
        "to_record_s_max": max(row["to_record_s"] for row in rows),
    }


def _dask_commands(variants: int, results: Path, workers: int) -> dict:
    """The same run on a scheduler and `workers` workers of one slot each, started with Dask's command-line
    tools, on loopback."""
    from recurrent_mnist.runs.process import stop

    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    port = address.rsplit(":", 1)[1]
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
    processes = [subprocess.Popen(scheduler, **quiet)]
    for _ in range(workers):
        worker = [dask, "worker", address, "--nthreads", "1", "--resources", "threads=1", "--no-dashboard"]
        processes.append(subprocess.Popen(worker, **quiet))
    try:
        import distributed

        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        return _run(address, variants, results)
    finally:
        for process in reversed(processes):
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=8, help="equal variants per run (default 8)")
    parser.add_argument("--out", type=Path, default=Path("results/cluster"), help="where the tables go")
    args = parser.parse_args()
    header, code = provenance("benchmarks/cluster_overhead.py", sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="recurrent-mnist-overhead-") as scratch:
        scratch = Path(scratch)
        two_local = _run("local:2", args.variants, scratch / "local2")
        two_commands = _dask_commands(args.variants, scratch / "commands", workers=2)
        one = _dask_commands(args.variants, scratch / "one", workers=1)
    setups = [
        _summary(two_local, "local:2"),
        _summary(two_commands, "dask scheduler + 2 dask workers"),
        _summary(one, "dask scheduler + 1 dask worker"),
    ]
    ratio = two_commands["wall_s"] / one["wall_s"]
    record = {
        **header,
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "variants_per_run": args.variants,
        "setups": setups,
        "runs": [two_local, two_commands, one],
        "two_workers_over_one": ratio,
        "goals": {"overhead_s": GOAL_OVERHEAD_S, "two_workers_over_one": GOAL_RATIO},
    }
    lines = [
        "# What a Dask cluster adds to a bench run",
        "",
        *provenance_lines(header),
        f"- {args.variants} equal variants a run (simple_rnn, 16 units, one epoch each on the embedded sample, "
        "--threads 1, no inference measurement), this machine's loopback only",
        "",
        "| setup | run wall time (s) | first variant per worker: submitted → started (s) | "
        "later variants: slot free → started, median / max (s) | trained → recorded, median / max (s) | "
        "overhead goal (< 2 s per variant) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in setups:
        gaps = "–" if row["gap_s_median"] is None else f"{row['gap_s_median']:.2f} / {row['gap_s_max']:.2f}"
        waits = (row["first_to_start_s"], row["gap_s_max"] or 0.0, row["to_record_s_max"])
        met = max(waits) < GOAL_OVERHEAD_S
        lines.append(
            f"| {row['setup']} | {row['wall_s']:.1f} | {row['first_to_start_s']:.2f} | {gaps} | "
            f"{row['to_record_s_median']:.2f} / {row['to_record_s_max']:.2f} | {'met' if met else 'missed'} |"
        )
    lines += [
        "",
        f"Two workers over one (two dask workers against one, one slot each, wall time): {ratio:.2f} "
        f"(goal at most {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'missed'}). The client, the scheduler "
        f"and the workers share this machine's {os.cpu_count()} cores.",
        "",
        "The overhead goal counts what Dask adds to every variant, the first of each worker included: from its "
        "submission (or its worker's slot freeing) to the start of its task, and from the end of its training "
        "to its record written. The training process's own start (Python, TensorFlow, the data) is what "
        "--isolate costs on one machine as well and is not counted. Both clocks are this machine's.",
        "",
    ]
    write(args.out, "overhead", record, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
