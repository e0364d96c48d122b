"""Child processes: dying with the parent, and the isolated worker protocol.

A worker reads one JSON spec on stdin and writes JSON events, one per line, on
its original stdout: progress events, then one `{"event": "result", ...}`.
Everything else it prints (library notices, tracebacks) goes to stderr, which
the parent sends to a log file. `run_worker` is the parent's side,
`serve_worker` the child's.

Standard library only, so that a process that must not load TensorFlow (a
PyTorch-only benchmark worker) can import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["crash_reason", "die_with_parent", "run_worker", "serve_worker"]

Emit = Callable[[dict], None]


def die_with_parent() -> None:
    """On Linux, ask for SIGTERM when the parent dies, so that a `kill -9` of the parent leaves no orphan."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_worker(
    command: list[str],
    spec: dict,
    log_path: Path,
    emit: Emit,
    env: dict | None = None,
    started: Callable[[subprocess.Popen], None] | None = None,
):
    """Runs `command` as a worker on `spec`, relaying its progress events to `emit`.

    Its stderr goes to `log_path`. An interruption here terminates the worker. `started(process)`, if
    given, is called once the worker process runs (to watch it from elsewhere).

    Returns:
        `(result, returncode)`: the worker's result event, or None when it
        ended without one (a crash, a kill), and its exit code.
    """
    result, returncode = None, None
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env
        ) as process,
    ):
        try:
            if started is not None:
                started(process)
            process.stdin.write(json.dumps(spec))
            process.stdin.close()
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "result":
                    result = event
                else:
                    emit(event)
            returncode = process.wait()
        finally:
            stop(process, timeout=10)  # interrupted: do not leave the worker behind
    return result, returncode


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """Ends `process` if it still runs: SIGTERM, then SIGKILL after `timeout` seconds; reaps it either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def crash_reason(returncode: int, log_path: Path) -> str:
    """Why a worker ended without a result: its signal or exit code, and the last error line of its log."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        reason = f"the training process was killed by {name}"
        if name == "SIGKILL":
            reason += " (out of memory?)"
    else:
        reason = f"the training process exited with code {returncode}"
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "error" in line]
        if errors:
            reason += f": {errors[-1][:300]}"
    return f"{reason} (log: {log_path})"


def serve_worker(execute: Callable[[dict, Emit], dict]) -> int:
    """The worker's side: reads the spec, runs `execute(spec, emit)` and writes its result as the last event.

    Returns the exit code: 0, or 130 when interrupted.
    """
    die_with_parent()
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints land in the log, not in the event stream

    def emit(event: dict) -> None:
        events.write(json.dumps(event) + "\n")

    try:
        spec = json.loads(sys.stdin.read())
        emit({"event": "result", **execute(spec, emit)})
    except KeyboardInterrupt:
        return 130
    return 0
