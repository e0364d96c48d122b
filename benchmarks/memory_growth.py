"""Memory across variants and trials in one process: what each in-process bench variant and each search trial adds.

Trains `--variants` bench variants in this one process (`--cells` times as many
seeds as it takes, the path of `recurrent-mnist bench --in-process`), then runs a
search of `--trials` trials in it (`--tune-cells`, units up to `--units`, one
layer, `--max-epochs`; keras-tuner trains every trial in the process that searches).
After each variant and each trial it records:

- `rss_mb`: the process's resident memory (`VmRSS`) when the variant or trial has ended;
- `process_peak_rss_mb`: the process's peak so far, as bench's column of that name measures it;
- `keras_models` and `graphs`: the Keras models and the TensorFlow graphs (`tf.function`
  traces) still alive then, after a garbage collection: what a finished variant leaves
  behind would show as a count that grows;
- `rss_collected_mb`: the resident memory after that collection (a trial's model is
  garbage that keras-tuner collects when it builds the next one, so `rss_mb` still counts it).

The table gives, for the variants and for the trials, the resident memory after the
first and after the last, and the growth per variant (trial): the least-squares slope of
`rss_mb`, and of `rss_collected_mb`, over the ones after the `--settle`-th (the first few
grow while TensorFlow fills its caches). The goal is a growth of what stays, after the
collection, under `GOAL_MB`: before it, a trial's memory still counts its own model,
which differs from trial to trial. The run folders go to a temporary folder,
removed at the end. Writes `<name>.json` (every figure), `<name>.csv` (one row per variant
or trial) and `<name>.md` (the table) under `--results-dir`.

    python benchmarks/memory_growth.py --threads 2 --name memory_growth
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import script_support

# The growth per variant (trial), in MB, under which memory counts as flat.
GOAL_MB = 5.0
PARTS = ("variants", "trials")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=30, help="bench variants trained in this process (0: none)")
    parser.add_argument("--trials", type=int, default=30, help="trials of the search in this process (0: none)")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "simple_rnn"], help="the bench variants' cells")
    parser.add_argument("--tune-cells", nargs="+", default=["lstm", "gru"], help="the cells the search chooses from")
    parser.add_argument("--units", type=int, default=32, help="the variants' units; the search's most")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each variant")
    parser.add_argument("--max-epochs", type=int, default=1, help="the most epochs of each trial")
    parser.add_argument("--train-images", type=int, default=None, help="train each variant on this many images")
    parser.add_argument(
        "--no-measure-inference", dest="measure", action="store_false", help="skip the variants' inference timing"
    )
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--settle", type=int, default=5, help="the growth is measured after this many")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="memory_growth")
    parser.add_argument("--results-dir", "--out", type=Path, default=Path("results/memory"))
    args = parser.parse_args(argv)
    if args.variants % len(args.cells):
        parser.error(f"--variants must be a multiple of the {len(args.cells)} cells of --cells")
    if args.variants < 0 or args.trials < 0 or args.settle < 0:
        parser.error("--variants, --trials and --settle must be 0 or more")
    return args


def rss_mb() -> float | None:
    """The process's resident memory now, in MB (`VmRSS`); None without `/proc`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def alive() -> dict:
    """The Keras models and TensorFlow graphs that a garbage collection leaves alive, and the resident memory then."""
    import keras
    import tensorflow as tf

    gc.collect()
    objects = gc.get_objects()
    counts = {
        "keras_models": sum(isinstance(o, keras.Model) for o in objects),
        "graphs": sum(isinstance(o, tf.Graph) for o in objects),
    }
    del objects
    return {**counts, "rss_collected_mb": rss_mb()}


class Recorder:
    """The progress receiver: one row per variant or trial that ends, with the memory figures then."""

    def __init__(self, part: str, end_event: str):
        self.part = part
        self.end_event = end_event
        self.rows: list[dict] = []
        self.started = time.perf_counter()

    def __call__(self, event: dict) -> None:
        if event.get("event") != self.end_event:
            return
        from recurrent_mnist.training.measure import process_peak_rss_mb

        rss = rss_mb()  # before the collection that counting needs, which would free garbage not yet collected
        row = event.get("row") or {}
        hyperparameters = event.get("hyperparameters") or {}
        self.rows.append(
            {
                "part": self.part,
                "index": len(self.rows) + 1,
                "cell": event.get("cell") or hyperparameters.get("cell"),
                "status": row.get("status") or event.get("status"),
                "rss_mb": rss,
                "process_peak_rss_mb": process_peak_rss_mb(),
                **alive(),
                "elapsed_s": time.perf_counter() - self.started,
            }
        )
        last = self.rows[-1]
        print(
            f"{self.part} {last['index']}: {last['cell']} {last['status']}, rss {last['rss_mb']:.0f} MB, "
            f"{last['keras_models']} models and {last['graphs']} graphs alive",
            flush=True,
        )


