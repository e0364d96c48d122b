"""Bench runs side by side: is a difference real, or noise between seeds?

`compare_runs(run_dirs)` reads finished bench runs, matches them by cell and,
for each figure (accuracy, steady-state epoch time, throughput, latency,
memory), gives every run's mean ± standard deviation over seeds and, against
the first run (the baseline), the ratio or difference, Welch's p and a verdict.
It also lists the configuration and environment fields that differ between the
runs, and applies the regression gates (`fail_if_slower`,
`fail_if_less_accurate`). `write_comparison` writes `compare.md`, `compare.csv`
and `compare.png`. The anchors for the form are pyperf's `compare_to` and asv's
`compare`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recurrent_mnist import reporting, settings
from recurrent_mnist.bench import BenchFolder
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs.atomic import atomic_write_text
from recurrent_mnist.runs.folder import digest, os_message
from recurrent_mnist.runs.records import flatten
from recurrent_mnist.stats import summarize, welch

__all__ = [
    "FIGURES",
    "Comparison",
    "Figure",
    "compare_runs",
    "comparison_rows",
    "default_out_dir",
    "write_comparison",
]

BASELINE = "baseline"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_SEEDS = "too few seeds"
NO_FIGURE = "no figure"
# A bench run's variant record is `variants/<stem>.json`; while the variant trains, `variants/<stem>.running` exists.
RUNNING_SUFFIX = ".running"
# environment.json fields that describe an invocation, not the environment.
_NOT_ENVIRONMENT = {"created_at", "command", "config", "variants"}


@dataclasses.dataclass(frozen=True)
class Figure:
    """A figure compared between runs.

    Attributes:
        column: its `runs.csv` column.
        label: its name in tables, with its unit.
        noun: its name in sentences.
        higher_is_better: the direction of "better".
        ratio: compared as run / baseline; otherwise as the difference run − baseline.
        digits: decimals shown.
        better, worse: the verdict when the run is significantly better or worse than the baseline.
    """

    column: str
    label: str
    noun: str
    higher_is_better: bool
    ratio: bool
    digits: int
    better: str
    worse: str


ACCURACY = Figure("test_accuracy", "test accuracy", "test accuracy", True, False, 4, "more accurate", "less accurate")
EPOCH_TIME = Figure("epoch_time_s", "epoch time (s)", "epoch time", False, True, 2, "faster", "slower")
VARIANT_MEMORY = Figure(
    "variant_rss_growth_mb", "RSS growth (MB)", "memory growth", False, True, 0, "less memory", "more memory"
)
# The process's peak RSS: `peak_rss_mb` in runs written before it was renamed.
PROCESS_MEMORY = Figure(
    "process_peak_rss_mb", "process peak RSS (MB)", "process peak memory", False, True, 0, "less memory", "more memory"
)
FIGURES = (
    ACCURACY,
    EPOCH_TIME,
    Figure("train_samples_per_s", "train samples/s", "training throughput", True, True, 0, "higher", "lower"),
    Figure("infer_samples_per_s", "infer samples/s", "inference throughput", True, True, 0, "higher", "lower"),
    Figure("latency_ms_p50", "latency p50 (ms)", "median latency", False, True, 2, "faster", "slower"),
    VARIANT_MEMORY,
)
_FIGURES = {figure.column: figure for figure in (*FIGURES, PROCESS_MEMORY)}

VERDICT_RULE = (
    "A figure differs when Welch's t-test over the seeds gives p < {alpha}; the verdict then says which way "
    "(throughput: higher or lower). 'too few seeds' when a run has fewer than two seeds with the figure, "
    "'no figure' when a run has none (e.g. the steady-state epoch time of one-epoch runs). Ratios are "
    "run / baseline; accuracy is compared as the difference run − baseline. Of the figures that do not really "
    "differ, a share of about {alpha} is still flagged by chance; the gates judge only the figures they name."
)


@dataclasses.dataclass(frozen=True)
class ComparedRun:
    """One run of a comparison: its label in the tables, its folder, its finished rows."""

    label: str
    path: Path
    rows: pd.DataFrame
    failed: int


@dataclasses.dataclass
class Comparison:
    """What `compare_runs` returns.

    Attributes:
        runs: the runs, the baseline first.
        cells: the cells every run holds, in the baseline's order.
        table: one row per cell × figure × run (`compare.csv`): n, mean, std,
            95 % interval, and against the baseline the change (a ratio or a
            difference, says `change_kind`), Welch's p and the verdict.
        seeds: one row per cell × figure × run × seed: the values behind the table.
        differences: the configuration and environment fields that differ:
            `field`, then one column per run.
        notes: what the reader should know (rows left out, fallbacks).
        failures: one sentence per failed gate; empty when the gates pass.
        alpha: the significance level.
        fail_if_slower, fail_if_less_accurate: the gates' thresholds (None: off).
    """

    runs: list[ComparedRun]
    cells: list[str]
    table: pd.DataFrame
    seeds: pd.DataFrame
    differences: pd.DataFrame
    notes: list[str]
    failures: list[str]
    alpha: float
    fail_if_slower: float | None = None
    fail_if_less_accurate: float | None = None

    @property
    def baseline(self) -> ComparedRun:
        return self.runs[0]

    @property
    def figures(self) -> list[Figure]:
        return [_FIGURES[column] for column in dict.fromkeys(self.table["figure"])]


# --------------------------------------------------------------------------- arguments


def default_out_dir(run_dirs: Sequence[str | os.PathLike], results_dir: str | os.PathLike = settings.RESULTS_DIR):
    """`results/compare-A-vs-B`, from the runs' folder names (a hash instead when the names are too long)."""
    name = "compare-" + "-vs-".join(Path(run_dir).resolve().name for run_dir in run_dirs)
    if len(name) > 120:
        name = f"compare-{len(run_dirs)}-runs-{digest([str(Path(p).resolve()) for p in run_dirs])[:12]}"
    return Path(results_dir) / name


