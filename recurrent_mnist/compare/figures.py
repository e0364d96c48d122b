"""What a comparison compares (`Figure`: a runs.csv column, its unit and direction) and what it returns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

BASELINE = "baseline"
NOT_SIGNIFICANT = "not significant"
TOO_FEW_SEEDS = "too few seeds"
NO_FIGURE = "no figure"
DIFFERENT_CPUS = "trained on different CPUs"


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
FIGURE_BY_COLUMN = {figure.column: figure for figure in (*FIGURES, PROCESS_MEMORY)}
# The figures that measure speed: a run whose variants trained on several kinds of CPU gets no verdict on them.
TIMING_COLUMNS = ("epoch_time_s", "train_samples_per_s", "infer_samples_per_s", "latency_ms_p50")

VERDICT_RULE = (
    "A figure differs when Welch's t-test over the seeds gives p < {alpha}; the verdict then says which way "
    "(throughput: higher or lower). 'too few seeds' when a run has fewer than two seeds with the figure, "
    "'no figure' when a run has none (e.g. the steady-state epoch time of one-epoch runs), 'trained on "
    "different CPUs' for a speed figure of a run whose variants trained on several kinds of CPU. Ratios are "
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
        return [FIGURE_BY_COLUMN[column] for column in dict.fromkeys(self.table["figure"])]


# --------------------------------------------------------------------------- arguments
