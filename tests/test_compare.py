"""`compare`: runs side by side, verdicts over seeds, the regression gates, and clear errors.

Most tests build run folders from made-up variant records (no training); one
trains a tiny real run and compares it with a copy made three times slower.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

from recurrent_mnist.compare import compare_runs, default_out_dir, write_comparison
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs.records import write_record
from recurrent_mnist.settings import parse_threshold

runner = CliRunner()

# Per seed, a relative wobble of every figure: a spread like real seeds, the same in every run.
WOBBLE = {0: 0.0, 1: 0.02, 2: -0.015, 3: 0.01}
FIGURES = {
    "test_accuracy": 0.97,
    "epoch_time_s": 2.0,
    "train_samples_per_s": 3000.0,
    "infer_samples_per_s": 9000.0,
    "latency_ms_p50": 1.5,
    "variant_rss_growth_mb": 40.0,
    "process_peak_rss_mb": 900.0,
}
CONFIG = {"dataset": "mnist", "units": 8, "num_layers": 1, "epochs": 2, "batch_size": 256, "threads": 2}
ENVIRONMENT = {
    "created_at": "2026-12-01T10:00:00+0000",
    "command": ["recurrent-mnist", "bench"],
    "python": "3.11.7",
    "host": "vm",
    "cpu": {"model": "Intel(R) Xeon(R) Processor", "usable_cpus": 2},
    "versions": {"tensorflow": "2.21.0", "keras": "3.15.1"},
    "git_commit": "abc123",
}


def row(cell: str, seed: int, *, slower: float = 1.0, accuracy: float = 0.0, **changed) -> dict:
    wobble = WOBBLE[seed % len(WOBBLE)]
    values = {name: value * (1 + wobble) for name, value in FIGURES.items()}
    values["test_accuracy"] = FIGURES["test_accuracy"] + wobble / 10 + accuracy
    values["epoch_time_s"] *= slower
    values.update(changed)
    return {"cell": cell, "seed": seed, "epochs": 2, "params": 1000, "status": "ok", "error": "", **values}


def make_run(path, rows, *, config=CONFIG, environment=ENVIRONMENT, sha="d" * 64):
    """A bench run folder as bench writes it: run.json, environment.json and one record per variant."""
    (path / "variants").mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"config": config, "dataset_sha256": sha}))
    if environment is not None:
        (path / "environment.json").write_text(json.dumps(environment))
    for entry in rows:
        stem = f"{entry['cell']}-seed{entry['seed']}-{'0' * 12}"
        write_record(path / "variants" / f"{stem}.json", stem, {}, entry, [])
    return path


def seeds(cells=("lstm", "gru"), n=3, **kwargs) -> list[dict]:
    return [row(cell, seed, **kwargs) for cell in cells for seed in range(n)]


def invoke(*args):
    return runner.invoke(app, ["compare", *map(str, args)])


def verdicts(comparison, figure: str) -> set[str]:
    table = comparison.table
    return set(table.loc[(table["figure"] == figure) & ~table["baseline"], "verdict"])


# --------------------------------------------------------------------------- the library


def test_a_run_against_itself_is_not_significant_anywhere(tmp_path):
    run = make_run(tmp_path / "a", seeds())
    comparison = compare_runs([run, run], fail_if_slower="10%", fail_if_less_accurate="0.005")
    others = comparison.table[~comparison.table["baseline"]]
    assert len(others) == 2 * 6 and set(others["verdict"]) == {"not significant"}
    assert (others["p"] == 1.0).all() and comparison.failures == []
    assert comparison.differences.empty
    assert [run.label for run in comparison.runs] == ["a", "a #2"]


def test_a_clearly_slower_run_fails_the_gate_naming_the_figure(tmp_path):
    base = make_run(tmp_path / "base", seeds())
    slow = make_run(tmp_path / "slow", seeds(slower=1.5))
    comparison = compare_runs([base, slow], fail_if_slower=0.10)
    assert verdicts(comparison, "epoch_time_s") == {"slower"}
    assert verdicts(comparison, "test_accuracy") == {"not significant"}
    epoch = comparison.table[(comparison.table["figure"] == "epoch_time_s") & ~comparison.table["baseline"]]
    assert epoch["change"].tolist() == pytest.approx([1.5, 1.5])
    assert epoch["change_kind"].tolist() == ["ratio", "ratio"]
    assert len(comparison.failures) == 2
    assert comparison.failures[0] == (
        "gru: the epoch time of slow is 1.50 times the baseline's (3.01 ± 0.05 s against 2.00 ± 0.04 s), "
        "more than the 10% that `fail_if_slower` allows, and significant (p < 0.001)"
    )
    # Within the limit: significant, but no failure.
    assert compare_runs([base, slow], fail_if_slower="60%").failures == []


def test_accuracy_is_a_difference_and_its_gate_needs_a_significant_drop(tmp_path):
    base = make_run(tmp_path / "base", seeds())
    worse = make_run(tmp_path / "worse", seeds(accuracy=-0.01))
    comparison = compare_runs([base, worse], fail_if_less_accurate="0.5%")
    assert verdicts(comparison, "test_accuracy") == {"less accurate"}
    accuracy = comparison.table[(comparison.table["figure"] == "test_accuracy") & ~comparison.table["baseline"]]
    assert accuracy["change"].tolist() == pytest.approx([-0.01, -0.01])
    assert len(comparison.failures) == 2 and "test accuracy of worse is 0.0100 below" in comparison.failures[0]
    assert compare_runs([base, worse], fail_if_less_accurate=0.02).failures == []
    assert verdicts(compare_runs([worse, base]), "test_accuracy") == {"more accurate"}


def test_each_figure_has_its_own_direction(tmp_path):
    base = make_run(tmp_path / "base", seeds(cells=("gru",)))
    better = [
        row("gru", seed, slower=0.5, train_samples_per_s=6000.0 + seed, infer_samples_per_s=1.0 + seed)
        for seed in range(3)
    ]
    for entry in better:
        entry["latency_ms_p50"] *= 2
        entry["variant_rss_growth_mb"] /= 2
    comparison = compare_runs([base, make_run(tmp_path / "other", better)])
    by_figure = dict(comparison.table.loc[~comparison.table["baseline"], ["figure", "verdict"]].values)
    assert by_figure == {
        "test_accuracy": "not significant",
        "epoch_time_s": "faster",
        "train_samples_per_s": "higher",
        "infer_samples_per_s": "lower",
        "latency_ms_p50": "slower",
        "variant_rss_growth_mb": "less memory",
    }


def test_too_few_seeds_and_missing_figures_say_so(tmp_path):
    base = make_run(tmp_path / "base", [*seeds(n=1), row("gru", 1)])
    one_epoch = [{**entry, "epochs": 1, "infer_samples_per_s": None} for entry in seeds()]
    comparison = compare_runs([base, make_run(tmp_path / "short", one_epoch)], fail_if_slower="10%")
    table = comparison.table.set_index(["cell", "figure", "run"])
    assert table.loc[("lstm", "test_accuracy", "short"), "verdict"] == "too few seeds"
    assert table.loc[("gru", "test_accuracy", "short"), "verdict"] == "not significant"
    # One epoch: no steady state, so no epoch time; an empty column: no figure.
    assert table.loc[("gru", "epoch_time_s", "short"), "verdict"] == "no figure"
    assert table.loc[("gru", "infer_samples_per_s", "short"), "verdict"] == "no figure"
    assert table.loc[("gru", "epoch_time_s", "base"), "n"] == 2
    notes = " ".join(comparison.notes)
    assert "trained for one epoch are left out (short)" in notes
    assert "`fail_if_slower` could not judge epoch time for gru in short (no figure); lstm in short (no" in notes
    assert comparison.failures == []


def test_failed_variants_and_cells_not_in_every_run_are_left_out_with_a_note(tmp_path):
    base = make_run(tmp_path / "base", seeds(cells=("lstm", "gru", "simple_rnn")))
    failed = {**row("gru", 3), "status": "failed", "error": "MemoryError"}
    other = make_run(tmp_path / "other", [*seeds(), failed])
    comparison = compare_runs([base, other])
    assert comparison.cells == ["gru", "lstm"]
    assert "other: 1 failed variant(s) left out (gru seed 3)." in comparison.notes
    assert "Cells not in every run are left out: simple_rnn." in comparison.notes
    assert comparison.table.loc[comparison.table["run"] == "other", "n"].max() == 3


def test_older_runs_fall_back_to_the_process_peak_under_its_old_name(tmp_path):
    base = make_run(tmp_path / "new", seeds(cells=("lstm",)))
    old_rows = []
    for entry in seeds(cells=("lstm",)):
        del entry["variant_rss_growth_mb"]
        entry["peak_rss_mb"] = entry.pop("process_peak_rss_mb") * 2
        old_rows.append(entry)
    comparison = compare_runs([base, make_run(tmp_path / "old", old_rows)])
    assert verdicts(comparison, "process_peak_rss_mb") == {"more memory"}
    assert "variant_rss_growth_mb" not in set(comparison.table["figure"])
    assert any("old did not measure variant_rss_growth_mb" in note for note in comparison.notes)


def test_differing_configuration_and_environment_fields_are_listed(tmp_path):
    old_format = make_run(tmp_path / "a", seeds(cells=("lstm",)))
    new_environment = {
        "environments": [
            {**ENVIRONMENT, "git_commit": "def456", "variants": ["lstm-seed0"]},
            {**ENVIRONMENT, "git_commit": "fed789", "created_at": "later", "variants": ["lstm-seed1"]},
        ]
    }
    new_format = make_run(
        tmp_path / "b", seeds(cells=("lstm",)), config={**CONFIG, "threads": 1}, environment=new_environment
    )
    comparison = compare_runs([old_format, new_format])
    differences = comparison.differences.set_index("field")
    assert list(differences.columns) == ["a", "b"]
    assert differences.loc["config.threads"].tolist() == ["2", "1"]
    assert differences.loc["environment.git_commit"].tolist() == ["abc123", "def456 | fed789"]
    assert set(differences.index) == {"config.threads", "environment.git_commit"}
    assert "b was trained in 2 different environments; their values are joined by |." in comparison.notes


def test_runs_of_the_same_name_are_told_apart_by_their_paths(tmp_path):
    first = make_run(tmp_path / "x" / "run", seeds())
    second = make_run(tmp_path / "y" / "run", seeds())
    assert [run.label for run in compare_runs([first, second]).runs] == ["x/run", "y/run"]


def test_three_runs_compare_against_the_first(tmp_path):
    runs = [make_run(tmp_path / name, seeds(slower=slower)) for name, slower in (("a", 1), ("b", 1), ("c", 2))]
    comparison = compare_runs(runs)
    epoch = comparison.table[comparison.table["figure"] == "epoch_time_s"].set_index(["cell", "run"])
    assert epoch.loc[("lstm", "a"), "verdict"] == "baseline"
    assert epoch.loc[("lstm", "b"), "verdict"] == "not significant"
    assert epoch.loc[("lstm", "c"), "verdict"] == "slower"


def test_files_written(tmp_path):
    base = make_run(tmp_path / "base", seeds())
    slow = make_run(tmp_path / "slow", seeds(slower=3), config={**CONFIG, "threads": 1})
    files = write_comparison(compare_runs([base, slow], fail_if_slower="10%"), tmp_path / "out")
    assert [path.name for path in files] == ["compare.md", "compare.csv", "compare.png", "report.html"]
    assert all(path.stat().st_size > 0 for path in files)
    frame = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert len(frame) == 2 * 6 * 2  # cells × figures × runs
    assert {"cell", "figure", "run", "n", "mean", "std", "ci_low", "ci_high", "change", "p", "verdict"} <= set(frame)
    markdown = (tmp_path / "out" / "compare.md").read_text()
    for text in ("base (baseline)", "× 3.00".replace(" ", ""), "slower", "config.threads", "Welch", "Gates failed"):
        assert text in markdown


@pytest.mark.parametrize(
    ("value", "argument", "expected"),
    [
        ("10%", "fail_if_slower", 0.1),
        ("0.1", "fail_if_slower", 0.1),
        (" 25 % ", "fail_if_slower", 0.25),
        ("150%", "fail_if_slower", 1.5),
        ("0.005", "fail_if_less_accurate", 0.005),
        ("0.5%", "fail_if_less_accurate", 0.005),
        (0.02, "fail_if_less_accurate", 0.02),
    ],
)
def test_thresholds_parse(value, argument, expected):
    assert parse_threshold(value, argument) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["ten", "10", "-5%", "", "nan", "1e400%"])
def test_thresholds_that_do_not_parse_name_the_forms(value):
    with pytest.raises(ConfigError, match=r"`fail_if_slower` must be a fraction in \[0, 1\) such as 0.1 or a"):
        parse_threshold(value, "fail_if_slower")


def test_default_out_dir_names_the_runs(tmp_path):
    assert default_out_dir([tmp_path / "a", tmp_path / "b"]).as_posix() == "results/compare-a-vs-b"
    assert len(default_out_dir([tmp_path / ("x" * 80), tmp_path / ("y" * 80)]).name) < 60


# --------------------------------------------------------------------------- bad input


def test_bad_runs_are_one_sentence(tmp_path):
    good = make_run(tmp_path / "good", seeds())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match=r"empty is not a bench run \(no run.json or variants/ inside\)"):
        compare_runs([good, tmp_path / "empty"])
    with pytest.raises(ResultsError, match=r"missing is not a folder"):
        compare_runs([good, tmp_path / "missing"])
    with pytest.raises(ResultsError, match=r"nothing holds no finished variant; nothing of it can be compared"):
        compare_runs([good, make_run(tmp_path / "nothing", [])])
    other = make_run(tmp_path / "other", seeds(cells=("simple_rnn",)))
    with pytest.raises(ResultsError, match=r"no cell in common \(good: gru, lstm; other: simple_rnn\)"):
        compare_runs([good, other])
    with pytest.raises(ConfigError, match=r"`run_dirs` must name two or more bench runs.*received 1"):
        compare_runs([good])
    with pytest.raises(ConfigError, match=r"`alpha` must be a number in \(0, 1\)"):
        compare_runs([good, good], alpha=5)


def test_an_incomplete_run_is_refused_naming_the_unfinished_variants(tmp_path):
    good = make_run(tmp_path / "good", seeds())
    busy = make_run(tmp_path / "busy", seeds())
    (busy / "variants" / "lstm-seed0-000000000000.running").write_text("")  # finished: its record is there
    (busy / "variants" / "gru-seed7-123456789abc.running").write_text("")
    with pytest.raises(ResultsError, match=r"busy is still incomplete: 1 variant\(s\) not finished "):
        compare_runs([good, busy])
    with pytest.raises(ResultsError, match=r"\(gru-seed7-123456789abc\); resume it with the same bench command"):
        compare_runs([good, busy])


# --------------------------------------------------------------------------- the command


def test_cli_gate_fails_on_a_slower_run_naming_the_figure(tmp_path):
    base = make_run(tmp_path / "base", seeds())
    slow = make_run(tmp_path / "slow", seeds(slower=3))
    result = invoke(base, slow, "--out", tmp_path / "out", "--fail-if-slower", "10%")
    assert result.exit_code == 1, result.output
    assert "Gate failed: gru: the epoch time of slow is 3.00 times" in result.output
    assert "--fail-if-slower allows" in result.output
    assert "slower" in result.output and "epoch time (s)" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "out" / "compare.md").exists()


def test_cli_run_against_itself_exits_0(tmp_path, monkeypatch):
    run = make_run(tmp_path / "a", seeds())
    monkeypatch.chdir(tmp_path)
    result = invoke(run, run, "--fail-if-slower", "0.1", "--fail-if-less-accurate", "0.005")
    assert result.exit_code == 0, result.output
    assert "not significant" in result.output and "Gate failed" not in result.output
    assert "do not differ" in result.output
    assert (tmp_path / "results" / "compare-a-vs-a" / "compare.csv").exists()


def test_help_and_usage_errors_load_no_tensorflow():
    code = (
        "import sys; from typer.testing import CliRunner; from recurrent_mnist_cli.app import app; "
        "runner = CliRunner(); "
        "assert 'compare' in runner.invoke(app, ['--help']).output; "
        "assert runner.invoke(app, ['compare', '--help']).exit_code == 0; "
        "assert runner.invoke(app, ['compare', 'a', 'b', '--fail-if-slower', 'ten']).exit_code == 2; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_cli_help_lists_the_options():
    result = invoke("--help")
    assert result.exit_code == 0
    for text in ("RUN...", "--out", "--alpha", "--fail-if-slower", "--fail-if-less-accurate", "baseline"):
        assert text in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["{good}", "{empty}"], 1, "is not a bench run"),
        (["{good}"], 2, "RUN must name two or more bench runs"),
        (["{good}", "{good}", "--fail-if-slower", "ten"], 2, "--fail-if-slower must be a fraction"),
        (["{good}", "{good}", "--fail-if-less-accurate", "5"], 2, "such as 0.005 or a percentage such as 0.5%"),
        (["{good}", "{good}", "--alpha", "2"], 2, "is not a number in (0, 1)"),
        (["{good}", "{other}"], 1, "no cell in common"),
    ],
)
def test_cli_bad_input_is_one_sentence_without_traceback(tmp_path, args, code, message):
    paths = {
        "good": make_run(tmp_path / "good", seeds()),
        "other": make_run(tmp_path / "other", seeds(cells=("simple_rnn",))),
        "empty": tmp_path / "empty",
    }
    paths["empty"].mkdir()
    result = invoke(*(arg.format(**paths) for arg in args), "--out", tmp_path / "out")
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_real_run_against_a_slowed_copy(tmp_path, tiny_data_dir):
    bench = runner.invoke(
        app,
        [
            "bench",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tiny_data_dir),
            "--cells",
            "simple_rnn",
            "--seeds",
            "0",
            "1",
            "--epochs",
            "2",
            "--units",
            "4",
            "--batch-size",
            "256",
            "--no-measure-inference",
            "--in-process",
            "--results-dir",
            str(tmp_path),
            "--run-name",
            "a",
        ],
    )
    assert bench.exit_code == 0, bench.output
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(a, b)
    # Each seed's steady-state epoch time plus nine times their mean: ten times slower, the spread unchanged.
    # Epochs of a few milliseconds are noisy, and multiplying them would multiply their spread too; with the
    # spread unchanged, two positive seeds give t > 9 / sqrt(2) = 6.4 against the 4.30 that p < 0.05 needs
    # (df = 2), however noisy they were.
    records = [(path, json.loads(path.read_text())) for path in sorted((b / "variants").glob("*.json"))]
    added = 9 * sum(record["row"]["epoch_time_s"] for _, record in records) / len(records)
    for path, record in records:
        record["row"]["epoch_time_s"] += added
        write_record(path, record["key"], record["train_config"], record["row"], record["history"])
    assert runner.invoke(app, ["report", str(b)]).exit_code == 0

    slower = invoke(a, b, "--fail-if-slower", "10%", "--out", tmp_path / "ab")
    assert slower.exit_code == 1, slower.output
    assert "Gate failed: simple_rnn: the epoch time of b is 10.00 times the baseline's" in slower.output
    same = invoke(a, a, "--fail-if-slower", "10%", "--out", tmp_path / "aa")
    assert same.exit_code == 0, same.output
    assert "Gate failed" not in same.output


def test_at_80_columns_every_verdict_is_whole_and_long_run_names_become_letters(tmp_path, monkeypatch):
    from recurrent_mnist_cli import _support

    monkeypatch.setattr(_support.console, "width", 80)  # a terminal of 80 columns, or a pipe
    base = make_run(tmp_path / "mnist-u128-l1-b128-e40-baseline-of-a-long-name", seeds(cells=("simple_rnn", "lstm")))
    cells = ("simple_rnn", "lstm")
    slow = make_run(tmp_path / "mnist-u128-l1-b128-e40-a-slower-run-of-a-long-name", seeds(cells=cells, slower=3))
    result = invoke(base, slow, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80, result.output
    comparison = compare_runs([base, slow])
    expected = set(comparison.table.loc[~comparison.table["baseline"], "verdict"])
    assert {"slower", "not significant"} <= expected
    table_lines = [line for line in lines if line.lstrip().startswith(("simple_rnn", "lstm")) or "  B  " in line]
    for verdict in expected:  # each verdict appears whole on a line of the table, never cut or wrapped
        assert any(line.rstrip().endswith(verdict) for line in table_lines), (verdict, result.output)
    assert "…" not in result.output and "..." not in result.output
    assert "A (baseline): mnist-u128-l1-b128-e40-baseline-of-a-long-name" in result.output


def test_a_run_trained_on_several_kinds_of_cpu_gets_no_speed_verdict_but_keeps_accuracy(tmp_path):
    from recurrent_mnist.bench.folder import rebuild_report

    cpus = {0: "Intel Xeon", 1: "AMD EPYC", 2: "Intel Xeon"}
    mixed_rows = [{**entry, "cpu": cpus[entry["seed"]]} for entry in seeds(slower=3, accuracy=0.02)]
    base = make_run(tmp_path / "base", [{**entry, "cpu": "Intel Xeon"} for entry in seeds()])
    mixed = make_run(tmp_path / "mixed", mixed_rows)
    comparison = compare_runs([base, mixed])
    assert verdicts(comparison, "epoch_time_s") == {"trained on different CPUs"}
    assert verdicts(comparison, "train_samples_per_s") == {"trained on different CPUs"}
    assert verdicts(comparison, "test_accuracy") == {"more accurate"}
    assert any("more than one kind of CPU" in note for note in comparison.notes)
    summary = rebuild_report(mixed).run_dir / "summary.md"
    text = summary.read_text()
    assert "2 kinds of CPU (AMD EPYC; Intel Xeon)" in text and "epoch time (s) †" in text
    assert "test accuracy †" not in text