# --------------------------------------------------------------------------- reading runs


def _labels(paths: list[Path]) -> list[str]:
    """The folder names; where two are alike, the shortest ends of the paths that tell them apart
    (`x/run`, `y/run`); the same folder twice is numbered (`run`, `run #2`)."""
    parts = [path.resolve().parts for path in paths]
    for depth in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    seen: dict[str, int] = {}
    labels = []
    for path in paths:
        name = path.resolve().name
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return labels


def _check_run(path: Path) -> BenchFolder:
    folder = BenchFolder(path)
    if not path.is_dir():
        raise ResultsError(f"{path} is not a folder; give the folder of a bench run, e.g. results/NAME")
    if not (path / "run.json").is_file() and not folder.variants.is_dir():
        raise ResultsError(f"{path} is not a bench run (no run.json or variants/ inside)")
    if folder.variants.is_dir():
        unfinished = sorted(
            marker.stem
            for marker in folder.variants.glob(f"*{RUNNING_SUFFIX}")
            if not (folder.variants / f"{marker.stem}.json").is_file()
        )
        if unfinished:
            raise ResultsError(
                f"{path} is still incomplete: {len(unfinished)} variant(s) not finished "
                f"({', '.join(unfinished)}); resume it with the same bench command, then compare again"
            )
    return folder


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _flatten(value, prefix: str) -> dict[str, str]:
    """Nested dicts as dotted names (`runs.records.flatten`); every leaf as text (lists as compact JSON)."""
    return {name: _text(leaf) for name, leaf in flatten(value, prefix).items()}


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return json.dumps(value, separators=(",", " "))
    return "–" if value is None else settings.format_number(value)


def _fields(path: Path, label: str, notes: list[str]) -> dict[str, str]:
    """What a run is: its configuration (`config.*`, the data set's digest) and its environment(s) (`environment.*`).

    environment.json holds `{"environments": [...]}` (one entry per distinct environment) or, in runs
    written before, the last invocation's environment itself.
    """
    fields = {}
    identity = _read_json(path / "run.json")
    if isinstance(identity, dict):
        fields.update(_flatten(identity.get("config", {}), "config"))
        if "dataset_sha256" in identity:
            fields["dataset_sha256"] = str(identity["dataset_sha256"])
    environment = _read_json(path / "environment.json")
    if environment is None:
        notes.append(f"{label} has no readable environment.json: its environment is not compared.")
        return fields
    entries = environment.get("environments") if isinstance(environment, dict) else None
    entries = [environment] if entries is None else entries
    entries = [entry for entry in entries if isinstance(entry, dict)]
    if len(entries) > 1:
        notes.append(f"{label} was trained in {len(entries)} different environments; their values are joined by |.")
    values: dict[str, list[str]] = {}
    for entry in entries:
        kept = {k: v for k, v in entry.items() if k not in _NOT_ENVIRONMENT}
        for name, value in _flatten(kept, "environment").items():
            values.setdefault(name, [])
            if value not in values[name]:
                values[name].append(value)
    fields.update({name: " | ".join(found) for name, found in values.items()})
    return fields


