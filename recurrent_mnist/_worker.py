"""Trains one bench variant, in this process or as `python -m recurrent_mnist._worker`.

As a process it reads a JSON spec on stdin and writes JSON events, one per line,
on its original stdout: progress events, then one `{"event": "result", ...}`.
Everything else it prints (TensorFlow's notices, tracebacks) goes to stderr,
which the parent sends to the variant's log file.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from recurrent_mnist.cells import import_cell_modules
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import limit_threads, provenance
from recurrent_mnist.errors import DatasetError
from recurrent_mnist.training import TrainConfig, train_variant


def execute(spec: dict, emit, dataset: Dataset | None = None) -> dict:
    """Trains the variant `spec` describes; a Python error fails the variant, not the run."""
    import_cell_modules(spec.get("imports", ()))
    config = TrainConfig.from_dict(spec["train_config"])
    limit_threads(config.threads)  # before TensorFlow runs anything in this process
    try:
        if dataset is None:
            dataset = load(spec["dataset"], spec.get("data_dir"))
            if dataset.sha256 != spec["dataset_sha256"]:
                raise DatasetError(f"{dataset.source} changed while the bench ran (its SHA-256 differs from the run's)")
        result = train_variant(dataset, config, emit=emit, measure=spec.get("measure", True))
        row, history = result.row, result.history
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as this variant's failure
        traceback.print_exc(file=sys.stderr)
        row, history = config.failed_row(f"{type(exc).__name__}: {exc}"), []
    return {"event": "result", "row": {**row, **provenance()}, "history": history}


def _die_with_parent() -> None:
    """On Linux, ask for SIGTERM when the parent dies, so a `kill -9` of the bench leaves no orphan."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> int:
    _die_with_parent()
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints land in the log, not in the event stream

    def emit(event: dict) -> None:
        events.write(json.dumps(event) + "\n")

    try:
        spec = json.loads(sys.stdin.read())
        emit(execute(spec, emit))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