def run_variants(args: argparse.Namespace, dataset, where: Path) -> list[dict]:
    """`--variants` bench variants, all in this process; a row per variant."""
    from recurrent_mnist.bench import BenchConfig, run_bench
    from recurrent_mnist.training import TrainConfig

    seeds = tuple(range(args.variants // len(args.cells)))
    train = TrainConfig(units=args.units, epochs=args.epochs, train_images=args.train_images, threads=args.threads)
    config = BenchConfig(dataset=args.dataset, cells=tuple(args.cells), seeds=seeds, train=train)
    recorder = Recorder("variants", "variant_end")
    run_bench(
        config,
        dataset=dataset,
        results_dir=where,
        run_name="bench",
        isolate=False,
        measure=args.measure,
        progress=recorder,
        command=["benchmarks/memory_growth.py"],
    )
    return recorder.rows


def run_trials(args: argparse.Namespace, dataset, where: Path) -> list[dict]:
    """A search of `--trials` trials in this process; a row per trial. The best is not retrained."""
    from recurrent_mnist.settings import UNITS
    from recurrent_mnist.tuning import TuneConfig, run_search

    config = TuneConfig(
        dataset=args.dataset,
        cells=tuple(args.tune_cells),
        max_trials=args.trials,
        max_epochs=args.max_epochs,
        units=(min(UNITS.search[0], args.units), args.units),
        layers=(1, 1),
        threads=args.threads,
    )
    recorder = Recorder("trials", "trial_end")
    run_search(
        config,
        dataset=dataset,
        results_dir=where,
        run_name="tune",
        progress=recorder,
        command=["benchmarks/memory_growth.py"],
        retrain_best=False,
    )
    return recorder.rows


def slope(values: list[float]) -> float | None:
    """The least-squares slope of `values` over their index; None for fewer than two."""
    count = len(values)
    if count < 2:
        return None
    mean_x, mean_y = (count - 1) / 2.0, sum(values) / count
    spread = sum((x - mean_x) ** 2 for x in range(count))
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / spread


def summarise(part: str, rows: list[dict], settle: int) -> dict:
    """One line of the table: the memory after the first and the last, and the growth per variant (trial)."""
    rss = [row["rss_mb"] for row in rows if row["rss_mb"] is not None]
    growth = slope(rss[settle:]) if len(rss) == len(rows) else None
    collected = [row["rss_collected_mb"] for row in rows if row["rss_collected_mb"] is not None]
    growth_collected = slope(collected[settle:]) if len(collected) == len(rows) else None
    return {
        "part": part,
        "count": len(rows),
        "failed": sum(row["status"] not in ("ok", "completed") for row in rows),
        "rss_first_mb": rss[0] if rss else None,
        "rss_last_mb": rss[-1] if rss else None,
        "process_peak_rss_mb": max((row["process_peak_rss_mb"] for row in rows), default=None),
        "growth_per_item_mb": growth,
        "growth_per_item_collected_mb": growth_collected,
        "settle": settle,
        "keras_models_last": rows[-1]["keras_models"] if rows else None,
        "graphs_first": rows[0]["graphs"] if rows else None,
        "graphs_last": rows[-1]["graphs"] if rows else None,
        "goal_met": None if growth_collected is None else growth_collected < GOAL_MB,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from recurrent_mnist.environment import limit_threads

    limit_threads(args.threads)  # before TensorFlow runs anything, as bench and tune do
    from recurrent_mnist import reporting
    from recurrent_mnist.datasets import load

    dataset = load(args.dataset, args.data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memory-growth-") as where:
        if args.variants:
            rows += run_variants(args, dataset, Path(where))
        if args.trials:
            rows += run_trials(args, dataset, Path(where))
    summary = [summarise(part, [row for row in rows if row["part"] == part], args.settle) for part in PARTS]
    summary = [line for line in summary if line["count"]]
    arguments = argv if argv is not None else sys.argv[1:]
    made_by, code = script_support.provenance("benchmarks/memory_growth.py", arguments)
    header = {
        "name": args.name,
        **made_by,
        "dataset": dataset.describe(),
        "goal_mb": GOAL_MB,
        **{key: getattr(args, key) for key in ("threads", "units", "epochs", "max_epochs", "settle")},
        "cells": args.cells,
        "tune_cells": args.tune_cells,
    }
    table = markdown(summary, header)
    record = {**header, "code_identity": code, "summary": summary, "rows": rows}
    script_support.write(args.results_dir, args.name, record, table)
    reporting.write_csv(_frame(rows), args.results_dir / f"{args.name}.csv")
    print(table)
    return 0


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


def _mb(value: float | None, digits: int = 0) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(summary: list[dict], header: dict) -> str:
    lines = [
        f"# Memory across variants and trials in one process ({header['name']})",
        "",
        *script_support.provenance_lines(header),
        f"- {header['threads']} threads; bench variants: {', '.join(header['cells'])}, {header['units']} units, "
        f"{header['epochs']} epoch(s) each; search trials: {', '.join(header['tune_cells'])}, up to "
        f"{header['units']} units, one layer, up to {header['max_epochs']} epoch(s) each",
        f"- growth: the least-squares slope of the resident memory after each variant (trial), leaving out the "
        f"first {header['settle']}; after a collection: the same once Python's garbage is collected (a trial's "
        f"model is still garbage when it ends); goal: that under {header['goal_mb']:g} MB",
        "",
        "| part | count | failed | RSS after the first MB | RSS after the last MB | peak RSS MB | "
        "growth per variant (trial) MB | after a collection MB | graphs alive first / last | goal met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for line in summary:
        goal = {True: "yes", False: "no", None: ""}[line["goal_met"]]
        lines.append(
            f"| {line['part']} | {line['count']} | {line['failed']} | {_mb(line['rss_first_mb'])} | "
            f"{_mb(line['rss_last_mb'])} | {_mb(line['process_peak_rss_mb'])} | "
            f"{_mb(line['growth_per_item_mb'], 1)} | {_mb(line['growth_per_item_collected_mb'], 1)} | "
            f"{line['graphs_first']} / {line['graphs_last']} | {goal} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
