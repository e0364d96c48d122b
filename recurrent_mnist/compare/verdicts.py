"""`compare_runs`: each figure of each cell, every run against the baseline, with Welch's test and the gates."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recurrent_mnist import reporting, settings
from recurrent_mnist.compare.figures import (
    ACCURACY,
    BASELINE,
    DIFFERENT_CPUS,
    EPOCH_TIME,
    FIGURES,
    NO_FIGURE,
    NOT_SIGNIFICANT,
    PROCESS_MEMORY,
    TIMING_COLUMNS,
    TOO_FEW_SEEDS,
    VARIANT_MEMORY,
    ComparedRun,
    Comparison,
    Figure,
)
from recurrent_mnist.compare.report import is_missing, mean_std, p_clause
from recurrent_mnist.compare.runs import check_run, field_differences, run_fields, run_labels
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.stats import summarize, welch


def compare_runs(
    run_dirs: Sequence[str | os.PathLike],
    *,
    alpha: float = settings.ALPHA.default,
    fail_if_slower: float | str | None = None,
    fail_if_less_accurate: float | str | None = None,
) -> Comparison:
    """Compares finished bench runs cell by cell against the first.

    Args:
        run_dirs: two or more bench run folders; the first is the baseline.
        alpha: the significance level of Welch's t-test over seeds. Default: 0.05.
        fail_if_slower: fail when a cell's steady-state epoch time is more than
            this fraction above the baseline's and the difference is
            significant: `0.1` or `"10%"`. Default: None (no gate).
        fail_if_less_accurate: fail when a cell's test accuracy is more than
            this much below the baseline's (absolute) and the difference is
            significant: `0.005` or `"0.5%"`. Default: None (no gate).

    Returns:
        A `Comparison`; its `failures` name each failed gate.

    Raises:
        ConfigError: fewer than two runs, or a threshold or `alpha` that does not parse.
        ResultsError: a folder that is not a bench run, a run still incomplete,
            or runs with no cell in common.

    Example:

    >>> comparison = compare_runs(["results/before", "results/after"], fail_if_slower="10%")  # doctest: +SKIP
    >>> comparison.table[["cell", "figure", "run", "mean", "change", "p", "verdict"]]  # doctest: +SKIP
    """
    alpha = settings.ALPHA.check(alpha)
    fail_if_slower = settings.parse_threshold(fail_if_slower, "fail_if_slower")
    fail_if_less_accurate = settings.parse_threshold(fail_if_less_accurate, "fail_if_less_accurate")
    paths = [Path(run_dir) for run_dir in run_dirs]
    if len(paths) < 2:
        given = ", ".join(map(str, paths)) or "none"
        raise ConfigError(
            f"`run_dirs` must name two or more bench runs, the first the baseline; received {len(paths)}: {given}",
            argument="run_dirs",
        )
    folders = [check_run(path) for path in paths]
    labels = run_labels(paths)
    notes: list[str] = []

    runs = []
    for label, folder in zip(labels, folders, strict=True):
        frame, _, _ = reporting.record_frames(folder.finished_variants())
        ok = frame[frame["status"] == "ok"] if not frame.empty else frame
        failed = frame[frame["status"] != "ok"] if not frame.empty else frame
        if len(failed):
            which = ", ".join(f"{r['cell']} seed {r['seed']}" for r in failed.to_dict("records"))
            notes.append(f"{label}: {len(failed)} failed variant(s) left out ({which}).")
        runs.append(ComparedRun(label, folder.path, ok.reset_index(drop=True), len(failed)))

    cells = _common_cells(runs, notes)
    memory = _memory_figure(runs, cells, notes)
    figures = [memory if figure is VARIANT_MEMORY else figure for figure in FIGURES]
    table, seeds = _compare(runs, cells, figures, alpha, notes)
    fields = [run_fields(run.path, run.label, notes) for run in runs]
    comparison = Comparison(
        runs=runs,
        cells=cells,
        table=table,
        seeds=seeds,
        differences=field_differences(fields, labels),
        notes=notes,
        failures=[],
        alpha=alpha,
        fail_if_slower=fail_if_slower,
        fail_if_less_accurate=fail_if_less_accurate,
    )
    comparison.failures = _gate(comparison)
    return comparison


def _common_cells(runs: list[ComparedRun], notes: list[str]) -> list[str]:
    for run in runs:
        frameworks = run.rows["framework"].dropna().unique() if "framework" in run.rows else []
        if len(frameworks) > 1:  # rows are matched by cell: the frameworks' figures would be pooled
            raise ResultsError(
                f"{run.path} holds rows of several frameworks ({', '.join(frameworks)}); compare matches rows "
                "by cell, so compare runs of one framework"
            )
    held = [list(dict.fromkeys(run.rows["cell"])) if not run.rows.empty else [] for run in runs]
    for run, cells in zip(runs, held, strict=True):
        if not cells:
            raise ResultsError(f"{run.path} holds no finished variant; nothing of it can be compared")
    common = [cell for cell in held[0] if all(cell in cells for cells in held[1:])]
    if not common:
        described = "; ".join(f"{run.label}: {', '.join(cells)}" for run, cells in zip(runs, held, strict=True))
        raise ResultsError(f"the runs have no cell in common ({described}); compare runs of the same cells")
    left_out = sorted({cell for cells in held for cell in cells} - set(common))
    if left_out:
        notes.append(f"Cells not in every run are left out: {', '.join(left_out)}.")
    for cell in common:
        seeds = [sorted(run.rows.loc[run.rows["cell"] == cell, "seed"].tolist()) for run in runs]
        if any(s != seeds[0] for s in seeds[1:]):
            described = "; ".join(f"{run.label}: {' '.join(map(str, s))}" for run, s in zip(runs, seeds, strict=True))
            notes.append(f"The seeds of {cell} differ between the runs ({described}).")
    return common


def _column(rows: pd.DataFrame, *names: str) -> pd.Series:
    """The first of `names` that `rows` has values in, as numbers (all NaN when none has)."""
    for name in names:
        if name in rows and pd.to_numeric(rows[name], errors="coerce").notna().any():
            return pd.to_numeric(rows[name], errors="coerce")
    return pd.Series(math.nan, index=rows.index, dtype=float)


def _values(rows: pd.DataFrame, figure: Figure) -> pd.Series:
    if figure is PROCESS_MEMORY:
        # Renamed from peak_rss_mb: a run written before has the old name only.
        return _column(rows, "process_peak_rss_mb", "peak_rss_mb")
    values = _column(rows, figure.column)
    if figure is EPOCH_TIME and "epochs" in rows:
        # With one epoch there is no steady state: the only epoch includes tracing and compilation.
        values = values.where(pd.to_numeric(rows["epochs"], errors="coerce").fillna(2) >= 2)
    return values


def _memory_figure(runs: list[ComparedRun], cells: list[str], notes: list[str]) -> Figure:
    """What the variant itself adds where every run measured it; else the process's peak, which all runs have."""
    rows = [run.rows[run.rows["cell"].isin(cells)] for run in runs]
    if all(_values(r, VARIANT_MEMORY).notna().any() for r in rows):
        return VARIANT_MEMORY
    without = [run.label for run, r in zip(runs, rows, strict=True) if not _values(r, VARIANT_MEMORY).notna().any()]
    notes.append(
        f"Memory is the process's peak RSS (peak_rss_mb in older runs), not the variant's own growth: "
        f"{', '.join(without)} did not measure variant_rss_growth_mb."
    )
    return PROCESS_MEMORY


