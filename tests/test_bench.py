"""The bench: every documented file and column, resuming, configuration keys, isolation."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from recurrent_mnist.bench import BenchConfig, BenchFolder, default_run_name, rebuild_report, run_bench
from recurrent_mnist.environment import code_identity, source_digest
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.reporting import RUNS_COLUMNS

TINY = dict(dataset="mnist-sample", units=8, epochs=2, batch_size=256)


@pytest.fixture
def small_sample(tiny):
    """600 digits at 14 x 14 (conftest's `tiny`) keep each variant to a second or two."""
    return tiny


def run(tmp_path, config, dataset, **kwargs):
    return run_bench(config, results_dir=tmp_path, run_name="run", isolate=False, dataset=dataset, **kwargs)


@pytest.mark.slow
def test_every_documented_file_and_column(tmp_path, small_sample):
    events = []
    config = BenchConfig.from_options(cells=("lstm", "gru", "simple_rnn"), seeds=(0, 1), **TINY)
    result = run(tmp_path, config, small_sample, progress=events.append)
    folder = tmp_path / "run"
    for name in (
        "runs.csv",
        "summary.csv",
        "summary.md",
        "history.csv",
        "environment.json",
        "learning_curves.png",
        "accuracy_vs_time.png",
    ):
        assert (folder / name).stat().st_size > 0, name
    runs = pd.read_csv(folder / "runs.csv")
    assert list(runs.columns[: len(RUNS_COLUMNS)]) == RUNS_COLUMNS
    assert len(runs) == 6 and set(runs["status"]) == {"ok"}
    assert runs.groupby("cell")["seed"].apply(sorted).to_dict() == {c: [0, 1] for c in ("gru", "lstm", "simple_rnn")}
    # Eight units over 14 features per row (the 14 x 14 digits), and a head of ten logits.
    assert runs.loc[runs.cell == "lstm", "params"].iloc[0] == 4 * (8 * (14 + 8) + 8) + 9 * 10
    assert runs.loc[runs.cell == "gru", "params"].iloc[0] == 3 * 8 * (14 + 8 + 2) + 9 * 10
    assert runs.loc[runs.cell == "simple_rnn", "params"].iloc[0] == 8 * (14 + 8) + 8 + 9 * 10
    assert (runs["test_accuracy"].between(0, 1)).all() and (runs["epoch_time_s"] > 0).all()
    assert (runs["dataset_sha256"] == small_sample.sha256).all()

    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["rank"]) == [1, 2, 3]
    assert summary["test_accuracy_mean"].is_monotonic_decreasing
    assert (summary["seeds"] == 2).all() and summary["test_accuracy_std"].notna().all()
    assert "± " in (folder / "summary.md").read_text()
    for metric in ("test_accuracy", "epoch_time_s"):  # two seeds: a Student-t interval around the mean
        low, mean, high = (summary[f"{metric}_{stat}"] for stat in ("ci95_low", "mean", "ci95_high"))
        assert ((low < mean) & (mean < high)).all(), metric
    assert "95 % CI" in (folder / "summary.md").read_text()

    history = pd.read_csv(folder / "history.csv")
    assert len(history) == 6 * 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s"} <= set(history.columns)

    environment = json.loads((folder / "environment.json").read_text())
    assert environment["dataset_sha256"] == small_sample.sha256 and environment["config"]["units"] == 8
    assert environment["code"]["source_sha256"] == source_digest()
    (trained_in,) = environment["environments"]  # one process trained them all, in one environment
    assert len(trained_in["variants"]) == 6 and trained_in["code"] == environment["code"]
    for key in ("python", "versions", "cpu", "threads", "devices", "keras_backend"):
        assert key in trained_in
    assert trained_in["versions"]["keras"] and environment["commands"]
    assert "mixes" not in (folder / "summary.md").read_text()

    assert [e["event"] for e in events].count("variant_end") == 6
    assert any(e["event"] == "epoch_end" for e in events)
    assert result.trained == 6 and result.kept == 0


