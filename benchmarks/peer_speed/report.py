"""The Markdown report of `benchmarks/vs_pytorch.py`: the header, the runs table, the ratios, the failures, the legend.

Every section is made from the summary frame (`summary.Results.summary`), so
the Markdown, the CSV and the JSONL say the same thing.
"""

from __future__ import annotations

import argparse
import math
import shlex
from typing import Any

from peer_speed.quiet import quiet_import

# recurrent-mnist's training goal: at most this share of PyTorch's steady-state epoch time.
TRAIN_GOAL = 0.75
OTHER_LOAD_WARNING = 0.05  # share of all CPUs used by other processes during a run

RUNS_COLUMNS = [
    # (header, summary column, digits, scale); digits None: shown as it is
    ("cell", "cell", None, 1),
    ("units", "units", None, 1),
    ("batch", "batch_size", None, 1),
    ("impl", "impl", None, 1),
    ("epoch s (median)", "epoch_time_s", 3, 1),
    ("min", "epoch_time_min_s", 3, 1),
    ("first epoch s", "first_epoch_s", 2, 1),
    ("train samples/s", "train_samples_per_s", 0, 1),
    ("test acc.", "test_accuracy", 4, 1),
    ("infer samples/s", "infer_samples_per_s", 0, 1),
    ("latency p50 ms", "latency_ms_p50", 2, 1),
    ("p95 ms", "latency_ms_p95", 2, 1),
    ("peak %", "peak_fraction", 1, 100),
    ("vs torch", "vs_torch", 2, 1),
    ("other load %", "other_load_max", 0, 100),
]
RATIO_HEADERS = [
    "cell",
    "units",
    "batch",
    "keras / torch",
    "keras / keras-stock",
    "keras ≤ torch",
    "rounds keras ≤ torch",
    f"keras / torch ≤ {TRAIN_GOAL}",
    "products floor s",
    "floor / torch",
]
LEGEND = (
    "Epoch s: median over the rounds of each run's steady-state epoch time (the median of its epochs "
    "after the first); min: the fastest run's. First epoch: tracing and compilation included. "
    "Peak %: training matmul FLOPs per epoch / epoch time / the fp32 matmul peak. "
    "Vs torch: this row's epoch time / torch's. Other load: the largest share of all CPUs "
    "that other processes used during one of the row's runs. Rounds keras ≤ torch: rounds in which keras's run "
    "was at most torch's run of the same round. "
    f"Keras / torch ≤ {TRAIN_GOAL}: recurrent-mnist's training goal against PyTorch. "
    "Products floor: the epoch's matrix products alone, in the forms and batch chains of the fast layers "
    "at these threads, timed with torch on one thread per chain; a lower bound for the fast layers' epoch, "
    "without their element-wise work, optimizer and input. "
    f"Floor / torch: that bound as a share of torch's epoch time; the goal leaves {TRAIN_GOAL} minus it "
    "for everything else.\n"
)


def header_lines(
    args: argparse.Namespace,
    environment: dict,
    digest: str,
    peak_gflops: float | None,
    run_id: str,
    command: list[str],
) -> list[str]:
    """The report's title and what produced it: data, threads, rounds, peak, commit, CPU and command."""
    dataset = environment["dataset"]
    subset = f" (first {args.n_train or 'all'} / {args.n_test or 'all'})" if args.n_train or args.n_test else ""
    peak_text = "failed" if peak_gflops is None else f"{peak_gflops:,.1f} GFLOP/s"
    threads = args.threads
    return [
        "# recurrent-mnist vs PyTorch: steady-state epoch time, side by side",
        "",
        f"- dataset: {dataset['name']}, {dataset['train_size']:,} train / {dataset['test_size']:,} test images"
        f"{subset}; files sha256 {dataset['sha256'][:16]}…, arrays sha256 {digest[:16]}…",
        f"- threads: {threads} in both frameworks (keras: as bench sets it, inter-op {threads}, "
        f"intra-op 1, {threads} parallel batch chains; keras-stock: intra-op and inter-op {threads}; "
        f"torch: set_num_threads({threads}), set_num_interop_threads(1))",
        f"- rounds: {args.rounds} (interleaved; implementation order rotated each round), epochs per run: "
        f"{args.epochs} (epoch 1 reported apart, steady state = median of epochs 2..{args.epochs})",
        f"- fp32 matmul peak: {peak_text} (torch matmul, same threads)",
        f"- run {run_id}, commit {environment.get('git_commit')}, CPU {environment.get('cpu', {}).get('model')}",
        f"- command: `{shlex.join(command)}`",
    ]


