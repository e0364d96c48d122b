"""Training one variant: it learns, it is reproducible, and a diverging loss fails cleanly."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from recurrent_mnist import register_cell, settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.training import TrainConfig, split_validation, steady_epoch_time, train_variant


@pytest.mark.slow
def test_training_on_the_sample_beats_chance_clearly(sample):
    result = train_variant(sample, TrainConfig(cell="gru", units=64, epochs=3, batch_size=64, seed=0), measure=False)
    row = result.row
    assert row["status"] == "ok"
    # Ten balanced classes: chance is 0.10.
    assert row["test_accuracy"] > 0.6, row
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


@pytest.mark.slow
def test_same_seed_same_numbers(tiny):
    config = TrainConfig(cell="lstm", units=8, epochs=1, batch_size=128, seed=3)
    first = train_variant(tiny, config, measure=False)
    second = train_variant(tiny, config, measure=False)
    assert first.row["test_accuracy"] == second.row["test_accuracy"]
    assert first.history[0]["loss"] == second.history[0]["loss"]


def test_validation_split_comes_from_training_data_only(sample):
    x_train, _, x_val, _ = split_validation(sample.x_train, sample.y_train, 0.1)
    assert len(x_val) == 400 and len(x_train) == 3600
    # No test image is used for validation; train and validation do not overlap.
    flat = {bytes(img) for img in sample.x_test.reshape(len(sample.x_test), -1)}
    assert not any(bytes(img) in flat for img in x_val.reshape(len(x_val), -1)[:50])
    assert split_validation(sample.x_train, sample.y_train, 0.1)[2].tobytes() == x_val.tobytes()


def test_a_training_subset_is_fixed_and_leaves_validation_alone(sample):
    x_all, _, x_val, _ = split_validation(sample.x_train, sample.y_train, 0.1)
    x_sub, y_sub, x_val_sub, _ = split_validation(sample.x_train, sample.y_train, 0.1, train_images=1000)
    assert len(x_sub) == len(y_sub) == 1000 and x_sub.tobytes() == x_all[:1000].tobytes()
    assert x_val_sub.tobytes() == x_val.tobytes()
    assert len(split_validation(sample.x_train, sample.y_train, 0.0, train_images=10)[0]) == 10
    with pytest.raises(ConfigError, match=r"`train_images=3601` is more than the 3,600 training images"):
        split_validation(sample.x_train, sample.y_train, 0.1, train_images=3601)
    assert "train_images" not in TrainConfig().identity()
    assert TrainConfig(train_images=1000).identity()["train_images"] == 1000


@pytest.mark.slow
def test_measurements_are_reported(tiny):
    small = dataclasses.replace(tiny, x_train=tiny.x_train[:512], y_train=tiny.y_train[:512])
    row = train_variant(small, TrainConfig(cell="simple_rnn", units=8, epochs=2, batch_size=128)).row
    for column in (
        "epoch_time_s",
        "first_epoch_s",
        "train_samples_per_s",
        "infer_samples_per_s",
        "latency_ms_p50",
        "latency_ms_p95",
        "variant_rss_growth_mb",
        "process_peak_rss_mb",
        "params",
        "best_val_accuracy",
    ):
        assert row[column] is not None and row[column] > 0, column
    assert row["latency_ms_p95"] >= row["latency_ms_p50"]
    assert row["process_peak_rss_mb"] > row["variant_rss_growth_mb"]
    assert row["steady_epochs"] == 1


def _epochs(*times_and_marks):
    return [{"epoch_time_s": t, "includes_compilation": c} for t, c in times_and_marks]


def test_a_steady_epoch_time_never_counts_an_epoch_that_compiled():
    assert steady_epoch_time(_epochs((10.0, True), (2.0, False), (4.0, False), (3.0, False))) == 3.0
    # Resumed from a checkpoint after epoch 2: the process that trained epoch 3 compiled again.
    assert steady_epoch_time(_epochs((10.0, True), (2.0, False), (9.0, True), (4.0, False))) == 3.0
    assert steady_epoch_time(_epochs((5.0, True))) is None
    assert steady_epoch_time([]) is None
    # A history from before the mark: its first epoch compiled.
    assert steady_epoch_time([{"epoch_time_s": 10.0}, {"epoch_time_s": 2.0}]) == 2.0


def test_one_epoch_gives_no_steady_state_time(tiny):
    result = train_variant(tiny, TrainConfig(cell="simple_rnn", units=4, epochs=1, batch_size=256), measure=False)
    assert result.row["epoch_time_s"] is None and result.row["train_samples_per_s"] is None
    assert result.row["steady_epochs"] == 0 and result.row["first_epoch_s"] > 0
    assert result.history[0]["includes_compilation"] is True


def test_a_variants_memory_is_its_own_also_when_variants_share_a_process(tiny):
    import numpy as np

    from recurrent_mnist.training import MemoryWatch

    with MemoryWatch() as idle:
        pass
    with MemoryWatch() as busy:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    del block
    assert idle.growth_mb < 16 and 60 < busy.growth_mb < 100
    # The second watch does not inherit the first's peak: the process peak does.
    with MemoryWatch() as after:
        pass
    assert after.growth_mb < 16 and after.method == "kernel peak since reset"


def test_where_the_kernel_peak_cannot_be_reset_the_memory_is_sampled(monkeypatch, tmp_path):
    import time

    import numpy as np

    from recurrent_mnist.training import MemoryWatch, measure

    monkeypatch.setattr(measure, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    with MemoryWatch() as watch:
        block = np.ones(64 * 2**20 // 8)
        time.sleep(0.1)
    del block
    assert watch.method == "sampled" and 60 < watch.growth_mb < 100


class _Exploding(keras.layers.Layer):
    """A recurrent stand-in whose output turns into NaN: a diverging training."""

    def __init__(self, units, return_sequences=False, **kwargs):
        kwargs.pop("dropout", None)
        kwargs.pop("recurrent_dropout", None)
        super().__init__(name=kwargs.get("name"))
        self.return_sequences = return_sequences
        self.inner = keras.layers.SimpleRNN(units, return_sequences=return_sequences)

    def call(self, x, training=False):
        return self.inner(x) * keras.ops.cast(np.nan, "float32")

    def compute_output_shape(self, shape):
        return self.inner.compute_output_shape(shape)

    def build(self, shape):
        self.inner.build(shape)


def test_a_nan_loss_fails_the_variant_with_the_reason(tiny):
    register_cell("exploding_for_test", lambda units, **kw: _Exploding(units, **kw), overwrite=True)
    result = train_variant(tiny, TrainConfig(cell="exploding_for_test", units=4, epochs=3), measure=False)
    assert result.row["status"] == "failed"
    assert "loss became nan in epoch 1" in result.row["error"]
    assert result.row["test_accuracy"] is None
    assert result.row["epochs"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("units", -1),
        ("batch_size", 0),
        ("layers", 0),
        ("dropout", 1.0),
        ("learning_rate", 0.0),
        ("seed", -1),
        ("cell", "nope"),
        ("validation_split", 1.0),
    ],
)
def test_invalid_training_configuration(field, value):
    with pytest.raises(ConfigError, match=field if field != "cell" else "Unknown cell"):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"cell": "lstm", "batch_size": 50}, True),  # a fast LSTM on one thread, up to AUTO_XLA_MAX_BATCH rows
        ({"cell": "lstm", "batch_size": 64}, True),
        ({"cell": "lstm", "batch_size": 128}, False),
        ({"cell": "gru", "batch_size": 50}, False),
        ({"cell": "keras_lstm", "batch_size": 50}, False),
        ({"cell": "lstm", "batch_size": 50, "recurrent_dropout": 0.1}, False),
        ({"cell": "lstm", "batch_size": 50, "strategy": "mirrored"}, False),
        ({"cell": "lstm", "batch_size": 50, "jit_compile": False}, False),
        ({"cell": "gru", "batch_size": 256, "jit_compile": True}, True),
    ],
)
def test_xla_is_chosen_where_it_was_measured_faster_unless_told(overrides, expected):
    assert TrainConfig(**overrides, threads=1).uses_xla() is expected


def test_no_automatic_xla_with_parallel_batch_chains():
    # XLA runs the step on one thread; the parallel chains put the other threads to work instead.
    config = TrainConfig(cell="lstm", batch_size=50, threads=2)
    assert config.model_kwargs()["parallel_chains"] == 2
    assert config.uses_xla() is False
    assert TrainConfig(cell="lstm", batch_size=50, threads=2, jit_compile=True).uses_xla() is True


def test_threads_default_to_the_usable_cores_and_are_recorded():
    config = TrainConfig()
    assert config.threads == settings.default_threads()
    assert config.columns()["threads"] == config.threads and config.identity()["threads"] == config.threads


@pytest.mark.slow
def test_a_variant_runs_tensorflow_on_its_configured_threads(tiny, monkeypatch):
    import tensorflow as tf

    from recurrent_mnist._worker import execute

    calls = []  # this test process keeps its own pools (conftest); record what the variant asks for
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda n: calls.append(("intra", n)))
    monkeypatch.setattr(tf.config.threading, "set_inter_op_parallelism_threads", lambda n: calls.append(("inter", n)))
    small = dataclasses.replace(tiny, x_train=tiny.x_train[:64], y_train=tiny.y_train[:64])
    config = TrainConfig(cell="simple_rnn", units=4, epochs=1, threads=3)
    row = execute({"train_config": config.to_dict(), "measure": False}, lambda event: None, dataset=small)["row"]
    assert calls == [("intra", 1), ("inter", 3)]  # bench's training processes, isolated or not
    assert row["threads"] == 3


def test_jit_compile_must_be_a_choice():
    with pytest.raises(ConfigError, match="jit_compile"):
        TrainConfig(jit_compile="yes")


@pytest.mark.slow
def test_an_automatic_xla_variant_trains_and_says_so(tiny):
    small = dataclasses.replace(tiny, x_train=tiny.x_train[:300], y_train=tiny.y_train[:300])
    row = train_variant(small, TrainConfig(cell="lstm", units=8, epochs=2, batch_size=50, threads=1), measure=False).row
    assert row["xla"] is True and row["status"] == "ok" and 0.0 <= row["test_accuracy"] <= 1.0


def test_progress_never_counts_past_the_epochs_steps():
    # 58 batches at 50 steps per execution: Keras reports the second call as ending at step 100.
    from recurrent_mnist.training.callbacks import Monitor

    events = []
    monitor = Monitor(events.append, epochs=1, steps=58, target=None)
    monitor.on_epoch_begin(0)
    monitor.on_train_batch_end(99, {"loss": 1.0, "accuracy": 0.5})
    assert [e["step"] for e in events if e["event"] == "batch"] == [58]
