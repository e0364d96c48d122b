"""Trains one bench variant: in this process (`execute`), or in a fresh one (`run_isolated`).

`run_isolated` starts `python -m recurrent_mnist._worker`, which speaks the
worker protocol of `runs.process`: the variant's spec as JSON on stdin, progress
events and then the result as JSON lines on stdout, everything else (TensorFlow's
notices, tracebacks) on stderr, which goes to the variant's log file.

`execute` frees what its variant's model leaves behind once the variant is
done (`training.variant.release_models`), so that bench's in-process variants
(`run_bench(isolate=False)`, `bench --in-process`) train one after another in
one process without its memory growing.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from pathlib import Path

from recurrent_mnist.cells import import_cell_modules
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import (
    code_identity,
    framework_name,
    limit_threads,
    machine_environment,
    provenance,
)
from recurrent_mnist.errors import DatasetError
from recurrent_mnist.runs.process import crash_reason, run_worker, serve_worker
from recurrent_mnist.training import TrainConfig, train_variant
from recurrent_mnist.training.variant import release_models


def execute(spec: dict, emit, dataset: Dataset | None = None) -> dict:
    """Trains the variant `spec` describes; a Python error fails the variant, not the run.

    What the variant's model leaves in the process is freed when it ends (`release_models`, which
    also clears Keras's global state): only its row and history are kept, so the next variant
    starts from the same memory.
    """
    import_cell_modules(spec.get("imports", ()))
    config = TrainConfig.from_dict(spec["train_config"])
    limit_threads(config.threads)  # before TensorFlow runs anything in this process
    try:
        if dataset is None:
            dataset = load(spec["dataset"], spec.get("data_dir"))
            if dataset.sha256 != spec["dataset_sha256"]:
                raise DatasetError(
                    f"the {spec['dataset']} data on {socket.gethostname()} ({dataset.source}) has SHA-256 "
                    f"{dataset.sha256[:12]}, the run's {spec['dataset_sha256'][:12]}: every machine that trains the "
                    "run's variants needs the same files, unchanged while the run lasts"
                )
        tensorboard = tuple(spec["tensorboard"]) if spec.get("tensorboard") else None
        with release_models():
            result = train_variant(
                dataset, config, emit=emit, measure=spec.get("measure", True), tensorboard=tensorboard
            )
            row, history = result.row, result.history
            del result  # nothing of the variant outlives the block but its row and history
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as this variant's failure
        traceback.print_exc(file=sys.stderr)
        row, history = {**config.failed_row(f"{type(exc).__name__}: {exc}"), "framework": framework_name()}, []
    environment = {**machine_environment(), "code": code_identity(spec.get("imports", ()))}
    return {"event": "result", "row": {**row, **provenance()}, "history": history, "environment": environment}


def run_isolated(spec: dict, log_path: Path, emit) -> dict:
    """Trains the variant `spec` describes in a fresh Python process, relaying its events to `emit`.

    A crash or a kill of that process fails the variant; its row says why and names the log.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    outcome, returncode = run_worker([sys.executable, "-m", "recurrent_mnist._worker"], spec, log_path, emit, env)
    if outcome is not None:
        return outcome
    row = TrainConfig.from_dict(spec["train_config"]).failed_row(crash_reason(returncode, log_path))
    return {"row": {**row, "framework": framework_name()}, "history": []}


if __name__ == "__main__":
    sys.exit(serve_worker(execute))
