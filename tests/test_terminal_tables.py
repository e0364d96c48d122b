"""What the terminal shows after a run: what was compared, intervals that stay possible, ties, at 80 columns."""

from __future__ import annotations

import io

import pandas as pd
from recurrent_mnist_cli.views.bench import summary_table, ties_line
from rich.console import Console

from recurrent_mnist import reporting
from recurrent_mnist.bench.folder import first_look


def _rows(accuracies: dict[str, list[float]], dataset="mnist", epochs=10) -> pd.DataFrame:
    rows = []
    for cell, values in accuracies.items():
        for seed, accuracy in enumerate(values):
            rows.append(
                {
                    "cell": cell,
                    "seed": seed,
                    "status": "ok",
                    "units": 64 if cell == "lstm" else 75,
                    "params": 20_000 + len(cell),
                    "dataset": dataset,
                    "epochs": epochs,
                    "test_accuracy": accuracy,
                    "epoch_time_s": 0.5 + seed / 100,
                    "train_samples_per_s": 4000.0,
                }
            )
    return reporting.runs_frame(rows)


def _render(table, width=80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_the_summary_shows_units_parameters_and_an_interval_within_80_columns():
    summary = reporting.summary_frame(_rows({"lstm": [0.97, 0.98], "gru": [0.95, 0.96]}))
    text = _render(summary_table(summary, "Summary"))
    assert max(map(len, text.splitlines())) <= 80, text
    lstm = next(line for line in text.splitlines() if " lstm " in line)
    # Two seeds: the Student-t interval reaches past 1, and is clipped to what an accuracy can take.
    assert " 64 " in lstm and "20,004" in lstm and "0.9750 (0.911–1.000)" in lstm, text
    assert ties_line(summary) is None


def test_intervals_stay_within_the_possible_and_one_seed_says_too_few():
    summary = reporting.summary_frame(_rows({"lstm": [0.99, 0.30], "gru": [0.5]}))
    for record in summary.to_dict("records"):
        low, high = record["test_accuracy_ci95_low"], record["test_accuracy_ci95_high"]
        assert pd.isna(low) or 0.0 <= low <= high <= 1.0
        assert pd.isna(record["epoch_time_s_ci95_low"]) or record["epoch_time_s_ci95_low"] >= 0.0
    gru = summary[summary["cell"] == "gru"].iloc[0].to_dict()
    assert reporting.interval(gru, "test_accuracy", 4) == "too few seeds"
    assert "too few seeds" in reporting.summary_markdown(summary, "t")
    assert "0.5000 (too few seeds)" in _render(summary_table(summary, "Summary"))


def test_equal_means_share_a_rank_and_read_as_a_tie():
    summary = reporting.summary_frame(_rows({"lstm": [0.644], "gru": [0.644], "simple_rnn": [0.5]}))
    assert sorted(summary["rank"]) == [1, 1, 3]
    text = _render(summary_table(summary, "Summary"))
    assert text.count("1=") == 2 and " 3 " in text, text
    assert ties_line(summary).startswith("Tie: lstm and gru") or ties_line(summary).startswith("Tie: gru and lstm")
    assert "1=" in reporting.summary_markdown(summary, "t")


def test_a_first_look_says_so_and_gives_a_real_run():
    note = first_look(_rows({"lstm": [0.6]}, dataset="mnist-sample", epochs=2))
    assert "embedded sample" in note and "2 epochs" in note and "--dataset mnist" in note
    assert first_look(_rows({"lstm": [0.6]}, dataset="fashion-mnist", epochs=1)).count("1 epoch") == 1
    assert first_look(_rows({"lstm": [0.98]}, dataset="mnist", epochs=20)) is None


def test_a_cell_whose_every_seed_failed_shows_dashes():
    rows = _rows({"lstm": [0.9]}).to_dict("records")
    rows.append({"cell": "gru", "seed": 0, "status": "failed", "dataset": "mnist", "error": "diverged"})
    summary = reporting.summary_frame(reporting.runs_frame(rows))
    text = _render(summary_table(summary, "Summary"))
    gru = next(line for line in text.splitlines() if " gru " in line)
    assert "0 (1 failed)" in gru and "–" in gru, text
