"""`recurrent-mnist train` and `evaluate`: options, the record train leaves beside the model, and what evaluate
reads from it and writes."""

from __future__ import annotations

import json
import sys

import pytest
from clirun import PLUGINS
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

import recurrent_mnist.single
from recurrent_mnist import RowSequenceClassifier, cell_names, cells
from recurrent_mnist.saving import save_model

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture
def captured_train(monkeypatch, tmp_path):
    """Replaces the training with one that records the configuration it was given."""
    calls = []

    def fake_train_and_save(dataset_name, config, output, *, data_dir=None, emit=None, tensorboard_dir=None):
        calls.append((dataset_name, config, output))
        row = {"status": "ok", "test_accuracy": 0.5, "test_loss": 1.0}
        return recurrent_mnist.single.TrainOutcome(row, [], output, tmp_path / "h.csv")

    monkeypatch.setattr(recurrent_mnist.single, "train_and_save", fake_train_and_save)
    return calls


def test_train_takes_a_preset_and_options_override_it(captured_train):
    result = invoke("train", "--preset", "tutorial", "--epochs", "2")
    assert result.exit_code == 0, result.output
    _, config, output = captured_train[0]
    assert (config.cell, config.units, config.batch_size, config.learning_rate, config.epochs) == (
        "lstm",
        100,
        50,
        1e-4,
        2,
    )
    assert str(output) == "model.keras"
    assert invoke("train", "--preset", "tutorial", "--cell", "gru").exit_code == 0
    assert captured_train[1][1].cell == "gru"


def test_train_takes_every_built_in_and_registered_cell(captured_train, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    for cell in ("keras_simple_rnn", "KERAS-GRU"):
        result = invoke("train", "--cell", cell)
        assert result.exit_code == 0, result.output
    result = invoke("train", "--cell", "plain_gru", "--import", "rm_custom_cells")
    assert result.exit_code == 0, result.output
    assert [config.cell for _, config, _ in captured_train] == ["keras_simple_rnn", "keras_gru", "plain_gru"]
    unknown = invoke("train", "--cell", "transformer")
    assert unknown.exit_code == 2 and "Unknown cell 'transformer'" in unknown.output


@pytest.mark.slow
def test_train_records_the_data_set_and_evaluate_scores_on_it_and_writes_json(tmp_path, tiny_data_dir):
    model = tmp_path / "m.keras"
    train = invoke(
        "train", "--cell", "gru", "--units", "4", "--epochs", "1", "--dataset", "mnist",
        "--data-dir", tiny_data_dir, "--output", model,
    )  # fmt: skip
    assert train.exit_code == 0, train.output
    assert "is not MNIST as published" in flat(train.output)  # the tiny digits are a slice: unverified
    record = json.loads((tmp_path / "m.metrics.json").read_text())
    assert record["dataset"]["name"] == "mnist" and record["dataset"]["verified"] is False

    # No --dataset: the record's. The evaluation is shown, and written beside the model.
    result = invoke("evaluate", model, "--data-dir", tiny_data_dir)
    assert result.exit_code == 0, result.output
    assert f"{model} on mnist test (200 images)" in flat(result.output)
    assert "images/s; single-image latency" in result.output and "Confusion matrix" in result.output
    written = json.loads((tmp_path / "m.evaluation.json").read_text())
    assert written["dataset"]["name"] == "mnist" and written["samples"] == 200
    assert written["test_accuracy"] == pytest.approx(record["metrics"]["test_accuracy"], abs=1e-6)
    assert written["infer_samples_per_s"] > 0 and written["latency_ms_p50"] > 0
    assert sum(map(sum, written["confusion"])) == 200 and written["environment"]["versions"]["keras"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # written atomically

    elsewhere = tmp_path / "out" / "e.json"
    result = invoke("evaluate", model, "--data-dir", tiny_data_dir, "--no-measure-inference", "--output", elsewhere)
    assert result.exit_code == 0, result.output
    assert json.loads(elsewhere.read_text())["infer_samples_per_s"] is None

    bad = invoke("evaluate", model, "--data-dir", tiny_data_dir, "--output", tmp_path / "e.txt")
    assert bad.exit_code == 2 and "--output" in bad.output and "must be a .json file" in flat(bad.output)

    (tmp_path / "m.metrics.json").unlink()
    unrecorded = invoke("evaluate", model, "--data-dir", tiny_data_dir)
    assert unrecorded.exit_code == 2, unrecorded.output
    assert "'--dataset'" in unrecorded.output and "is not recorded (no m.metrics.json beside it)" in flat(
        unrecorded.output
    )
    assert "Traceback" not in unrecorded.output


@pytest.mark.parametrize("dataset", [[], ["--dataset", "mnist-sample"]])
def test_a_missing_model_is_named_before_any_data_is_read(tmp_path, monkeypatch, dataset):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the model was checked")

    monkeypatch.setattr(recurrent_mnist.single, "load", no_data)
    result = invoke("evaluate", tmp_path / "missing.keras", *dataset)
    assert result.exit_code == 1, result.output
    assert "missing.keras does not exist" in flat(result.output) and "Traceback" not in result.output


def test_a_model_with_a_custom_cell_needs_and_takes_import(tmp_path, tiny, tiny_data_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import rm_custom_cells  # noqa: F401 - registers plain_gru, as the training process did

    model = RowSequenceClassifier("plain_gru", units=4)
    model(tiny.x_test[:2])
    path = save_model(model, tmp_path / "custom.keras")
    # A new process knows nothing of the cell: forget it here too, and the module that registered it.
    monkeypatch.delitem(cells._FACTORIES, "plain_gru")
    monkeypatch.delitem(cell_names._NAMES, "plain_gru")
    monkeypatch.delitem(sys.modules, "rm_custom_cells")
    args = ["evaluate", path, "--dataset", "mnist", "--data-dir", tiny_data_dir, "--no-measure-inference"]
    without = invoke(*args)
    assert without.exit_code == 1 and "Traceback" not in without.output
    assert "Unknown cell 'plain_gru'" in flat(without.output) and "registers it in --import" in flat(without.output)
    with_import = invoke(*args, "--import", "rm_custom_cells")
    assert with_import.exit_code == 0, with_import.output
    assert "on mnist test (200 images)" in flat(with_import.output)