@pytest.mark.slow
def test_rerun_resumes_and_keeps_finished_rows_unchanged(tmp_path, small_sample):
    config = BenchConfig.from_options(cells=("lstm", "gru"), **TINY)
    run(tmp_path, BenchConfig.from_options(cells=("lstm",), **TINY), small_sample)
    before = (tmp_path / "run" / "variants").glob("lstm-*.json")
    lstm_file = next(before)
    lstm_bytes = lstm_file.read_bytes()
    result = run(tmp_path, config, small_sample)
    assert (result.kept, result.trained) == (1, 1)
    assert lstm_file.read_bytes() == lstm_bytes
    tables = {name: (tmp_path / "run" / name).read_bytes() for name in ("runs.csv", "environment.json")}
    again = run(tmp_path, config, small_sample, command=["another", "command", "line"])
    assert (again.kept, again.trained) == (2, 0)
    runs = pd.read_csv(tmp_path / "run" / "runs.csv")
    assert sorted(runs["cell"]) == ["gru", "lstm"]
    # A pure resume rebuilds the same tables: nothing it did not train is recorded.
    assert tables == {name: (tmp_path / "run" / name).read_bytes() for name in tables}


@pytest.mark.slow
def test_a_failed_variant_is_kept_unless_retried(tmp_path, small_sample, monkeypatch):
    from recurrent_mnist import _worker

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    config = BenchConfig.from_options(cells=("simple_rnn",), **TINY)
    with monkeypatch.context() as patch:
        patch.setattr(_worker, "train_variant", broken)
        first = run(tmp_path, config, small_sample)
    assert first.failed == 1 and "RuntimeError: broken on purpose" in first.runs.loc[0, "error"]
    again = run(tmp_path, config, small_sample)
    assert (again.kept, again.trained, again.failed) == (1, 0, 1)
    retried = run(tmp_path, config, small_sample, retry_failed=True)
    assert (retried.kept, retried.trained, retried.failed) == (0, 1, 0)
    assert retried.runs.loc[0, "status"] == "ok"


@pytest.mark.slow
def test_another_configuration_never_mixes_into_a_run(tmp_path, small_sample):
    run(tmp_path, BenchConfig.from_options(cells=("gru",), **TINY), small_sample)
    changed = BenchConfig.from_options(cells=("gru",), **{**TINY, "epochs": 1})
    with pytest.raises(ResultsError, match=r"another configuration.*epochs: 1 now, 2 there"):
        run(tmp_path, changed, small_sample)
    result = run(tmp_path, changed, small_sample, fresh=True)
    assert result.trained == 1
    assert pd.read_csv(tmp_path / "run" / "runs.csv")["epochs"].tolist() == [1]


@pytest.mark.slow
def test_threads_are_part_of_a_runs_identity_and_of_every_row(tmp_path, small_sample):
    run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), threads=1, **TINY), small_sample)
    assert pd.read_csv(tmp_path / "run" / "runs.csv")["threads"].tolist() == [1]
    other = BenchConfig.from_options(cells=("simple_rnn",), threads=2, **TINY)
    with pytest.raises(ResultsError, match=r"another configuration.*threads: 2 now, 1 there"):
        run(tmp_path, other, small_sample)
    assert default_run_name(other, small_sample.sha256) != default_run_name(
        BenchConfig.from_options(cells=("simple_rnn",), threads=1, **TINY), small_sample.sha256
    )


