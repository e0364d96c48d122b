"""Within one run: the ranking's steps and each Keras cell against its PyTorch peer, judged over the seeds."""

from __future__ import annotations

import json

import pandas as pd

from recurrent_mnist import reporting
from recurrent_mnist.bench import rebuild_report
from recurrent_mnist.bench.contrasts import framework_contrasts, rank_contrasts
from recurrent_mnist.environment import code_identity
from recurrent_mnist.runs.records import write_record

KERAS, TORCH = "keras 3.15.1 (tensorflow)", "torch 2.13.0+cpu"


def row(cell, seed, framework=KERAS, accuracy=0.9, epoch=1.0):
    wobble = (0.0, 0.01, -0.01)[seed % 3]
    return {
        "cell": cell,
        "seed": seed,
        "framework": framework,
        "status": "ok",
        "error": "",
        "units": 8,
        "params": 100,
        "test_accuracy": accuracy + wobble / 10,
        "epoch_time_s": epoch * (1 + wobble),
        "latency_ms_p50": 0.5 * (1 + wobble),
    }


def frames(rows):
    runs = reporting.runs_frame(rows)
    return runs, reporting.summary_frame(runs)


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_each_keras_cell_is_set_against_its_pytorch_peer():
    rows = [
        row(c, s, f, epoch=1.0 if f == KERAS else 3.0)
        for c in ("lstm", "gru")
        for f in (KERAS, TORCH)
        for s in range(3)
    ]
    text = framework_contrasts(frames(rows)[0])
    found = {(r[0], r[1]): r for r in table_rows(text)}
    assert found["gru", "epoch time (s)"][4:] == ["×0.33", "< 0.001", "differs"]
    assert found["lstm", "test accuracy"][4:] == ["+0.0000", "1.000", "not significant"]
    assert found["lstm", "latency p50 (ms)"][2:4] == ["0.50 ± 0.01", "0.50 ± 0.01"]
    assert not any(r[1] == "inference (images/s)" for r in found.values())  # no such figure in the rows


def test_a_run_of_one_framework_has_no_framework_section():
    assert framework_contrasts(frames([row("lstm", s) for s in range(3)])[0]) is None


def test_each_step_of_the_ranking_is_tested_and_one_seed_is_too_few():
    rows = [row("gru", s, accuracy=0.95) for s in range(3)] + [row("lstm", s) for s in range(3)]
    rows += [row("simple_rnn", s, accuracy=0.9) for s in range(3)]
    runs, summary = frames(rows)
    steps = table_rows(rank_contrasts(summary, runs))
    assert steps[0] == ["gru over lstm", "+0.0500", "< 0.001", "differs"]
    assert steps[1][0] in ("lstm over simple_rnn", "simple_rnn over lstm") and steps[1][2:] == [
        "1.000",
        "not significant",
    ]
    runs, summary = frames([row("gru", 0, accuracy=0.95), row("lstm", 0)])
    assert table_rows(rank_contrasts(summary, runs))[0][2:] == ["–", "too few seeds"]
    assert rank_contrasts(*reversed(frames([row("gru", 0)]))) is None


def test_summary_md_holds_both_sections_and_says_when_other_code_rebuilt_it(tmp_path):
    run = tmp_path / "run"
    (run / "variants").mkdir(parents=True)
    theirs = {**code_identity(), "source_sha256": "f" * 64, "git_commit": "b" * 40, "git_dirty": False}
    (run / "run.json").write_text(json.dumps({"config": {"dataset": "mnist"}, "code": theirs}))
    for entry in [row(c, s, f) for c in ("lstm", "gru") for f in (KERAS, TORCH) for s in range(2)]:
        stem = f"{entry['cell']}-{entry['framework'].split()[0]}-seed{entry['seed']}"
        write_record(run / "variants" / f"{stem}.json", stem, {}, entry, [])
    rebuild_report(run)
    summary = (run / "summary.md").read_text()
    assert "## Does the ranking hold?" in summary and "## Keras against PyTorch, cell by cell" in summary
    assert "Code: recurrent-mnist" in summary and "commit bbbbbbbb (source ffffffff)" in summary
    assert "Tables rebuilt from the variant records by recurrent-mnist" in summary
    # Tables rebuilt by the code that trained say nothing of the kind.
    (run / "run.json").write_text(json.dumps({"config": {"dataset": "mnist"}, "code": code_identity()}))
    rebuild_report(run)
    assert "Tables rebuilt" not in (run / "summary.md").read_text()
    assert len(pd.read_csv(run / "runs.csv")) == 8


def test_an_interval_over_two_seeds_stays_within_what_the_figure_can_take():
    # Two seeds far apart: the t-interval reaches below 0 s and above an accuracy of 1; its ends are clipped.
    rows = [{**row("gru", 0), "test_accuracy": 0.30, "epoch_time_s": 0.1}]
    rows.append({**row("gru", 1), "test_accuracy": 0.99, "epoch_time_s": 9.0})
    _, summary = frames(rows)
    (gru,) = summary.to_dict("records")
    assert gru["test_accuracy_ci95_low"] == 0.0 and gru["test_accuracy_ci95_high"] == 1.0
    assert gru["epoch_time_s_ci95_low"] == 0.0 and gru["epoch_time_s_ci95_high"] > 9.0
    assert "clipped to what the figure can take" in reporting.summary_markdown(summary, "two seeds")
