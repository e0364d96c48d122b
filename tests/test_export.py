"""`export_tflite` and `TFLiteClassifier`: the exported file gives the model's logits, one image per call."""

from __future__ import annotations

import numpy as np
import pytest

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.export import TFLiteClassifier, export_tflite


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn", "keras_lstm"])
def test_the_file_gives_the_models_logits(cell, images, tmp_path):
    # The fast layers unrolled, and a stock layer's while loop (frozen weights inside it).
    model = RowSequenceClassifier(cell, units=8, num_layers=2, dropout=0.5)
    expected = model.predict(images, verbose=0)
    path = export_tflite(model, tmp_path / "model.tflite")
    classify = TFLiteClassifier(path, threads=1)
    assert classify.image_shape == (28, 28) and classify.num_classes == 10
    np.testing.assert_allclose(classify(images), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(classify(images[:1, ..., None]), expected[:1], rtol=1e-5, atol=1e-5)
    assert classify(images[:0]).shape == (0, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]  # no temporary file left


def test_float_input_and_other_rows(images, tmp_path):
    model = RowSequenceClassifier("gru", units=4, rescale=None)
    model(images[:1])
    x = images[:, :14].astype("float32") / 255.0
    classify = TFLiteClassifier(export_tflite(model, tmp_path / "m.tflite", rows=14, dtype="float32"))
    np.testing.assert_allclose(classify(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"`images` must be \(N, 14, 28\), as the file was exported"):
        classify(images)


def test_mistakes_are_one_sentence(images, tmp_path):
    model = RowSequenceClassifier("lstm", units=4)
    with pytest.raises(ValueError, match="`model` must be built before it is exported"):
        export_tflite(model, tmp_path / "m.tflite")
    model(images[:1])
    with pytest.raises(ValueError, match=r"`rows` must be an integer of at least 1. Received: rows=0"):
        export_tflite(model, tmp_path / "m.tflite", rows=0)
    with pytest.raises(ValueError, match=r"`dtype` must be 'uint8' or 'float32'. Received: dtype='int8'"):
        export_tflite(model, tmp_path / "m.tflite", dtype="int8")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="no such file"):
        TFLiteClassifier(tmp_path / "missing.tflite")
    (tmp_path / "not.tflite").write_text("not a model")
    with pytest.raises(ValueError, match="is not a TensorFlow Lite file"):
        TFLiteClassifier(tmp_path / "not.tflite")


@pytest.mark.slow
def test_the_export_command_writes_a_checked_file_beside_the_model(images, tmp_path):
    from clirun import invoke

    from recurrent_mnist.saving import save_model

    model = RowSequenceClassifier("gru", units=8)
    expected = model.predict(images, verbose=0)
    save_model(model, tmp_path / "gru.keras")
    done = invoke("export", "gru.keras", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    line = " ".join(done.stdout.split())
    assert line.startswith("Wrote gru.tflite (") and "one 28 x 28 uint8 image per call" in line
    assert "on 8 random images its logits are the model's within" in line
    np.testing.assert_allclose(TFLiteClassifier(tmp_path / "gru.tflite")(images), expected, rtol=1e-5, atol=1e-5)

    done = invoke(
        "export", "gru.keras", "--output", "half.tflite", "--rows", "14", "--input-dtype", "float32", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    half = TFLiteClassifier(tmp_path / "half.tflite")
    assert half.image_shape == (14, 28) and half.dtype == np.float32


def test_the_export_command_refuses_in_one_sentence_and_writes_nothing(tmp_path):
    import keras
    from clirun import invoke

    missing = invoke("export", "missing.keras", cwd=tmp_path)
    assert missing.returncode == 1 and "missing.keras does not exist" in missing.stderr
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp_path / "dense.keras")
    other = invoke("export", "dense.keras", cwd=tmp_path)
    assert other.returncode == 1
    assert "dense.keras holds a Sequential; only a RowSequenceClassifier exports" in " ".join(other.stderr.split())
    rows = invoke("export", "dense.keras", "--rows", "0", cwd=tmp_path)
    assert rows.returncode == 2 and "--rows" in rows.stderr
    for done in (missing, other, rows):
        assert "Traceback" not in done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.keras"]