@pytest.mark.slow
def test_a_run_trained_by_other_code_is_refused_naming_both_commits(tmp_path, small_sample, monkeypatch):
    from recurrent_mnist.bench import runner

    run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), **TINY), small_sample)
    ours = code_identity()
    theirs = {**ours, "source_sha256": "f" * 64, "git_commit": "b" * 40, "git_dirty": False}
    monkeypatch.setattr(runner, "code_identity", lambda imports=(): theirs)
    record = next((tmp_path / "run" / "variants").glob("*.json")).read_bytes()
    here = "commit bbbbbbbb (source ffffffff)"
    there = f"commit {ours['git_commit'][:8]}" if ours["git_commit"] else "no git checkout"
    with pytest.raises(
        ResultsError,
        match=rf"trained by other code \(recurrent-mnist .* at {there}.* there, .*{re.escape(here)} here\)",
    ):
        run(tmp_path, BenchConfig.from_options(cells=("simple_rnn", "gru"), **TINY), small_sample)
    assert next((tmp_path / "run" / "variants").glob("*.json")).read_bytes() == record
    assert len(list((tmp_path / "run" / "variants").glob("*.json"))) == 1
    # With nothing left to train, other code only rebuilds the tables: a published run stays rerunnable.
    runs = (tmp_path / "run" / "runs.csv").read_bytes()
    again = run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), **TINY), small_sample)
    assert (again.trained, again.kept) == (0, 1) and (tmp_path / "run" / "runs.csv").read_bytes() == runs


@pytest.mark.slow
def test_an_edited_import_module_is_other_code(tmp_path, small_sample, monkeypatch):
    module = tmp_path / "modules" / "cells_for_identity_test.py"
    module.parent.mkdir()
    module.write_text("WIDTH = 1\n")
    monkeypatch.syspath_prepend(str(module.parent))
    config = BenchConfig.from_options(cells=("simple_rnn",), **TINY)
    first = run(tmp_path, config, small_sample, imports=("cells_for_identity_test",))
    assert first.trained == 1
    module.write_text("WIDTH = 2\n")
    more = BenchConfig.from_options(cells=("simple_rnn", "gru"), **TINY)
    with pytest.raises(ResultsError, match=r"trained by other code .*cells_for_identity_test"):
        run(tmp_path, more, small_sample, imports=("cells_for_identity_test",))


@pytest.mark.slow
def test_a_run_that_mixes_environments_says_so_in_every_table(tmp_path, small_sample):
    run(tmp_path, BenchConfig.from_options(cells=("simple_rnn", "gru"), **TINY), small_sample)
    path = next((tmp_path / "run" / "variants").glob("gru-*.json"))
    record = json.loads(path.read_text())
    record["environment"]["versions"]["tensorflow"] = "0.0.0"
    path.write_text(json.dumps(record))
    result = rebuild_report(tmp_path / "run")
    (warning,) = result.warnings
    assert "mixes 2 environments" in warning and "versions.tensorflow" in warning
    assert "mixes 2 environments" in (tmp_path / "run" / "summary.md").read_text()
    environments = json.loads((tmp_path / "run" / "environment.json").read_text())["environments"]
    assert sorted(e["variants"][0] for e in environments) == ["gru-seed0", "simple_rnn-seed0"]


@pytest.mark.slow
def test_one_epoch_writes_no_steady_state_time_and_says_why(tmp_path, small_sample):
    result = run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), **{**TINY, "epochs": 1}), small_sample)
    runs = pd.read_csv(tmp_path / "run" / "runs.csv")
    assert runs["epoch_time_s"].isna().all() and (runs["first_epoch_s"] > 0).all()
    assert any("no steady-state epoch time" in w for w in result.warnings)
    assert "no steady-state epoch time" in (tmp_path / "run" / "summary.md").read_text()


