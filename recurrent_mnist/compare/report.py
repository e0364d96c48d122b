"""A comparison as text: `compare.md`, `compare.csv`, `compare.png`, and the rows the terminal shows."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from recurrent_mnist import reporting, settings
from recurrent_mnist.compare.figures import FIGURE_BY_COLUMN, VERDICT_RULE, Comparison, Figure
from recurrent_mnist.errors import ResultsError
from recurrent_mnist.html_report import write_report
from recurrent_mnist.runs.atomic import atomic_write_text
from recurrent_mnist.runs.folder import os_message
from recurrent_mnist.stats import format_p


def is_missing(value) -> bool:
    """None or NaN: a frame holds a missing number as either."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value, digits: int) -> str:
    if is_missing(value) or not math.isfinite(value):
        return "–"
    return f"{value:,.{digits}f}"


def mean_std(row, figure: Figure) -> str:
    """`mean ± std` with the figure's decimals, or more where the mean needs them for three significant digits."""
    mean = row["mean"]
    if is_missing(mean) or not math.isfinite(mean):
        return "–"
    digits = figure.digits
    if mean != 0:
        digits = min(6, max(digits, 2 - math.floor(math.log10(abs(mean)))))
    text = _number(mean, digits)
    if not is_missing(row["std"]):
        text += f" ± {_number(row['std'], digits)}"
    return text


def p_clause(p) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _change(row, figure: Figure) -> str:
    change = row["change"]
    if is_missing(change):
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
        figure = FIGURE_BY_COLUMN[column]
        base = group[group["baseline"]].iloc[0]
        baseline_text = f"{mean_std(base, figure)} ({base['n']})"
        for row in group[~group["baseline"]].to_dict("records"):
            rows.append(
                [
                    cell,
                    figure.label,
                    baseline_text,
                    row["run"],
                    f"{mean_std(row, figure)} ({row['n']})",
                    _change(row, figure),
                    format_p(row["p"]),
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
    """Writes `compare.md`, `compare.csv`, `compare.png` (when there is a figure to plot) and `report.html`
    (all of them in one self-contained page, with each run's environment) into `out_dir`.

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
    labels = " against ".join(run.label for run in comparison.runs)
    files.append(
        write_report(
            out_dir / "report.html",
            f"Runs compared: {labels}",
            comparison_markdown(comparison),
            [out_dir / "compare.png"] if out_dir / "compare.png" in files else [],
            {run.label: _environment(run.path) for run in comparison.runs},
        )
    )
    return files


def _environment(run_dir: Path) -> dict:
    """A run's environment.json, or where it would be when the run has none readable."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads((run_dir / "environment.json").read_text())
    return {"folder": str(run_dir), "environment.json": "absent or unreadable"}


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
                    std = 0.0 if is_missing(row["std"]) else row["std"]
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