def _differences(fields: list[dict[str, str]], labels: list[str]) -> pd.DataFrame:
    names = sorted({name for run in fields for name in run})
    rows = [
        {"field": name, **{label: run.get(name, "–") for label, run in zip(labels, fields, strict=True)}}
        for name in names
        if len({run.get(name, "–") for run in fields}) > 1
    ]
    return pd.DataFrame(rows, columns=["field", *labels])


# --------------------------------------------------------------------------- comparing


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
    folders = [_check_run(path) for path in paths]
    labels = _labels(paths)
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
    fields = [_fields(run.path, run.label, notes) for run in runs]
    comparison = Comparison(
        runs=runs,
        cells=cells,
        table=table,
        seeds=seeds,
        differences=_differences(fields, labels),
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
                table.append(_row(cell, figure, run, sample, None if index == 0 else samples[0], alpha))
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
            if _missing(row["p"]) or _missing(row["change"]):
                unjudged.append(f"{row['cell']} in {row['run']} ({row['verdict']})")
                continue
            if row["p"] >= comparison.alpha:
                continue
            if figure is EPOCH_TIME and row["change"] > 1 + threshold:
                failures.append(
                    f"{row['cell']}: the epoch time of {row['run']} is {row['change']:.2f} times the baseline's "
                    f"({_mean_std(row, figure)} s against {_mean_std(base, figure)} s), more than the "
                    f"{threshold * 100:g}% that `fail_if_slower` allows, and significant ({_p_clause(row['p'])})"
                )
            if figure is ACCURACY and row["change"] < -threshold:
                failures.append(
                    f"{row['cell']}: the test accuracy of {row['run']} is {-row['change']:.4f} below the baseline's "
                    f"({_mean_std(row, figure)} against {_mean_std(base, figure)}), more than the "
                    f"{settings.format_number(threshold)} that `fail_if_less_accurate` allows, "
                    f"and significant ({_p_clause(row['p'])})"
                )
        if unjudged:
            comparison.notes.append(f"The gate `{argument}` could not judge {figure.noun} for {'; '.join(unjudged)}.")
    return failures


# --------------------------------------------------------------------------- views


def _missing(value) -> bool:
    """None or NaN: a frame holds a missing number as either."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value, digits: int) -> str:
    if _missing(value) or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def _mean_std(row, figure: Figure) -> str:
    """`mean ± std` with the figure's decimals, or more where the mean needs them for three significant digits."""
    mean = row["mean"]
    if _missing(mean) or not math.isfinite(mean):
        return "–"
    digits = figure.digits
    if mean != 0:
        digits = min(6, max(digits, 2 - math.floor(math.log10(abs(mean)))))
    text = _number(mean, digits)
    if not _missing(row["std"]):
        text += f" ± {_number(row['std'], digits)}"
    return text


def _p(p) -> str:
    if _missing(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_clause(p) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _change(row, figure: Figure) -> str:
    change = row["change"]
    if _missing(change):
        return "–"
    return f"×{change:.2f}" if figure.ratio else f"{change:+.{figure.digits}f}"


def comparison_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """The comparison as display strings, shared by `compare.md` and the terminal.

    One row per cell × figure × run other than the baseline: the baseline's
    mean ± std (n), the run's, the ratio or difference, p and the verdict.
    """
    base_label = comparison.baseline.label
    headers = ["cell", "figure", f"{base_label} (baseline)", "run", "mean ± std (n)", "change", "p", "verdict"]
    rows = []
    table = comparison.table
    for (cell, column), group in table.groupby(["cell", "figure"], sort=False):
        figure = _FIGURES[column]
        base = group[group["baseline"]].iloc[0]
        baseline_text = f"{_mean_std(base, figure)} ({base['n']})"
        for row in group[~group["baseline"]].to_dict("records"):
            rows.append(
                [
                    cell,
                    figure.label,
                    baseline_text,
                    row["run"],
                    f"{_mean_std(row, figure)} ({row['n']})",
                    _change(row, figure),
                    _p(row["p"]),
                    row["verdict"],
                ]
            )
    return headers, rows


def comparison_markdown(comparison: Comparison) -> str:
    labels = [run.label for run in comparison.runs]
    text = f"# Runs compared: {labels[0]} (baseline) against {', '.join(labels[1:])}\n\n"
    text += reporting.markdown_table(
        ["run", "folder", "finished variants", "failed"],
        [[run.label, str(run.path), str(len(run.rows)), str(run.failed)] for run in comparison.runs],
        ["l", "l", "r", "r"],
    )
    headers, rows = comparison_rows(comparison)
    text += "\n" + reporting.markdown_table(headers, rows, ["l", "l", "r", "l", "r", "r", "r", "l"])
    text += "\n" + VERDICT_RULE.format(alpha=settings.format_number(comparison.alpha)) + "\n"
    if comparison.differences.empty:
        text += "\nThe runs' configurations and environments do not differ.\n"
    else:
        text += "\n## What differs between the runs\n\n"
        text += reporting.markdown_table(list(comparison.differences.columns), comparison.differences.values.tolist())
    for note in comparison.notes:
        text += f"\n{note}\n"
    if comparison.failures:
        text += "\n## Gates failed\n\n" + "".join(f"- {failure}.\n" for failure in comparison.failures)
    return text


def write_comparison(comparison: Comparison, out_dir: str | os.PathLike) -> list[Path]:
    """Writes `compare.md`, `compare.csv` and `compare.png` (when there is a figure to plot) into `out_dir`.

    Returns:
        The files written.

    Raises:
        ResultsError: `out_dir` cannot be created or written.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(os_message(out_dir, exc)) from None
    reporting.write_csv(comparison.table, out_dir / "compare.csv")
    atomic_write_text(out_dir / "compare.md", comparison_markdown(comparison))
    files = [out_dir / "compare.md", out_dir / "compare.csv"]
    if plot_comparison(comparison, out_dir / "compare.png"):
        files.append(out_dir / "compare.png")
    return files


def plot_comparison(comparison: Comparison, path: str | os.PathLike) -> bool:
    """One panel per figure: per cell, each run's mean ± std (error bar) and its seeds (dots).

    Returns False when no figure has a value.
    """
    seeds = comparison.seeds
    figures = [figure for figure in comparison.figures if (seeds["figure"] == figure.column).any()]
    if not figures:
        return False
    plt = reporting._pyplot()
    columns = min(3, len(figures))
    panels = math.ceil(len(figures) / columns)
    figure_, axes = plt.subplots(panels, columns, figsize=(4.6 * columns, 3.8 * panels), squeeze=False)
    labels = [run.label for run in comparison.runs]
    width = 0.8 / len(labels)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, figure in zip(axes.flat, figures, strict=False):
        table = comparison.table[comparison.table["figure"] == figure.column]
        for index, label in enumerate(labels):
            colour = colours[index % len(colours)]
            legend = label
            for position, cell in enumerate(comparison.cells):
                x = position - 0.4 + width * (index + 0.5)
                row = table[(table["cell"] == cell) & (table["run"] == label)].iloc[0]
                points = seeds[(seeds["figure"] == figure.column) & (seeds["cell"] == cell) & (seeds["run"] == label)]
                axis.scatter([x] * len(points), points["value"], s=14, alpha=0.5, color=colour)
                if row["n"]:
                    std = 0.0 if _missing(row["std"]) else row["std"]
                    axis.errorbar(x, row["mean"], yerr=std, fmt="D", color=colour, capsize=4, label=legend)
                    legend = None
        axis.set_xticks(range(len(comparison.cells)), comparison.cells)
        axis.set_title(figure.label)
        axis.grid(alpha=0.3, axis="y")
    for axis in list(axes.flat)[len(figures) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    figure_.suptitle("Mean ± standard deviation over seeds (diamonds, bars); dots: one seed each", fontsize=9)
    figure_.tight_layout(rect=(0, 0, 1, 0.96))
    reporting.save_figure(figure_, path)
    return True
