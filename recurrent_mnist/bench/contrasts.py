"""Within one run: which differences between its cells, and between the frameworks of a cell, are beyond noise.

`summary.md` ranks the cells by mean test accuracy; these sections say whether
each step of that ranking, and each Keras cell against its PyTorch peer, is
more than the spread between seeds explains (Welch's t-test over the seeds,
`recurrent_mnist.stats.welch`). `recurrent-mnist compare` does the same between
runs.
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from recurrent_mnist import reporting, settings
from recurrent_mnist.stats import format_p, summarize, welch

__all__ = ["framework_contrasts", "rank_contrasts"]

# (runs.csv column, label, compared as a ratio (else as a difference), decimals)
FIGURES = (
    ("test_accuracy", "test accuracy", False, 4),
    ("epoch_time_s", "epoch time (s)", True, 2),
    ("first_epoch_s", "first epoch (s)", True, 2),
    ("infer_samples_per_s", "inference (images/s)", True, 0),
    ("latency_ms_p50", "latency p50 (ms)", True, 2),
    ("process_peak_rss_mb", "process peak memory (MB)", True, 0),
)
_ALPHA = settings.ALPHA.default


def _values(rows: pd.DataFrame, column: str) -> list[float]:
    if column not in rows:
        return []
    return [v for v in pd.to_numeric(rows[column], errors="coerce") if not math.isnan(v)]


def _mean_std(values: list[float], digits: int) -> str:
    s = summarize(values)
    if s.mean is None:
        return "–"
    text = f"{s.mean:,.{digits}f}"
    return text if s.std is None else f"{text} ± {s.std:,.{digits}f}"


def _change(a: list[float], b: list[float], ratio: bool, digits: int) -> str:
    if not a or not b:
        return "–"
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    if ratio:
        return f"×{mean_a / mean_b:.2f}" if mean_b else "–"
    return f"{mean_a - mean_b:+.{digits}f}"


def _verdict(p: float | None) -> str:
    if p is None:
        return "too few seeds"
    return "differs" if p < _ALPHA else "not significant"


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if "status" in runs else runs


def framework_contrasts(runs: pd.DataFrame) -> str | None:
    """Markdown: per cell trained by both, Keras's figures against PyTorch's (ratio or difference, Welch's p);
    None unless the run has rows of both frameworks."""
    if runs.empty or "framework" not in runs:
        return None
    ok = _ok(runs)
    kind = ok["framework"].fillna("keras").astype(str).str.split().str[0]
    rows = []
    for cell in dict.fromkeys(ok["cell"]):
        keras_rows, torch_rows = (
            ok[(ok["cell"] == cell) & (kind == "keras")],
            ok[(ok["cell"] == cell) & (kind == "torch")],
        )
        if keras_rows.empty or torch_rows.empty:
            continue
        for column, label, ratio, digits in FIGURES:
            a, b = _values(keras_rows, column), _values(torch_rows, column)
            if not a and not b:
                continue
            p = welch(a, b).p
            rows.append(
                [
                    cell,
                    label,
                    _mean_std(a, digits),
                    _mean_std(b, digits),
                    _change(a, b, ratio, digits),
                    format_p(p),
                    _verdict(p),
                ]
            )
    if not rows:
        return None
    headers = ["cell", "figure", "Keras", "PyTorch", "Keras / PyTorch", "p", "verdict"]
    return (
        "## Keras against PyTorch, cell by cell\n\n"
        f"Mean ± standard deviation over seeds; ratio Keras / PyTorch (accuracy: the difference); Welch's "
        f"two-sided p over the seeds, 'differs' when p < {_ALPHA}.\n\n"
        + reporting.markdown_table(headers, rows, ["l", "l", "r", "r", "r", "r", "l"])
    )


def rank_contrasts(summary: pd.DataFrame, runs: pd.DataFrame) -> str | None:
    """Markdown: each place of the ranking against the next (test accuracy, Welch's p); None for fewer
    than two ranked groups."""
    if len(summary) < 2:
        return None
    ok = _ok(runs)
    keys = ["cell", "framework"] if "framework" in summary else ["cell"]

    def group(row) -> tuple[str, list[float]]:
        selected = ok
        for key in keys:
            selected = selected[selected[key] == row[key]]
        name = row["cell"] if len(keys) == 1 else f"{row['cell']} ({str(row['framework']).split()[0]})"
        return name, _values(selected, "test_accuracy")

    groups = [group(row) for row in summary.to_dict("records")]
    rows = []
    for (upper, a), (lower, b) in itertools.pairwise(groups):
        p = welch(a, b).p
        rows.append([f"{upper} over {lower}", _change(a, b, False, 4), format_p(p), _verdict(p)])
    headers = ["ranking step", "test accuracy difference", "p", "verdict"]
    return (
        "## Does the ranking hold?\n\n"
        f"Each place against the next, by test accuracy over the seeds (Welch's two-sided p; 'differs' when "
        f"p < {_ALPHA}).\n\n" + reporting.markdown_table(headers, rows, ["l", "r", "r", "l"])
    )