@pytest.mark.slow
def test_an_interrupted_variant_is_marked_unfinished_until_a_rerun_trains_it(tmp_path, small_sample, monkeypatch):
    from recurrent_mnist import _worker

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = BenchConfig.from_options(cells=("simple_rnn",), **TINY)
    with monkeypatch.context() as patch:
        patch.setattr(_worker, "execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path, config, small_sample)
    folder = BenchFolder(tmp_path / "run")
    assert [name.split("-")[0] for name in folder.unfinished_variants()] == ["simple_rnn"]
    assert run(tmp_path, config, small_sample).trained == 1
    assert folder.unfinished_variants() == [] and not list(folder.variants.glob("*.running"))


def test_default_run_names_differ_by_configuration(small_sample):
    a = default_run_name(BenchConfig.from_options(**TINY), small_sample.sha256)
    b = default_run_name(BenchConfig.from_options(**{**TINY, "dropout": 0.1}), small_sample.sha256)
    assert a != b and a.startswith("mnist-sample-u8-l1-b256-e2-")
    # Cells and seeds are not part of the name: several processes can fill one run.
    assert a == default_run_name(BenchConfig.from_options(**TINY, cells=("gru",), seeds=(4,)), small_sample.sha256)


@pytest.mark.slow
def test_rebuild_report_from_variant_files(tmp_path, small_sample):
    run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), **TINY), small_sample)
    (tmp_path / "run" / "runs.csv").unlink()
    result = rebuild_report(tmp_path / "run")
    assert len(result.runs) == 1 and (tmp_path / "run" / "runs.csv").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cells": ()}, "`cells` is empty"),
        ({"seeds": ()}, "`seeds` is empty"),
        ({"dataset": "cifar"}, "`dataset` must be one of mnist"),
        ({"cells": ("lstm", "bogus")}, "Unknown cell 'bogus'"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_invalid_bench_configuration(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig.from_options(**{**TINY, **kwargs})


def test_unwritable_results_folder_is_one_sentence(tmp_path, small_sample):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsError, match=f"results folder {blocker}.*cannot be created or written"):
        run_bench(
            BenchConfig.from_options(**TINY), results_dir=blocker, run_name="run", isolate=False, dataset=small_sample
        )


@pytest.mark.slow
def test_isolated_variant_runs_in_its_own_process(tmp_path, tiny_data_dir):
    config = BenchConfig.from_options(cells=("gru",), **{**TINY, "dataset": "mnist", "epochs": 1})
    result = run_bench(config, data_dir=tiny_data_dir, results_dir=tmp_path, run_name="iso")
    row = result.runs.iloc[0]
    assert row["status"] == "ok" and bool(row["isolated"])
    assert row["process_peak_rss_mb"] > 100  # a process of its own, with TensorFlow loaded
    assert 0 < row["variant_rss_growth_mb"] < row["process_peak_rss_mb"]
    assert (tmp_path / "iso" / "logs").is_dir()


@pytest.mark.slow
def test_results_are_readable_by_others_as_with_a_plain_open(tmp_path, small_sample):
    import os
    import stat

    run(tmp_path, BenchConfig.from_options(cells=("simple_rnn",), **TINY), small_sample)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("runs.csv", "summary.md", "environment.json"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o666 & ~mask, (name, oct(mode))


@pytest.mark.slow
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (1, True), (3, True)])
def test_matched_units_bring_every_cell_within_five_percent_of_the_first(layers, bidirectional):
    from recurrent_mnist.model import RowSequenceClassifier
    from recurrent_mnist.sizing import matched_units, parameter_count

    shape = dict(layers=layers, bidirectional=bidirectional, image_shape=(28, 28), num_classes=10)
    units = matched_units(("lstm", "gru", "simple_rnn"), 64, **shape)
    assert units["lstm"] == 64 and units["lstm"] < units["gru"] < units["simple_rnn"]
    counts = {cell: parameter_count(cell, value, **shape) for cell, value in units.items()}
    assert all(abs(count / counts["lstm"] - 1) < 0.05 for count in counts.values()), counts
    # The counts are the model's own, stacking, bidirectional layers and head included.
    model = RowSequenceClassifier("gru", units=units["gru"], num_layers=layers, bidirectional=bidirectional)
    model.build((None, 28, 28))
    assert model.count_params() == counts["gru"]
    # Closest: one unit more or less is further from the target.
    for step in (-1, 1):
        assert abs(parameter_count("gru", units["gru"] + step, **shape) - counts["lstm"]) >= abs(
            counts["gru"] - counts["lstm"]
        )


