"""Model files: every combination of options saved and loaded in a new process, safe-mode loading, refused HDF5,
damaged archives, crafted configurations."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
import pytest
from clirun import PLUGINS, cli_env
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.errors import ModelFileError
from recurrent_mnist.saving import load_model, save_model

# Every option of the constructor, each with the values the matrix tries. A cell is a name (the fast layers,
# the plain Keras ones, a registered custom cell) or a layer instance of each Keras RNN class; with an instance
# the dropouts go to the layer, as the model asks. The dtype is Keras's global policy while the model is made.
OPTIONS = {
    "cell": [
        "lstm",
        "gru",
        "simple_rnn",
        "keras_lstm",
        "keras_gru",
        "keras_simple_rnn",
        "indrnn",
        "keras_indrnn",
        "relu_rnn",  # tests/plugins/rm_custom_cell.py
        keras.layers.LSTM,
        keras.layers.GRU,
        keras.layers.SimpleRNN,
    ],
    "num_layers": [1, 2, 3],
    "bidirectional": [False, True],
    "dropout": [0.0, 0.25],
    "recurrent_dropout": [0.0, 0.1],
    "rescale": [1.0 / 255.0, None, 0.5],
    "num_classes": [10, 1, 3],
    "dtype": ["float32", "mixed_bfloat16", "mixed_float16"],
}
# What shapes the saved layers: every combination of these is in the matrix.
STRUCTURE = ("cell", "num_layers", "bidirectional")


def _possible(row: dict) -> bool:
    """IndRNN has no recurrent dropout (its constructor refuses it): the one combination no model can have."""
    return not (row["cell"] in ("indrnn", "keras_indrnn") and row["recurrent_dropout"])


def _pairs(row: dict) -> set:
    return {((a, repr(row[a])), (b, repr(row[b]))) for a, b in itertools.combinations(OPTIONS, 2)}


def option_matrix() -> list[dict]:
    """Every combination of the structural options (72 rows), each completed with the values of the other
    options that meet the most pairs not yet met: every pair of values of any two options is in some row."""
    rest = [name for name in OPTIONS if name not in STRUCTURE]
    uncovered = {
        ((a, repr(value_a)), (b, repr(value_b)))
        for a, b in itertools.combinations(OPTIONS, 2)
        for value_a in OPTIONS[a]
        for value_b in OPTIONS[b]
        if _possible({"cell": None, "recurrent_dropout": 0, a: value_a, b: value_b})
    }
    rows = []
    for structure in itertools.product(*(OPTIONS[name] for name in STRUCTURE)):
        candidates = [
            {**dict(zip(STRUCTURE, structure, strict=True)), **dict(zip(rest, values, strict=True))}
            for values in itertools.product(*(OPTIONS[name] for name in rest))
        ]
        candidates = [row for row in candidates if _possible(row)]
        rows.append(max(candidates, key=lambda row: len(_pairs(row) & uncovered)))
        uncovered -= _pairs(rows[-1])
    assert not uncovered, f"pairs no row has: {sorted(uncovered)[:5]}"
    return rows


@contextlib.contextmanager
def _global_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _model(row) -> RowSequenceClassifier:
    options = {name: row[name] for name in ("num_layers", "bidirectional", "rescale", "num_classes")}
    dropouts = {"dropout": row["dropout"], "recurrent_dropout": row["recurrent_dropout"]}
    with _global_policy(row["dtype"]):
        if isinstance(row["cell"], str):
            return RowSequenceClassifier(row["cell"], units=3, **dropouts, **options)
        return RowSequenceClassifier(row["cell"](2, **dropouts), **options)


def _describe(row) -> str:
    return ", ".join(f"{name}={getattr(value, '__name__', value)!r}" for name, value in row.items())


@pytest.mark.slow
def test_every_combination_of_options_saves_and_loads_in_a_new_process(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import rm_custom_cell  # noqa: F401 - registers "relu_rnn"

    rows = option_matrix()
    assert len(rows) == 72 and {row["cell"] for row in rows} == set(OPTIONS["cell"])
    images = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    expected = {}
    for i, row in enumerate(rows):
        model = _model(row)
        expected[f"m{i}"] = np.asarray(model(images))
        assert expected[f"m{i}"].dtype == np.float32, _describe(row)  # logits in float32 under every policy
        model.save(tmp_path / f"m{i}.keras")
    # One trained model, so that the optimizer's state is in a file too.
    trained = RowSequenceClassifier("gru", units=3, num_layers=2, bidirectional=True)
    trained.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trained.train_on_batch(images, np.array([0, 1, 2]))
    expected["trained"] = np.asarray(trained(images))
    trained.save(tmp_path / "trained.keras")
    np.save(tmp_path / "images.npy", images)

    script = textwrap.dedent(f"""
        import json, pathlib, numpy as np, keras
        import recurrent_mnist, rm_custom_cell  # register the classes and the custom cell
        folder = pathlib.Path({str(tmp_path)!r})
        images = np.load(folder / "images.npy")
        outputs, iterations = {{}}, {{}}
        for path in sorted(folder.glob("*.keras")):
            model = keras.saving.load_model(path)  # safe_mode=True
            assert type(model) is recurrent_mnist.RowSequenceClassifier, type(model)
            outputs[path.stem] = np.asarray(model(images))
            optimizer = getattr(model, "optimizer", None)  # only the trained model was compiled
            iterations[path.stem] = None if optimizer is None else int(optimizer.iterations)
        np.savez(folder / "outputs.npz", **outputs)
        (folder / "iterations.json").write_text(json.dumps(iterations))
    """)
    run = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    differ = [
        _describe(rows[i]) if key.startswith("m") else key
        for i, key in ((int(k[1:]) if k.startswith("m") else -1, k) for k in expected)
        if not np.array_equal(outputs[key], expected[key])
    ]
    assert not differ, f"{len(differ)} models predict otherwise once loaded: {differ[:5]}"
    iterations = json.loads((tmp_path / "iterations.json").read_text())
    assert iterations == {key: 1 if key == "trained" else None for key in expected}


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


@pytest.mark.slow
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
