"""The trials table, what a search returns (`TuneResult`), and the search's `summary.md`.

`trials_frame(oracle)` turns keras-tuner's trials into a pandas DataFrame, one row per trial: status,
rank, one column per hyperparameter, score, the metrics of the best epoch, duration, worker and the
reason of a failure. `trials.csv` and `summary.md` are views of that frame.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path

import keras_tuner
import pandas as pd
from keras_tuner.engine.trial import Trial, TrialStatus

from recurrent_mnist import reporting
from recurrent_mnist.tuning.config import TuneConfig
from recurrent_mnist.tuning.hypermodel import OBJECTIVES, SEARCH_SPACE


def _status(status: str, final: bool) -> str:
    if status == TrialStatus.COMPLETED:
        return "completed"
    if status in (TrialStatus.FAILED, TrialStatus.INVALID):
        return "failed"
    return "interrupted" if final else "running"


def _failure_reason(trial: Trial) -> str:
    if trial.status not in (TrialStatus.FAILED, TrialStatus.INVALID):
        return ""
    lines = [line.strip() for line in (trial.message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "the objective was not a number (NaN)"
    name, separator, text = lines[-1].partition(": ")
    name = name.rsplit(".", 1)[-1]
    if separator and name == "FailedTrialError":
        return text[:500]
    return (f"{name}: {text}" if separator else lines[-1])[:500]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")


def _clean(value, integer: bool = False):
    if isinstance(value, float):
        return int(value) if integer and value.is_integer() else float(f"{value:.10g}")
    return value


METRIC_COLUMNS = ["val_accuracy", "val_loss", "accuracy", "loss", "best_epoch", "epochs"]


def trials_frame(oracle, final: bool = False) -> pd.DataFrame:
    """Every trial of an oracle, in the order they started: status, rank, one column per
    hyperparameter, score, metrics of the best epoch, duration, worker and failure reason.

    Only completed trials with a finite score are ranked (1 is best); failed ones never are.
    """
    direction = OBJECTIVES.get(oracle.objective.name, oracle.objective.direction)
    space = oracle.get_space().space
    declared = [hp.name for hp in space]
    integers = {hp.name for hp in space if isinstance(hp, keras_tuner.engine.hyperparameters.Int)}
    hp_names = [name for name in SEARCH_SPACE if name in declared] + [n for n in declared if n not in SEARCH_SPACE]
    order = {trial_id: i for i, trial_id in enumerate(oracle.start_order)}
    trials = sorted(oracle.trials.values(), key=lambda t: (order.get(t.trial_id, len(order)), t.trial_id))
    rows = []
    for trial in trials:
        values = trial.hyperparameters.values
        for name in values:
            if name not in hp_names:
                hp_names.append(name)
        started, ended = oracle.started_at.get(trial.trial_id), oracle.ended_at.get(trial.trial_id)
        completed = trial.status == TrialStatus.COMPLETED
        row = {
            "trial_id": trial.trial_id,
            "status": _status(trial.status, final),
            "rank": None,
            **{name: _clean(values.get(name), name in integers) for name in values},
            "score": trial.score if completed and trial.score is not None and math.isfinite(trial.score) else None,
        }
        for metric in METRIC_COLUMNS:
            row[metric] = trial.metrics.get_last_value(metric) if completed and trial.metrics.exists(metric) else None
        row.update(
            duration_s=None if started is None or ended is None or ended < started else round(ended - started, 3),
            worker=oracle.workers.get(trial.trial_id),
            started_at=_iso(started),
            error=_failure_reason(trial),
        )
        rows.append(row)
    columns = ["trial_id", "status", "rank", *hp_names, "score", *METRIC_COLUMNS]
    columns += ["duration_s", "worker", "started_at", "error"]
    frame = pd.DataFrame(rows, columns=columns)
    ranked = frame[frame["score"].notna()].sort_values("score", ascending=direction == "min", kind="stable")
    frame.loc[ranked.index, "rank"] = range(1, len(ranked) + 1)
    frame["rank"] = frame["rank"].astype("Int64")
    for column in ("best_epoch", "epochs"):  # averaged over executions by keras-tuner; whole numbers stay whole
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.dropna().mod(1).eq(0).all():
            frame[column] = values.astype("Int64")
    return frame


def ranked(trials: pd.DataFrame) -> pd.DataFrame:
    """The completed trials, best first."""
    return trials[trials["rank"].notna()].sort_values("rank").reset_index(drop=True)


def best_per_cell(trials: pd.DataFrame) -> pd.DataFrame:
    """The best completed trial of each cell, best cell first."""
    done = ranked(trials)
    if done.empty or "cell" not in done:
        return done
    return done.groupby("cell", sort=False).head(1).reset_index(drop=True)


@dataclasses.dataclass
class TuneResult:
    """What `run_search` returns: the tables (pandas DataFrames) and what happened.

    Attributes:
        run_dir: the run folder.
        trials: every trial (see `trials_frame`); on a worker, the trials it ran.
        best_per_cell: the best completed trial of each cell, best first.
        best: the best trial's id, hyperparameters and score, and the retrained
            model's file and test accuracy; None when no trial completed.
        files: the files written.
        role: `local`, `chief` or `worker`.
        ran: trials run by this call; kept: trials finished before it.
        stop_reason: why the search ended.
    """

    run_dir: Path
    trials: pd.DataFrame
    best_per_cell: pd.DataFrame
    best: dict | None
    files: list[Path]
    role: str
    ran: int = 0
    kept: int = 0
    stop_reason: str = ""

    @property
    def completed(self) -> int:
        return int((self.trials["status"] == "completed").sum()) if not self.trials.empty else 0

    @property
    def failed(self) -> int:
        return int((self.trials["status"] == "failed").sum()) if not self.trials.empty else 0


def _markdown_rows(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    def text(value):
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return "–"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return [[text(record.get(c)) for c in columns] for record in frame.to_dict("records")]


def summary_markdown(result: TuneResult, config: TuneConfig) -> str:
    """`summary.md` of a search: what it searched and why it stopped, its best configuration, the best
    per cell, the top trials and the failed ones."""
    trials = result.trials
    objective = f"{config.objective} ({OBJECTIVES[config.objective]}imised on the validation split)"
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    lines = [
        f"# Hyperparameter search: {result.run_dir.name}",
        "",
        f"Tuner `{config.tuner}`, cells {', '.join(config.cells)}, {_readings(config)}objective {objective}, "
        f"on `{config.dataset}`. "
        f"{len(trials)} trial(s): {counts.get('completed', 0)} completed, {counts.get('failed', 0)} failed"
        + (f", {counts.get('interrupted', 0)} interrupted" if counts.get("interrupted") else "")
        + f". The search stopped because {result.stop_reason}.",
        "",
    ]
    columns = [c for c in SEARCH_SPACE if c in trials]
    lines += _best_section(result.best, columns, config)
    lines += _per_cell_section(result.best_per_cell, columns)
    lines += _top_section(trials, columns)
    lines += _failed_section(trials, columns)
    lines.append("Every trial, with each hyperparameter as a column, is in `trials.csv`.")
    return "\n".join(lines) + "\n"


def _best_section(best: dict | None, columns: list[str], config: TuneConfig) -> list[str]:
    if not best:
        return []
    lines = ["## Best configuration", ""]
    lines.append(
        reporting.markdown_table(
            ["trial", *columns, "score", "test accuracy (retrained)"],
            [
                [
                    str(best["trial_id"]),
                    *[str(_clean(best["hyperparameters"].get(c))) for c in columns],
                    f"{best['score']:.4f}",
                    "–" if best.get("test_accuracy") is None else f"{best['test_accuracy']:.4f}",
                ]
            ],
        )
    )
    if best.get("model"):
        lines += [
            f"Retrained from scratch on the same training split (seed {config.seed}, early stopping on the "
            f"validation split), saved as `{best['model']}` and scored once on the test split.",
            "",
        ]
    elif best.get("error"):
        lines += [f"The retraining of the best configuration failed: {best['error']}.", ""]
    return lines


def _per_cell_section(per_cell: pd.DataFrame, columns: list[str]) -> list[str]:
    if len(per_cell) <= 1:
        return []
    shown = ["cell", "trial_id", *columns[1:], "score"]
    return [
        "## Best per cell",
        "",
        reporting.markdown_table(["cell", "trial", *columns[1:], "score"], _markdown_rows(per_cell, shown)),
    ]


def _top_section(trials: pd.DataFrame, columns: list[str]) -> list[str]:
    top = ranked(trials).head(10)
    if top.empty:
        return []
    shown = ["rank", "trial_id", *columns, "score", "best_epoch", "epochs", "duration_s"]
    return ["## Top trials", "", reporting.markdown_table(shown, _markdown_rows(top, shown))]


def _failed_section(trials: pd.DataFrame, columns: list[str]) -> list[str]:
    failed = trials[trials["status"] == "failed"] if not trials.empty else trials
    if failed.empty:
        return []
    return [
        "## Failed trials (never ranked)",
        "",
        *(
            f"- trial {r['trial_id']} ({', '.join(f'{c} {_clean(r.get(c))}' for c in columns)}): {r['error']}"
            for r in failed.to_dict("records")
        ),
        "",
    ]


def _readings(config) -> str:
    """How the trials read the images, where that is not the rows; with the clipping, where set."""
    parts = []
    if config.readings != ("rows",):
        parts.append(f"reading {' or '.join(config.readings)}")
        if "permuted-pixels" in config.readings:
            parts.append(f"permutation seed {config.permutation_seed}")
    if config.clipnorm is not None:
        parts.append(f"gradients clipped to norm {config.clipnorm:g}")
    return "".join(f"{part}, " for part in parts)
