"""TensorBoard logs of bench and train, read back with TensorBoard's own reader."""

from __future__ import annotations

import pytest

from recurrent_mnist.bench import BenchConfig, run_bench
from recurrent_mnist.errors import ConfigError

pytest.importorskip("tensorboard")


def _read(root):
    from tensorboard.backend.event_processing import event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    multiplexer = event_multiplexer.EventMultiplexer(size_guidance={"tensors": 0})
    multiplexer.AddRunsFromDirectory(str(root))
    multiplexer.Reload()

    def scalars(run, tag):
        return [float(tensor_util.make_ndarray(event.tensor_proto)) for event in multiplexer.Tensors(run, tag)]

    def plugin_data(run, tag):
        content = multiplexer.SummaryMetadata(run, tag).plugin_data.content
        return plugin_data_pb2.HParamsPluginData.FromString(content)

    return multiplexer.Runs(), scalars, plugin_data


@pytest.mark.slow
def test_bench_logs_every_variant_and_an_hparams_session_with_its_figures(tmp_path, tiny):
    config = BenchConfig.from_options(cells=("lstm", "gru"), dataset="mnist-sample", units=8, epochs=3, batch_size=256)
    result = run_bench(
        config, results_dir=tmp_path, run_name="run", isolate=False, dataset=tiny, tensorboard_dir=tmp_path / "tb"
    )
    runs, scalars, plugin_data = _read(tmp_path / "tb")
    experiment = plugin_data(".", "_hparams_/experiment").experiment
    assert {h.name for h in experiment.hparam_infos} >= {"cell", "units", "layers", "learning_rate", "seed"}
    assert "variant/test_accuracy" in {m.name.tag for m in experiment.metric_infos}
    for row in result.runs.to_dict("records"):
        name = f"run/{row['cell']}-seed{row['seed']}"
        assert len(scalars(f"{name}/train", "epoch_loss")) == 3
        assert len(scalars(f"{name}/validation", "epoch_accuracy")) == 3
        times = scalars(f"{name}/train", "epoch_time_s")
        assert scalars(f"{name}/train", "includes_compilation") == [1.0, 0.0, 0.0] and min(times) > 0
        session = plugin_data(name, "_hparams_/session_start_info").session_start_info
        assert session.hparams["cell"].string_value == row["cell"]
        assert session.hparams["units"].number_value == 8 and "keras" in session.hparams["framework"].string_value
        assert scalars(name, "variant/test_accuracy") == pytest.approx([row["test_accuracy"]])
        assert scalars(name, "variant/epoch_time_s") == pytest.approx([row["epoch_time_s"]])
        assert scalars(name, "variant/params") == [row["params"]]
    assert "." in runs


def test_a_tensorboard_folder_that_cannot_be_written_is_one_sentence_before_training(tmp_path, tiny):
    from recurrent_mnist.errors import ResultsError

    blocker = tmp_path / "file"
    blocker.write_text("")
    config = BenchConfig.from_options(cells=("simple_rnn",), dataset="mnist-sample", units=4, epochs=1)
    with pytest.raises(ResultsError, match=f"TensorBoard folder {blocker}.* cannot be created"):
        run_bench(config, results_dir=tmp_path, run_name="run", isolate=False, dataset=tiny, tensorboard_dir=blocker)
    assert not list((tmp_path / "run" / "variants").glob("*.json"))


def test_tensorboard_needs_the_tensorflow_backend(monkeypatch):
    import keras

    from recurrent_mnist.training import tensorboard

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="needs the TensorFlow backend"):
        tensorboard.check_tensorboard()


@pytest.mark.slow
def test_train_logs_its_model_for_tensorboard(tmp_path, tiny_data_dir):
    from recurrent_mnist_cli.app import app
    from typer.testing import CliRunner

    args = ["train", "--cell", "simple_rnn", "--units", "4", "--epochs", "2", "--batch-size", "256"]
    args += ["--dataset", "mnist", "--data-dir", tiny_data_dir, "--output", tmp_path / "model.keras"]
    result = CliRunner().invoke(app, [*map(str, args), "--tensorboard-dir", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    _, scalars, plugin_data = _read(tmp_path / "tb")
    assert len(scalars("model/train", "epoch_loss")) == 2
    session = plugin_data("model", "_hparams_/session_start_info").session_start_info
    assert session.hparams["cell"].string_value == "simple_rnn"
    assert 0 <= scalars("model", "variant/test_accuracy")[0] <= 1
