"""Result tables and plots, built from a run's records.

Results are pandas DataFrames first: `runs_frame`, `summary_frame` and
`history_frame` build them (`record_frames` all three from a run's variant
records); CSV, Markdown and the PNG plots are views of them. Every file is
written atomically (`runs.atomic`), so a reader never sees half a table.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from recurrent_mnist import stats
from recurrent_mnist.runs.atomic import atomic_path, atomic_write_text

__all__ = [
    "RUNS_COLUMNS",
    "history_frame",
    "markdown_table",
    "plot_accuracy_vs_time",
    "plot_learning_curves",
    "record_frames",
    "runs_frame",
    "summary_frame",
    "summary_markdown",
    "write_csv",
    "write_tables",
]

# What a variant's training measured: the timing, throughput and memory columns.
MEASURED = [
    "epoch_time_s",
    "steady_epochs",
    "first_epoch_s",
    "train_time_s",
    "train_samples_per_s",
    "infer_samples_per_s",
    "latency_ms_p50",
    "latency_ms_p95",
    "variant_rss_growth_mb",
    "process_peak_rss_mb",
    "epochs_to_target",
    "seconds_to_target",
]
# The documented columns of runs.csv, in order; provenance and configuration follow.
RUNS_COLUMNS = [
    "cell",
    "seed",
    "framework",
    "units",
    "layers",
    "bidirectional",
    "dropout",
    "recurrent_dropout",
    "batch_size",
    "learning_rate",
    "params",
    "test_accuracy",
    "test_loss",
    "best_val_accuracy",
    "best_epoch",
    "epochs",
    "epochs_requested",
    *MEASURED,
    "status",
    "error",
]
HISTORY_COLUMNS = [
    "cell",
    "seed",
    "framework",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "epoch_time_s",
    "train_time_s",
    "variant",
]
# Summarised per cell: mean and standard deviation over the seeds that finished,
# and for the two figures a comparison turns on, the 95 % confidence interval of the mean.
SUMMARY_METRICS = ["test_accuracy", "test_loss", "best_val_accuracy", "epochs", *MEASURED]
INTERVAL_METRICS = ["test_accuracy", "epoch_time_s"]
# What each interval's metric can take: a Student-t interval over few seeds reaches past it
# (below zero seconds, above an accuracy of 1), so its ends are clipped to it.
INTERVAL_RANGES = {"test_accuracy": (0.0, 1.0), "epoch_time_s": (0.0, math.inf)}
# Mean accuracies equal to this many decimals (as every table shows them) share a rank: a tie.
TIE_DIGITS = 4


# --------------------------------------------------------------------------- tables


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def framework_of(row: dict) -> str | None:
    """A row's `framework`; for a row written before rows had one, the Keras that its provenance names."""
    framework = row.get("framework")
    if isinstance(framework, str) and framework:
        return framework
    if row.get("keras_version"):
        return f"keras {row['keras_version']} ({row.get('backend')})"
    return None


def runs_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """One row per variant, documented columns first, sorted by cell, framework and seed."""
    frame = pd.DataFrame([{**row, "framework": framework_of(row)} for row in rows])
    if frame.empty:
        return pd.DataFrame(columns=RUNS_COLUMNS)
    for column in RUNS_COLUMNS:
        if column not in frame:
            frame[column] = None
    ordered = RUNS_COLUMNS + [c for c in frame.columns if c not in RUNS_COLUMNS]
    return frame[ordered].sort_values(["cell", "framework", "seed"], kind="stable").reset_index(drop=True)


def _by_framework(frame: pd.DataFrame) -> bool:
    """Whether the rows come from more than one framework (then tables and plots keep them apart)."""
    return "framework" in frame and frame["framework"].nunique(dropna=False) > 1


def series_labels(frame: pd.DataFrame) -> pd.Series:
    """What names a row's series in a plot: its cell, with the framework's name when the rows mix frameworks."""
    if not _by_framework(frame):
        return frame["cell"]
    return frame["cell"] + " (" + frame["framework"].fillna("?").str.split().str[0] + ")"


