"""--strategy mirrored: one batch split over several devices (two logical CPUs here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from clirun import cli_env

from recurrent_mnist.distribute import get_strategy
from recurrent_mnist.errors import ConfigError


def test_unknown_strategy():
    with pytest.raises(ConfigError, match=r"`strategy` must be one of default, mirrored\. Received: strategy='tpu'"):
        get_strategy("tpu")


@pytest.mark.slow
def test_train_with_a_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_data_dir):
    # Logical devices must be set up before TensorFlow starts: a process of its own.
    script = (
        "import sys\n"
        "from recurrent_mnist.distribute import split_cpu\n"
        "split_cpu(2)\n"
        "from recurrent_mnist_cli.app import main\n"
        "sys.argv = ['recurrent-mnist', 'train', '--cell', 'gru', '--epochs', '3', '--units', '8',\n"
        f"            '--dataset', 'mnist', '--data-dir', {str(tiny_data_dir)!r},\n"
        f"            '--strategy', 'mirrored', '--output', {str(tmp_path / 'm.keras')!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "m.metrics.json").read_text())["metrics"]
    assert metrics["replicas"] == 2
    assert metrics["status"] == "ok" and metrics["test_accuracy"] > 0.1
    assert (tmp_path / "m.keras").exists()
