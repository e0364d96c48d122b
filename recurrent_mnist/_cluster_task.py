"""What a Dask worker runs for `bench --cluster` and `tune --cluster`, kept free of Keras and TensorFlow.

The training itself happens in a fresh process on the worker (`python -m recurrent_mnist._worker`, or a
search worker's command line), which imports TensorFlow once, as a local isolated variant does. The Dask
worker process only starts that process, relays its progress and returns its records, so it should not
spend TensorFlow's start-up time too: `recurrent_mnist.cluster` sends these functions by value (their
code, not an import of this module), and they import the package's light modules (`environment`,
`runs.process`) with Keras deferred (`RECURRENT_MNIST_DEFER_KERAS`, set for that import only).
This module imports nothing but the standard library at its top.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The topic of the Dask events that carry the variants' progress to the client.
EVENTS_TOPIC = "recurrent-mnist-events"
_DEFER = "RECURRENT_MNIST_DEFER_KERAS"
# How often a task checks whether it was cancelled.
CANCEL_POLL_S = 0.5


def _light_modules():
    """`environment` and `runs.process`, imported without Keras even on a worker that never imported the package."""
    saved = os.environ.get(_DEFER)
    os.environ[_DEFER] = "1"
    try:
        from recurrent_mnist import environment
        from recurrent_mnist.runs import process
    finally:
        if saved is None:
            os.environ.pop(_DEFER, None)
        else:
            os.environ[_DEFER] = saved
    return environment, process


def _stop_when_cancelled(process: subprocess.Popen, stop) -> None:
    """Ends `process` once the task that started it is cancelled (Ctrl-C on the client, a lost client).

    Dask cannot interrupt a running task, so the task's training process would otherwise run to its end.
    """
    from distributed import get_worker
    from distributed.worker import thread_state

    worker, key = get_worker(), thread_state.key

    def watch() -> None:
        while process.poll() is None:
            task = worker.state.tasks.get(key)
            if task is None or task.state == "cancelled":
                stop(process, timeout=10)
                return
            time.sleep(CANCEL_POLL_S)

    threading.Thread(target=watch, name="recurrent-mnist-cancel-watch", daemon=True).start()


def _child_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def train_on_worker(spec: dict, client_code: dict, label: dict) -> dict:
    """The task of one variant: trains what `spec` describes in a fresh process on this worker.

    Returns the training process's outcome (row, history, environment) with its log, the worker's
    address and when the task began and its training ended (by this worker's clock). A variant that
    cannot train returns `failed` (the reason) instead of a row: a worker whose code differs from the
    client's, a training process that crashed or was killed; the client records the failed row.
    """
    from distributed import get_worker

    environment, process = _light_modules()
    this_worker = get_worker()
    worker = this_worker.address
    imports = spec.get("imports", ())
    code = environment.code_identity(imports)
    if code.get("source_sha256") != client_code.get("source_sha256"):
        return {
            "failed": (
                f"the worker {worker} runs recurrent-mnist {code.get('version')} "
                f"(source {str(code.get('source_sha256'))[:8]}), the client {client_code.get('version')} "
                f"(source {str(client_code.get('source_sha256'))[:8]}): install the client's version on every worker"
            ),
            "history": [],
            "worker": worker,
            "log": "",
        }
    started_at = time.time()
    this_worker.log_event(EVENTS_TOPIC, {"event": "variant_started", **label, "worker": worker, "at": started_at})

    def relay(event: dict) -> None:  # the epochs as they end, to the client's terminal
        if event.get("event") == "epoch_end":
            this_worker.log_event(EVENTS_TOPIC, {**event, **label, "worker": worker})

    with tempfile.TemporaryDirectory(prefix="recurrent-mnist-variant-") as scratch:
        log_path = Path(scratch) / "variant.log"
        command = [sys.executable, "-m", "recurrent_mnist._worker"]
        watch = functools.partial(_stop_when_cancelled, stop=process.stop)
        outcome, returncode = process.run_worker(command, spec, log_path, relay, _child_env(), watch)
        if outcome is None:
            outcome = {"failed": process.crash_reason(returncode, log_path), "history": []}
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    timing = {"started_at": started_at, "trained_at": time.time()}
    return {**outcome, "worker": worker, "log": log[-200_000:], "timing": timing}


def run_command(command: list[str], cwd: str | None) -> dict:
    """The task of a search worker: runs `command` in a fresh process on this worker, from `cwd` where it exists.

    Returns the worker's address, the command's exit code and the end of its output.
    """
    from distributed import get_worker

    _, process = _light_modules()
    where = cwd if cwd and os.path.isdir(cwd) else None
    with subprocess.Popen(
        command, cwd=where, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        try:
            _stop_when_cancelled(child, process.stop)
            output, _ = child.communicate()
        finally:
            process.stop(child, timeout=10)
    return {"worker": get_worker().address, "returncode": child.returncode, "output": output[-4000:]}