@pytest.mark.slow
def test_a_bench_at_matched_parameters_records_units_and_says_so(tmp_path, small_sample):
    config = BenchConfig.from_options(cells=("lstm", "simple_rnn"), match_params=True, **TINY)
    result = run(tmp_path, config, small_sample)
    runs = result.runs.set_index("cell")
    assert runs.loc["lstm", "units"] == 8 and runs.loc["simple_rnn", "units"] > 8
    assert abs(runs.loc["simple_rnn", "params"] / runs.loc["lstm", "params"] - 1) < 0.05
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "matched parameter counts" in summary and f"simple_rnn: {runs.loc['simple_rnn', 'units']} units" in summary
    identity = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert identity["match_params"] and identity["per_cell"]["simple_rnn"]["units"] == runs.loc["simple_rnn", "units"]


@pytest.mark.slow
def test_units_per_cell_are_part_of_the_identity(tmp_path, small_sample):
    config = BenchConfig.from_options(cells=("gru", "simple_rnn"), units_per_cell={"gru": 6}, **TINY)
    result = run(tmp_path, config, small_sample)
    assert result.runs.set_index("cell")["units"].to_dict() == {"gru": 6, "simple_rnn": 8}
    other = BenchConfig.from_options(cells=("gru", "simple_rnn"), units_per_cell={"gru": 7}, **TINY)
    with pytest.raises(ResultsError, match=r"per_cell: \{'gru': \{'units': 7\}\} now, \{'gru': \{'units': 6\}\} there"):
        run(tmp_path, other, small_sample)


def _tune_folder(path, per_cell):
    path.mkdir(parents=True)
    (path / "best_hyperparameters.json").write_text(
        json.dumps({"objective": "val_accuracy", "per_cell": per_cell, "hyperparameters": {}})
    )
    return path


@pytest.mark.slow
def test_each_cell_trains_with_its_best_trial_from_a_search(tmp_path, small_sample):
    tuned = _tune_folder(
        tmp_path / "search",
        {
            "gru": {
                "trial_id": "03",
                "score": 0.9,
                "cell": "gru",
                "units": 6,
                "layers": 1,
                "bidirectional": True,
                "dropout": 0.1,
                "learning_rate": 0.002,
                "batch_size": 128,
            },
            "lstm": {
                "trial_id": "07",
                "score": 0.8,
                "cell": "lstm",
                "units": 5.0,
                "layers": 2,
                "bidirectional": False,
                "dropout": 0.0,
                "learning_rate": 0.001,
                "batch_size": 256,
            },
        },
    )
    config = BenchConfig.from_options(from_tune=tuned, **{**TINY, "units": None, "batch_size": None, "epochs": 1})
    assert config.cells == ("gru", "lstm")
    result = run(tmp_path, config, small_sample)
    runs = result.runs.set_index("cell")
    assert runs.loc["gru", ["units", "layers", "bidirectional", "batch_size"]].tolist() == [6, 1, True, 128]
    assert runs.loc["lstm", ["units", "layers", "learning_rate"]].tolist() == [5, 2, 0.001]
    identity = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert identity["from_tune"]["trials"] == {"gru": "03", "lstm": "07"} and identity["from_tune"]["run"] == "search"
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "best configuration from the search search" in summary and "gru trial 03" in summary


def test_a_search_that_is_not_finished_or_lacks_a_cell_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match=r"`from_tune=.*empty` is not a finished search"):
        (tmp_path / "empty").mkdir()
        BenchConfig.from_options(from_tune=tmp_path / "empty")
    tuned = _tune_folder(tmp_path / "search", {"gru": {"trial_id": "1", "units": 8}})
    with pytest.raises(ConfigError, match=r"holds no finished trial of simple_rnn \(it has: gru\)"):
        BenchConfig.from_options(from_tune=tuned, cells=("gru", "simple_rnn"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(cells=("lstm",), units_per_cell={"gru": 8}), r"`units` names gru, which is not compared"),
        (dict(cells=("lstm",), match_params=True), r"`match_params` needs two cells or more"),
        (dict(cells=("lstm", "gru"), units_per_cell={"gru": 0}), r"`units` must be an integer >= 1"),
    ],
)
def test_bad_sizes_are_one_sentence_naming_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        BenchConfig.from_options(**options)