def _compare(
    runs: list[ComparedRun], cells: list[str], figures: list[Figure], alpha: float, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    table, seeds = [], []
    one_epoch = set()
    mixed = {run.label for run in runs if "cpu" in run.rows and run.rows["cpu"].nunique() > 1}
    if mixed:
        notes.append(
            f"The variants of {', '.join(sorted(mixed))} trained on more than one kind of CPU: its speed figures get "
            f"no verdict ('{DIFFERENT_CPUS}'); accuracy and memory are compared as usual."
        )
    for cell in cells:
        for figure in figures:
            samples = []
            for run in runs:
                rows = run.rows[run.rows["cell"] == cell]
                values = _values(rows, figure)
                if figure is EPOCH_TIME and values.count() < _column(rows, "epoch_time_s").count():
                    one_epoch.add(run.label)
                samples.append(values.dropna().tolist())
                seeds += [
                    {"cell": cell, "figure": figure.column, "run": run.label, "seed": seed, "value": value}
                    for seed, value in zip(rows["seed"], values, strict=True)
                    if not math.isnan(value)
                ]
            for index, (run, sample) in enumerate(zip(runs, samples, strict=True)):
                row = _row(cell, figure, run, sample, None if index == 0 else samples[0], alpha)
                speed = figure.column in TIMING_COLUMNS and {run.label, runs[0].label} & mixed
                if index and speed and row["verdict"] != NO_FIGURE:
                    row["p"], row["verdict"] = None, DIFFERENT_CPUS
                table.append(row)
    if one_epoch:
        notes.append(
            f"Epoch times of variants trained for one epoch are left out ({', '.join(sorted(one_epoch))}): "
            "that epoch includes tracing and compilation, so it is no steady-state figure."
        )
    return pd.DataFrame(table), pd.DataFrame(seeds, columns=["cell", "figure", "run", "seed", "value"])


def _row(cell: str, figure: Figure, run: ComparedRun, sample: list, baseline: list | None, alpha: float) -> dict:
    """A row of the table: the run's summary of `sample` and, unless it is the baseline, the comparison."""
    summary = summarize(sample)
    row = {
        "cell": cell,
        "figure": figure.column,
        "label": figure.label,
        "run": run.label,
        "baseline": baseline is None,
        "n": summary.n,
        "mean": summary.mean,
        "std": summary.std,
        "ci_low": summary.ci_low,
        "ci_high": summary.ci_high,
        "change": None,
        "change_kind": "ratio" if figure.ratio else "difference",
        "p": None,
        "verdict": BASELINE,
    }
    base = summarize(baseline) if baseline is not None else None
    if not summary.n or (base is not None and not base.n):
        row["verdict"] = NO_FIGURE
    if base is None or row["verdict"] == NO_FIGURE:
        return row
    if figure.ratio:
        row["change"] = summary.mean / base.mean if base.mean else None
    else:
        row["change"] = summary.mean - base.mean
    row["p"] = welch(sample, baseline).p
    if row["p"] is None:
        row["verdict"] = TOO_FEW_SEEDS
    elif row["p"] >= alpha:
        row["verdict"] = NOT_SIGNIFICANT
    else:
        higher = summary.mean > base.mean
        row["verdict"] = figure.better if higher == figure.higher_is_better else figure.worse
    return row


# --------------------------------------------------------------------------- the gates


def _gate(comparison: Comparison) -> list[str]:
    failures = []
    table = comparison.table
    gates = [
        (EPOCH_TIME, comparison.fail_if_slower, "fail_if_slower"),
        (ACCURACY, comparison.fail_if_less_accurate, "fail_if_less_accurate"),
    ]
    for figure, threshold, argument in gates:
        if threshold is None:
            continue
        rows = table[(table["figure"] == figure.column) & ~table["baseline"]]
        unjudged = []
        for row in rows.to_dict("records"):
            base = table[(table["figure"] == figure.column) & (table["cell"] == row["cell"]) & table["baseline"]].iloc[
                0
            ]
            if is_missing(row["p"]) or is_missing(row["change"]):
                unjudged.append(f"{row['cell']} in {row['run']} ({row['verdict']})")
                continue
            if row["p"] >= comparison.alpha:
                continue
            if figure is EPOCH_TIME and row["change"] > 1 + threshold:
                failures.append(
                    f"{row['cell']}: the epoch time of {row['run']} is {row['change']:.2f} times the baseline's "
                    f"({mean_std(row, figure)} s against {mean_std(base, figure)} s), more than the "
                    f"{threshold * 100:g}% that `fail_if_slower` allows, and significant ({p_clause(row['p'])})"
                )
            if figure is ACCURACY and row["change"] < -threshold:
                failures.append(
                    f"{row['cell']}: the test accuracy of {row['run']} is {-row['change']:.4f} below the baseline's "
                    f"({mean_std(row, figure)} against {mean_std(base, figure)}), more than the "
                    f"{settings.format_number(threshold)} that `fail_if_less_accurate` allows, "
                    f"and significant ({p_clause(row['p'])})"
                )
        if unjudged:
            comparison.notes.append(f"The gate `{argument}` could not judge {figure.noun} for {'; '.join(unjudged)}.")
    return failures


# --------------------------------------------------------------------------- views
