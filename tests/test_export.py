"""`export_tflite` and `TFLiteClassifier`: the exported file gives the model's logits, one image per call."""

from __future__ import annotations

import numpy as np
import pytest

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.export import TFLiteClassifier, export_tflite


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
