"""Memory across variants and trials in one process: `training.variant.release_models`, bench's in-process
variants and tune's trials, and benchmarks/memory_growth.py."""

from __future__ import annotations

import importlib.util
import json
import sys
import weakref
from pathlib import Path

import pandas as pd
import pytest

from recurrent_mnist.training import TrainConfig, train_variant
from recurrent_mnist.training import variant as variant_module
from recurrent_mnist.training.variant import release_models

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _tiny_config(**overrides) -> TrainConfig:
    return TrainConfig(**{"cell": "gru", "units": 4, "epochs": 1, "batch_size": 64, "train_images": 256, **overrides})


def test_release_models_removes_only_the_backward_passes_registered_in_its_block():
    import tensorflow as tf

    @tf.custom_gradient
    def double(x):
        return 2.0 * x, lambda dy: 2.0 * dy

    tf.function(double).get_concrete_function(tf.TensorSpec([None]))  # registered before the block: kept
    kept = variant_module._custom_gradients()
    assert kept
    with release_models(clear_session=False):
        tf.function(double).get_concrete_function(tf.TensorSpec([None]))
        assert len(variant_module._custom_gradients() - kept) == 1
    assert variant_module._custom_gradients() == kept


@pytest.mark.slow
def test_release_models_drops_what_the_block_registered_and_frees_its_model(tiny):
    before = variant_module._custom_gradients()
    with release_models():
        result = train_variant(tiny, _tiny_config(), measure=False, keep_model=True)
        model = weakref.ref(result.model)
        # The fast layer's backward pass, registered by every function that traced it: what held the graphs.
        assert variant_module._custom_gradients() - before
        del result
    assert variant_module._custom_gradients() == before
    assert model() is None


@pytest.mark.slow
def test_a_model_kept_from_the_block_still_trains_and_predicts(tiny):
    with release_models(clear_session=False):
        model = train_variant(tiny, _tiny_config(cell="lstm"), measure=False, keep_model=True).model
    history = model.fit(tiny.x_train[:128], tiny.y_train[:128], batch_size=64, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert model.predict(tiny.x_test[:8], verbose=0).shape == (8, tiny.num_classes)


def _script(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_memory_script_finds_nothing_left_alive_by_variants_and_trials(tmp_path, tiny_data_dir):
    memory_growth = _script("memory_growth")
    args = ["--variants", "2", "--trials", "2", "--cells", "gru", "simple_rnn", "--units", "4", "--settle", "1"]
    args += ["--dataset", "mnist", "--data-dir", str(tiny_data_dir), "--no-measure-inference", "--threads", "1"]
    assert memory_growth.main([*args, "--out", str(tmp_path), "--name", "tiny"]) == 0

    table = (tmp_path / "tiny.md").read_text()
    assert "command: `python benchmarks/memory_growth.py --variants 2 --trials 2" in table
    assert "| variants | 2 | 0 |" in table and "| trials | 2 | 0 |" in table
    record = json.loads((tmp_path / "tiny.json").read_text())
    assert {"command", "code", "cpu", "code_identity", "summary", "rows"} <= set(record)
    assert [line["part"] for line in record["summary"]] == ["variants", "trials"]
    for line in record["summary"]:
        assert {"rss_first_mb", "rss_last_mb", "growth_per_item_mb", "goal_met"} <= set(line)
    rows = pd.read_csv(tmp_path / "tiny.csv")
    assert {"part", "index", "rss_mb", "rss_collected_mb", "process_peak_rss_mb", "keras_models", "graphs"} <= set(
        rows.columns
    )
    variants, trials = rows[rows["part"] == "variants"], rows[rows["part"] == "trials"]
    assert len(variants) == 2 and len(trials) == 2
    # A finished variant or trial leaves neither its model nor its traced graphs behind: the counts stay put.
    assert (variants["keras_models"] == 0).all() and (trials["keras_models"] == 0).all()
    assert variants["graphs"].nunique() == 1 and trials["graphs"].nunique() == 1
