"""Trains one PyTorch bench variant in a process that never loads TensorFlow.

bench starts `python -m recurrent_mnist.torch_peer.worker` with
`RECURRENT_MNIST_DEFER_KERAS=1` (`run_isolated`), so that importing
`recurrent_mnist` loads no Keras; it speaks the worker protocol of
`runs.process`, as `recurrent_mnist._worker` does for Keras. The spec is
bench's, plus `arrays`: an `.npz` of the data set's arrays that bench wrote
once for the run, so that the peer trains on the very arrays bench loaded.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import numpy as np

from recurrent_mnist.datasets import Dataset
from recurrent_mnist.environment import code_identity, framework_name, machine_environment, provenance
from recurrent_mnist.runs.process import crash_reason, run_worker, serve_worker
from recurrent_mnist.training.config import TrainConfig

__all__ = ["execute", "run_isolated", "save_arrays"]

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def save_arrays(dataset: Dataset, path: str | os.PathLike) -> dict:
    """Writes the data set's arrays to `path` (`.npz`); returns what the spec needs to read them back."""
    np.savez(path, **{name: getattr(dataset, name) for name in _ARRAYS})
    return {
        "path": str(path),
        "name": dataset.name,
        "source": dataset.source,
        "sha256": dataset.sha256,
        "class_names": list(dataset.class_names),
        "verified": dataset.verified,
    }


def _load_arrays(arrays: dict) -> Dataset:
    with np.load(arrays["path"]) as saved:
        values = {name: saved[name] for name in _ARRAYS}
    return Dataset(
        name=arrays["name"],
        source=arrays["source"],
        files={},
        sha256=arrays["sha256"],
        class_names=tuple(arrays["class_names"]),
        verified=arrays["verified"],
        **values,
    )


def execute(spec: dict, emit) -> dict:
    """Trains the variant `spec` describes; a Python error fails the variant, not the run."""
    config = TrainConfig.from_dict(spec["train_config"])
    history = []
    try:
        from recurrent_mnist.torch_peer.train import set_threads, train_peer

        set_threads(config.threads)  # before PyTorch runs anything in this process
        row, history = train_peer(_load_arrays(spec["arrays"]), config, emit=emit, measure=spec.get("measure", True))
        if "tensorflow" in sys.modules:
            raise RuntimeError("TensorFlow was loaded in the PyTorch process: its figures are not PyTorch's alone")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as this variant's failure
        traceback.print_exc(file=sys.stderr)
        row = {**config.failed_row(f"{type(exc).__name__}: {exc}"), "framework": framework_name("torch")}
    environment = {**machine_environment("torch"), "code": code_identity(spec.get("imports", ()))}
    return {"event": "result", "row": {**row, **provenance("torch")}, "history": history, "environment": environment}


def run_isolated(spec: dict, log_path: Path, emit) -> dict:
    """Trains the variant `spec` describes in a fresh Python process without TensorFlow.

    A crash or a kill of that process fails the variant; its row says why and names the log.
    """
    env = {**os.environ, "RECURRENT_MNIST_DEFER_KERAS": "1"}
    command = [sys.executable, "-m", "recurrent_mnist.torch_peer.worker"]
    outcome, returncode = run_worker(command, spec, log_path, emit, env)
    if outcome is not None:
        return outcome
    row = TrainConfig.from_dict(spec["train_config"]).failed_row(crash_reason(returncode, log_path))
    return {"row": {**row, "framework": framework_name("torch")}, "history": []}


if __name__ == "__main__":
    sys.exit(serve_worker(execute))