def markdown(header: list[str], summary, jsonl_name: str) -> str:
    """The whole report: header, a load warning where due, the runs, the ratios, the failures and the legend."""
    return (
        "\n".join(header)
        + "\n"
        + load_warning(summary)
        + "\n"
        + runs_table(summary)
        + ratios_table(summary)
        + failed_table(summary, jsonl_name)
        + "\n"
        + LEGEND
    )


def load_warning(summary) -> str:
    """A warning line when other processes took more than `OTHER_LOAD_WARNING` of the CPUs during a run."""
    loads = [v for v in summary["other_load_max"] if none(v) is not None]
    if not loads or max(loads) <= OTHER_LOAD_WARNING:
        return ""
    return (
        f"- **warning**: other processes used up to {100 * max(loads):.0f} % of the CPUs during some runs "
        "(column other load %); their times are disturbed. Rerun on an idle machine.\n"
    )


def runs_table(summary) -> str:
    """One line per (cell, shape, impl): the medians over the rounds."""
    headers = [header for header, *_ in RUNS_COLUMNS] + ["runs"]
    rows = []
    for r in summary.to_dict("records"):
        cells = [cell_text(r[key], digits, scale) for _, key, digits, scale in RUNS_COLUMNS]
        rows.append([*cells, str(r["runs"]) + (f" ({r['failed']} failed)" if r["failed"] else "")])
    return markdown_table(headers, rows, ["l", "r", "r", "l"] + ["r"] * (len(headers) - 4))


def ratios_table(summary) -> str:
    """One line per (cell, shape): keras against torch and the plain layer, the goal, and the products floor."""
    rows = []
    for (cell, units, batch), group in summary.groupby(["cell", "units", "batch_size"], sort=False):
        first = group.iloc[0]
        keras_over_torch = none(first["keras_over_torch"])
        verdict = "–" if keras_over_torch is None else ("yes" if keras_over_torch <= 1.0 else "no")
        goal = "–" if keras_over_torch is None else ("met" if keras_over_torch <= TRAIN_GOAL else "**missed**")
        rows.append(
            [
                cell,
                str(units),
                str(batch),
                fmt(keras_over_torch, 3),
                fmt(first["keras_over_keras_stock"], 3),
                verdict,
                none(first["keras_le_torch_rounds"]) or "–",
                goal,
                fmt(first["products_floor_s"], 2),
                fmt(first["floor_over_torch"], 3),
            ]
        )
    table = markdown_table(RATIO_HEADERS, rows, ["l", "r", "r", "r", "r", "l", "r", "l", "r", "r"])
    return "\n## Ratios of median steady-state epoch times\n\n" + table


def failed_table(summary, jsonl_name: str) -> str:
    """The rows with failed runs and each one's first error; empty when nothing failed."""
    failed = summary[summary["failed"] > 0]
    if not len(failed):
        return ""
    rows = [
        [r["cell"], str(r["units"]), str(r["batch_size"]), r["impl"], str(r["failed"]), r["error"]]
        for r in failed.to_dict("records")
    ]
    headers = ["cell", "units", "batch", "impl", "failed", "first error"]
    table = markdown_table(headers, rows, ["l", "r", "r", "l", "r", "l"])
    return f"\n## Failed runs\n\n{table}\nThe raw records, with each failed worker's stderr, are in {jsonl_name}.\n"


def markdown_table(headers: list[str], rows: list[list[str]], align: list[str]) -> str:
    return quiet_import("recurrent_mnist.reporting").markdown_table(headers, rows, align)


def none(value: Any) -> Any:
    """pandas' missing values (NaN, None) as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def cell_text(value: Any, digits: int | None, scale: float) -> str:
    """A runs-table cell: text as it is, a number times `scale` with `digits` decimals, "–" when missing."""
    if digits is None:
        return str(value)
    value = none(value)
    return fmt(None if value is None else scale * value, digits)


def fmt(value: Any, digits: int) -> str:
    value = none(value)
    return "–" if value is None else f"{value:,.{digits}f}"