def history_frame(rows: Iterable[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "train_time_s"):
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    ordered = [c for c in HISTORY_COLUMNS if c in frame] + [c for c in frame.columns if c not in HISTORY_COLUMNS]
    return frame[ordered].sort_values(["cell", "seed", "epoch"], kind="stable").reset_index(drop=True)


def record_frames(records: Iterable[dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The `runs`, `summary` and `history` frames of a run's variant records (see `runs.records`)."""
    records = list(records)
    runs = runs_frame(record["row"] for record in records)
    history = history_frame(
        {
            **entry,
            "cell": record["row"]["cell"],
            "seed": record["row"]["seed"],
            "framework": framework_of(record["row"]),
            "variant": record["key"],
        }
        for record in records
        for entry in record.get("history", [])
    )
    return runs, summary_frame(runs), history


def summary_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: how many seeds finished or failed, the mean and standard deviation of each metric,
    and the 95 % Student-t interval of the mean of `INTERVAL_METRICS` (`<metric>_ci95_low`/`_high`).

    When the rows come from several frameworks (Keras and the PyTorch peer), per cell and framework,
    with a `framework` column. Ranked by mean test accuracy (best first), every group together; failed
    variants are counted, never averaged.
    """
    keys = ["cell", "framework"] if _by_framework(runs) else ["cell"]
    columns = ["rank", *keys, "seeds", "failed", "units", "params"] + [
        f"{m}_{stat}"
        for m in SUMMARY_METRICS
        for stat in ("mean", "std", *(("ci95_low", "ci95_high") if m in INTERVAL_METRICS else ()))
    ]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    records = []
    for values, group in runs.groupby(keys, sort=False, dropna=False):
        ok = group[group["status"] == "ok"]
        record = {
            **dict(zip(keys, values, strict=True)),
            "seeds": len(ok),
            "failed": int((group["status"] != "ok").sum()),
            "units": int(group["units"].iloc[0]) if group["units"].notna().any() else None,
            "params": int(group["params"].iloc[0]) if group["params"].notna().any() else None,
        }
        for metric in SUMMARY_METRICS:
            summary = stats.summarize(pd.to_numeric(ok[metric], errors="coerce"))
            record[f"{metric}_mean"], record[f"{metric}_std"] = summary.mean, summary.std
            if metric in INTERVAL_METRICS:
                record[f"{metric}_ci95_low"], record[f"{metric}_ci95_high"] = _within(
                    summary.ci_low, summary.ci_high, INTERVAL_RANGES[metric]
                )
        records.append(record)
    frame = pd.DataFrame(records)
    frame = frame.sort_values("test_accuracy_mean", ascending=False, na_position="last", kind="stable")
    frame.insert(0, "rank", _shared_ranks(frame["test_accuracy_mean"]))
    return frame[columns].reset_index(drop=True)


def _shared_ranks(means: pd.Series) -> list[int]:
    """Competition ranks (1, 1, 3) of means sorted best first: equal as shown (four decimals) is a tie."""
    shown = [round(float(m), TIE_DIGITS) if pd.notna(m) else None for m in means]
    ranks = []
    for position, value in enumerate(shown):
        tied = position > 0 and value is not None and value == shown[position - 1]
        ranks.append(ranks[-1] if tied else position + 1)
    return ranks


def rank_text(summary: pd.DataFrame, rank) -> str:
    """A rank as shown: `2`, or `1=` when another cell shares it (a tie)."""
    return f"{rank}=" if int((summary["rank"] == rank).sum()) > 1 else str(rank)


def ties(summary: pd.DataFrame) -> list[list[str]]:
    """The groups of cells (with framework, where there is one) that share a rank."""
    labels = series_labels(summary) if "framework" in summary else summary["cell"].astype(str)
    groups = summary.groupby("rank", sort=True).groups
    return [[labels[i] for i in index] for index in groups.values() if len(index) > 1]


def _within(low, high, bounds: tuple[float, float]):
    """An interval's ends clipped to what its metric can take (NaN stays NaN)."""
    lowest, highest = bounds
    if low is not None and math.isfinite(low):
        low = min(max(low, lowest), highest)
    if high is not None and math.isfinite(high):
        high = min(max(high, lowest), highest)
    return low, high


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.{digits}f}"


def mean_std(row, metric: str, digits: int) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    text = _fmt(mean, digits)
    if std is not None and not (isinstance(std, float) and math.isnan(std)) and text != "–":
        text += f" ± {_fmt(std, digits)}"
    return text


def markdown_table(headers: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table; `align` holds "l" or "r" per column."""
    align = align or ["l"] * len(headers)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def interval(row, metric: str, digits: int) -> str:
    """A metric's 95 % interval as `low to high`; "too few seeds" under two finished seeds."""
    low, high = row.get(f"{metric}_ci95_low"), row.get(f"{metric}_ci95_high")
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return "too few seeds" if row.get("seeds") == 1 else "–"
    return f"{_fmt(low, digits)} to {_fmt(high, digits)}"


SUMMARY_DISPLAY = [
    # (header, metric, digits); a header ending in "95 % CI" shows the metric's interval
    ("test accuracy", "test_accuracy", 4),
    ("test accuracy 95 % CI", "test_accuracy", 4),
    ("best val. accuracy", "best_val_accuracy", 4),
    ("epoch time (s)", "epoch_time_s", 2),
    ("epoch time 95 % CI", "epoch_time_s", 2),
    ("first epoch (s)", "first_epoch_s", 2),
    ("train samples/s", "train_samples_per_s", 0),
    ("infer samples/s", "infer_samples_per_s", 0),
    ("latency p50 (ms)", "latency_ms_p50", 2),
    ("memory added (MB)", "variant_rss_growth_mb", 0),
    ("process peak (MB)", "process_peak_rss_mb", 0),
]


# The summary's columns that measure speed, marked † when a run's variants trained on several kinds of CPU.
TIMING_METRICS = ("epoch_time_s", "first_epoch_s", "train_samples_per_s", "infer_samples_per_s", "latency_ms_p50")


def summary_rows(summary: pd.DataFrame, mark_timings: bool = False) -> tuple[list[str], list[list[str]]]:
    """The summary as display strings (shared by Markdown and the terminal table)."""
    keys = ["cell", "framework"] if "framework" in summary else ["cell"]
    marked = [f"{h} †" if mark_timings and metric in TIMING_METRICS else h for h, metric, _ in SUMMARY_DISPLAY]
    headers = ["rank", *keys, "seeds", "units", "params", *marked]
    rows = []
    for record in summary.to_dict("records"):
        seeds = str(record["seeds"]) + (f" ({record['failed']} failed)" if record["failed"] else "")
        params = _fmt(record["params"], 0) if record["params"] is not None else "–"
        units = str(record["units"]) if record.get("units") is not None else "–"
        rows.append(
            [rank_text(summary, record["rank"]), *(str(record[key]) for key in keys), seeds, units, params]
            + [
                interval(record, metric, digits) if header.endswith("95 % CI") else mean_std(record, metric, digits)
                for header, metric, digits in SUMMARY_DISPLAY
            ]
        )
    return headers, rows


def summary_markdown(summary: pd.DataFrame, title: str, notes: Iterable[str] = (), mark_timings: bool = False) -> str:
    headers, rows = summary_rows(summary, mark_timings)
    labels = headers.index("seeds")  # cell (and framework) and seeds are left-aligned, the rest right
    align = ["r"] + ["l"] * labels + ["r"] * (len(headers) - labels - 1)
    text = f"# {title}\n\n" + markdown_table(headers, rows, align)
    text += (
        "\nMean ± standard deviation over seeds; 95 % CI: the Student-t confidence interval of the mean "
        '(two seeds or more; "too few seeds" under two), its ends clipped to what the figure can take (an '
        "accuracy from 0 to 1, a time of 0 s or more): over few seeds it is wide. Ranked by mean test accuracy; "
        "a rank marked = is a tie (equal to four decimals). Failed variants are counted, not averaged.\n"
    )
    text += (
        "Epoch time is the median training time (validation excluded) of the epochs that did not trace and "
        "compile: the first epoch each process trains never counts.\n"
    )
    for note in notes:
        text += f"\n{note}\n"
    return text


def write_tables(
    folder: str | os.PathLike,
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    history: pd.DataFrame,
    title: str,
    notes: Iterable[str] = (),
    mark_timings: bool = False,
) -> list[Path]:
    """Writes `runs.csv`, `summary.csv`, `summary.md`, `history.csv` and the plots there are data for.

    Returns the files written.
    """
    folder = Path(folder)
    write_csv(runs, folder / "runs.csv")
    write_csv(summary, folder / "summary.csv")
    write_csv(history, folder / "history.csv")
    atomic_write_text(folder / "summary.md", summary_markdown(summary, title, notes, mark_timings))
    files = [folder / name for name in ("runs.csv", "summary.csv", "summary.md", "history.csv")]
    if plot_learning_curves(history, folder / "learning_curves.png"):
        files.append(folder / "learning_curves.png")
    if plot_accuracy_vs_time(runs, folder / "accuracy_vs_time.png"):
        files.append(folder / "accuracy_vs_time.png")
    return files


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike) -> None:
    """Writes a matplotlib figure as a PNG, atomically, and closes it."""
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    _pyplot().close(figure)


def plot_learning_curves(history: pd.DataFrame, path: str | os.PathLike) -> bool:
    """Validation accuracy and training loss per epoch, one line per cell (mean over seeds,
    shaded between the lowest and highest seed). Returns False when there is nothing to plot."""
    if history.empty:
        return False
    plt = _pyplot()
    figure, (acc_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    acc_metric = "val_accuracy" if history["val_accuracy"].notna().any() else "accuracy"
    for cell, group in history.groupby(series_labels(history)):
        for axis, metric in ((acc_axis, acc_metric), (loss_axis, "loss")):
            per_epoch = group.groupby("epoch")[metric].agg(["mean", "min", "max"])
            (line,) = axis.plot(per_epoch.index, per_epoch["mean"], marker="o", markersize=3, label=cell)
            axis.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], alpha=0.2, color=line.get_color())
    acc_axis.set(xlabel="epoch", ylabel=acc_metric.replace("_", " "), title="Accuracy per epoch")
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="Training loss per epoch")
    from matplotlib.ticker import MaxNLocator

    for axis in (acc_axis, loss_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Mean over seeds; the band spans the lowest and highest seed", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    save_figure(figure, path)
    return True


def plot_accuracy_vs_time(runs: pd.DataFrame, path: str | os.PathLike) -> bool:
    """Test accuracy against total training time, one point per variant, one colour per cell."""
    ok = runs[(runs["status"] == "ok") & runs["test_accuracy"].notna()] if not runs.empty else runs
    if ok.empty:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for cell, group in ok.groupby(series_labels(ok)):
        points = axis.scatter(group["train_time_s"], group["test_accuracy"], label=cell, alpha=0.6)
        axis.scatter(
            group["train_time_s"].mean(),
            group["test_accuracy"].mean(),
            marker="D",
            s=80,
            color=points.get_facecolor()[0],
            edgecolor="black",
            zorder=3,
        )
    axis.set(
        xlabel="training time (s)",
        ylabel="test accuracy",
        title="Accuracy against training time (dots: seeds, diamonds: means)",
    )
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)
    return True


def runs_json(runs: pd.DataFrame) -> list[dict]:
    return json.loads(runs.to_json(orient="records"))
