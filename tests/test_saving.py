"""Model files: safe-mode loading, refused HDF5, damaged archives, crafted configurations."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.errors import ModelFileError
from recurrent_mnist.saving import load_model, save_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "gru.keras"
    model = RowSequenceClassifier("gru", units=4)
    model.build((None, 28, 28))
    save_model(model, path)
    return path


def test_round_trip(saved):
    model = load_model(saved)
    assert isinstance(model, RowSequenceClassifier)


def test_truncated_or_foreign_files(tmp_path, saved):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"not a \.keras model file"):
        load_model(truncated)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a zip archive"):
        load_model(text)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ModelFileError, match=r"has no config\.json"):
        load_model(other_zip)


def test_legacy_hdf5_is_refused_unless_trusted(tmp_path):
    legacy = tmp_path / "old.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ModelFileError, match=r"legacy HDF5 model.*`trust_legacy_h5=True`"):
        load_model(legacy)
    with pytest.raises(ModelFileError, match="cannot be loaded"):  # trusted, but this one is not a model
        load_model(legacy, trust_legacy_h5=True)


def _rewrite_config(source, target, change):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                data = json.dumps(change(json.loads(data))).encode()
            dst.writestr(item, data)


def test_a_config_naming_code_outside_keras_is_refused(tmp_path, saved):
    crafted = tmp_path / "crafted.keras"

    def point_at_os_system(config):
        config["module"] = "os"
        config["class_name"] = "system"
        config["registered_name"] = None
        return config

    _rewrite_config(saved, crafted, point_at_os_system)
    with pytest.raises(ModelFileError, match=str(crafted)):
        load_model(crafted)


def test_a_lambda_layer_is_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((28, 28))
    outputs = keras.layers.Dense(10)(keras.layers.Lambda(lambda x: x[:, -1, :] * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="refused by Keras's safe mode"):
        load_model(path)


def test_evaluate_command_refuses_and_explains(tmp_path, saved):
    crafted = tmp_path / "crafted.keras"
    _rewrite_config(
        saved, crafted, lambda c: {**c, "module": "subprocess", "class_name": "Popen", "registered_name": None}
    )
    result = CliRunner().invoke(app, ["evaluate", str(crafted), "--dataset", "mnist-sample"])
    assert result.exit_code == 1
    assert str(crafted) in result.output and "Traceback" not in result.output


def test_evaluate_reports_accuracy_and_a_confusion_matrix(tmp_path, sample):
    model = RowSequenceClassifier("simple_rnn", units=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(sample.x_train, sample.y_train, epochs=1, batch_size=128, verbose=0)
    path = save_model(model, tmp_path / "rnn.keras")
    result = CliRunner().invoke(app, ["evaluate", str(path), "--dataset", "mnist-sample", "--no-measure-inference"])
    assert result.exit_code == 0, result.output
    logits = model.predict(sample.x_test, verbose=0)
    expected = float((logits.argmax(axis=1) == sample.y_test).mean())
    assert f"accuracy {expected:.4f}" in result.output
    assert "Confusion matrix" in result.output


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    model = RowSequenceClassifier("gru", units=2)
    model.build((None, 28, 28))
    save_model(model, path)
    before = path.read_bytes()

    def broken_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError):
        save_model(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    np.testing.assert_equal(len(before) > 0, True)
