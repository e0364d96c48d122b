"""The PyTorch peer (`recurrent_mnist.torch_peer`) and `bench --frameworks keras torch`.

Tests that need PyTorch skip without it; the refusals need none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recurrent_mnist import torch_peer
from recurrent_mnist.bench import BenchConfig, run_bench
from recurrent_mnist.bench.folder import variant_key
from recurrent_mnist.compare import compare_runs
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.reporting import MEASURED
from recurrent_mnist.runs.folder import digest

TINY = dict(dataset="mnist-sample", units=8, epochs=2, batch_size=256)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _peer(cell, **kwargs):
    from recurrent_mnist.torch_peer.model import PeerClassifier

    return PeerClassifier(cell, features=14, units=6, **kwargs)


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, False), (1, True), (2, True)])
def test_the_peer_has_kerass_parameter_count(torch, cell, layers, bidirectional):
    from recurrent_mnist.sizing import parameter_count

    peer = _peer(cell, num_layers=layers, bidirectional=bidirectional)
    keras_count = parameter_count(
        cell, 6, layers=layers, bidirectional=bidirectional, image_shape=(14, 14), num_classes=10
    )
    assert sum(p.numel() for p in peer.parameters()) == keras_count


def test_the_initial_weights_follow_kerass_scheme(torch):
    peer = _peer("lstm", num_layers=2, bidirectional=True)
    units = 6
    for layer in peer.recurrent:
        for suffix in ("", "_reverse"):
            bias = getattr(layer, f"bias_ih_l0{suffix}")
            assert bias[units : 2 * units].eq(1).all() and bias[:units].eq(0).all() and bias[2 * units :].eq(0).all()
            # PyTorch's second bias is a constant zero, not a parameter: Keras's LSTM has one bias.
            assert getattr(layer, f"bias_hh_l0{suffix}").eq(0).all()
            assert f"bias_hh_l0{suffix}" not in dict(layer.named_parameters())
            recurrent = getattr(layer, f"weight_hh_l0{suffix}").detach()  # (4U, U), orthonormal columns
            assert torch.allclose(recurrent.T @ recurrent, torch.eye(units), atol=1e-5)
            kernel = getattr(layer, f"weight_ih_l0{suffix}").detach()  # Glorot-uniform over (fan_in, 4U)
            assert kernel.abs().max() <= (6 / (kernel.shape[1] + kernel.shape[0])) ** 0.5
    assert peer.head.bias.eq(0).all()
    assert peer.head.weight.abs().max() <= (6 / (peer.head.weight.shape[0] + peer.head.weight.shape[1])) ** 0.5
    gru = _peer("gru")
    assert all(getattr(gru.recurrent[0], name).eq(0).all() for name in ("bias_ih_l0", "bias_hh_l0"))


def _gate_order(matrix, cell):
    """Keras's GRU gates are (z, r, h) along the last axis, PyTorch's (r, z, n)."""
    if cell != "gru":
        return matrix
    z, r, h = np.split(matrix, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _copy_keras_weights(model, peer, torch):
    with torch.no_grad():
        for keras_layer, layer in zip(model.recurrent_layers, peer.recurrent, strict=True):
            parts = (
                [keras_layer.forward_layer, keras_layer.backward_layer]
                if peer.recurrent[0].bidirectional
                else [keras_layer]
            )
            for part, suffix in zip(parts, ("", "_reverse"), strict=False):
                kernel, recurrent, bias = (np.asarray(w) for w in part.get_weights())
                input_bias, recurrent_bias = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
                for name, value in (
                    ("weight_ih", _gate_order(kernel, peer.cell).T),
                    ("weight_hh", _gate_order(recurrent, peer.cell).T),
                    ("bias_ih", _gate_order(input_bias, peer.cell)),
                    ("bias_hh", _gate_order(recurrent_bias, peer.cell)),
                ):
                    getattr(layer, f"{name}_l0{suffix}").copy_(torch.from_numpy(np.ascontiguousarray(value)))
        kernel, bias = model.head.get_weights()
        peer.head.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
        peer.head.bias.copy_(torch.from_numpy(bias))


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_with_kerass_weights_the_peer_computes_kerass_logits(torch, cell):
    # Stacked and bidirectional: the layer order, the gates, the biases and the last hidden state all line up.
    from recurrent_mnist.model import RowSequenceClassifier

    rng = np.random.default_rng(0)
    model = RowSequenceClassifier(cell, units=6, num_layers=2, bidirectional=True)
    model.build((None, 14, 14))
    for weight in model.weights:
        weight.assign(rng.normal(scale=0.3, size=weight.shape).astype("float32"))
    peer = _peer(cell, num_layers=2, bidirectional=True).eval()
    _copy_keras_weights(model, peer, torch)
    images = rng.integers(0, 256, size=(5, 14, 14), dtype=np.uint8)
    np.testing.assert_allclose(peer(torch.from_numpy(images)).detach().numpy(), model(images), atol=1e-5)


def test_early_stopping_stops_and_restores_as_keras_does(torch):
    import keras

    from recurrent_mnist.torch_peer.train import _EarlyStopping

    class Model:  # what keras.callbacks.EarlyStopping touches: the weights are the epoch they come from
        stop_training = False

        def get_weights(self):
            return [self.epoch]

        def set_weights(self, weights):
            self.restored = weights[0]

    peer = _peer("simple_rnn")
    for accuracies in ([0.5, 0.4, 0.6, 0.6, 0.3], [0.1, 0.2, 0.3], [0.3, 0.3, 0.3, 0.9], [0.5, 0.4]):
        model = Model()
        callback = keras.callbacks.EarlyStopping("val_accuracy", patience=2, mode="max", restore_best_weights=True)
        callback.set_model(model)
        callback.on_train_begin()
        for model.epoch, accuracy in enumerate(accuracies, start=1):
            callback.on_epoch_end(model.epoch - 1, {"val_accuracy": accuracy})
            if model.stop_training:
                break
        callback.on_train_end()

        stopper = _EarlyStopping(2)
        for epoch, accuracy in enumerate(accuracies, start=1):
            with torch.no_grad():
                peer.head.bias.fill_(epoch)  # the weights of this epoch
            if stopper.stop(peer, epoch, accuracy):
                break
        stopper.restore(peer)
        assert (epoch, int(peer.head.bias[0])) == (model.epoch, model.restored), accuracies


# --------------------------------------------------------------------------- bench


def test_the_peer_modules_load_neither_keras_nor_tensorflow():
    code = (
        "import importlib.util, sys, recurrent_mnist.torch_peer, recurrent_mnist.torch_peer.worker\n"
        "if importlib.util.find_spec('torch'):\n"
        "    import recurrent_mnist.torch_peer.model, recurrent_mnist.torch_peer.train\n"
        "from recurrent_mnist.training import TrainConfig, split_validation, steady_epoch_time, MemoryWatch\n"
        "TrainConfig(cell='gru')\n"
        "print([m for m in ('keras', 'tensorflow') if m in sys.modules])"
    )
    env = {**os.environ, "RECURRENT_MNIST_DEFER_KERAS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_keras_only_runs_keep_their_identity_and_keys():
    config = BenchConfig.from_options(cells=("lstm", "gru"), **TINY)
    assert config.frameworks == ("keras",) and "frameworks" not in config.shared()
    variant = config.variants()[0]
    before = digest({"shared": config.shared(), "dataset": "abc", "cell": variant.cell, "seed": variant.seed})
    assert variant_key(config.shared(), "abc", variant) == before  # the key a run had before frameworks
    assert variant_key(config.shared(), "abc", variant, "torch") != before


def test_frameworks_join_the_identity_only_when_not_the_default(monkeypatch):
    monkeypatch.setattr(torch_peer, "torch_installed", lambda: True)
    both = BenchConfig.from_options(cells=("lstm",), frameworks=("torch", "keras"), **TINY)
    assert both.shared()["frameworks"] == ["keras", "torch"]
    assert [(f, v.cell) for f, v in both.framework_variants()] == [("torch", "lstm"), ("keras", "lstm")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(frameworks=("jax",)), r"`frameworks` must name one or more of keras, torch"),
        (
            dict(cells=("keras_lstm",), frameworks=("torch",)),
            r"has the cells lstm, gru, simple_rnn only, not keras_lstm",
        ),
        (dict(recurrent_dropout=0.2, frameworks=("keras", "torch")), r"no recurrent dropout .* cannot be matched"),
        (dict(strategy="mirrored", frameworks=("torch",)), r"trains on one device"),
    ],
)
def test_what_the_peer_cannot_match_is_one_sentence(monkeypatch, options, message):
    monkeypatch.setattr(torch_peer, "torch_installed", lambda: True)
    with pytest.raises(ConfigError, match=message) as caught:
        BenchConfig.from_options(**{**TINY, **options})
    assert caught.value.argument == "frameworks"


def test_without_torch_bench_names_the_extra_before_training(monkeypatch, tmp_path):
    from recurrent_mnist_cli.app import app
    from typer.testing import CliRunner

    monkeypatch.setattr(torch_peer, "torch_installed", lambda: False)
    with pytest.raises(
        ConfigError, match=r'`frameworks` names torch, but PyTorch is not installed.*"recurrent-mnist\[torch\]"'
    ):
        BenchConfig.from_options(frameworks=("keras", "torch"), **TINY)
    results = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["bench", "--frameworks", "keras", "torch", "--dataset", "mnist-sample", "--results-dir", str(results)]
    )
    assert result.exit_code == 2, result.output
    assert "recurrent-mnist[torch]" in result.output and "Traceback" not in result.output
    assert not results.exists()


@pytest.mark.slow
def test_a_bench_of_both_frameworks_fills_the_same_columns(tmp_path, tiny, torch):
    config = BenchConfig.from_options(cells=("lstm", "gru"), seeds=(0,), frameworks=("keras", "torch"), **TINY)
    events = []
    result = run_bench(
        config, results_dir=tmp_path, run_name="run", isolate=False, dataset=tiny, progress=events.append
    )
    runs = pd.read_csv(tmp_path / "run" / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}, runs[["cell", "framework", "error"]]
    frameworks = runs["framework"].str.split().str[0]
    assert sorted(zip(runs["cell"], frameworks, strict=True)) == [
        ("gru", "keras"),
        ("gru", "torch"),
        ("lstm", "keras"),
        ("lstm", "torch"),
    ]
    filled = ["params", "test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", *MEASURED]
    filled = [c for c in filled if c not in ("epochs_to_target", "seconds_to_target")]
    assert runs[filled].notna().all().all(), runs[filled].T
    assert (runs["steady_epochs"] == 1).all() and (runs["train_samples"] == 540).all()
    assert runs.groupby("cell")["params"].nunique().eq(1).all()  # the same model in both frameworks
    torch_rows = runs[frameworks == "torch"]
    assert torch_rows["framework"].eq(f"torch {torch.__version__}").all() and torch_rows["isolated"].all()
    assert runs.loc[frameworks == "keras", "framework"].str.match(r"keras 3\.\S+ \(tensorflow\)").all()

    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert list(summary["rank"]) == [1, 2, 3, 4] and summary["framework"].notna().all()
    text = (tmp_path / "run" / "summary.md").read_text()
    assert "| framework |" in text and "PyTorch peer" in text and "mixes" not in text
    assert not result.warnings
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert len(history) == 8 and history["framework"].notna().all()
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "run" / "variants").glob("*.json"))
    assert names == ["gru-seed0", "gru-torch-seed0", "lstm-seed0", "lstm-torch-seed0"]
    environments = json.loads((tmp_path / "run" / "environment.json").read_text())["environments"]
    torch_environment = next(e for e in environments if e["framework"].startswith("torch"))
    assert torch_environment["threads"] == {"intra_op": config.train.threads, "inter_op": 1}
    assert torch_environment["variants"] == ["gru-torch-seed0", "lstm-torch-seed0"]
    assert {e.get("framework") for e in events if e["event"] == "variant_end"} == {None, "torch"}
    assert any(e["event"] == "epoch_end" and e.get("framework") == "torch" for e in events)
    with pytest.raises(ResultsError, match=r"holds rows of several frameworks .* compare runs of one framework"):
        compare_runs([tmp_path / "run", tmp_path / "run"])  # compare matches rows by cell alone
