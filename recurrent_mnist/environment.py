"""What produced a result: versions, hardware, threads, devices, command line and git commit.

A table that cannot say where it came from is not a result: `environment_info()`
fills `environment.json`, and `provenance()` the few columns every result row carries.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from recurrent_mnist.settings import default_threads

__all__ = ["cpu_model", "environment_info", "git_commit", "provenance"]

_PACKAGES = ("recurrent-mnist", "tensorflow", "keras", "keras-tuner", "numpy", "pandas", "torch")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_model() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


@functools.cache
def git_commit() -> str | None:
    """The commit of the source tree this package runs from, when it is a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out}-dirty" if dirty else out


def _devices() -> list[str]:
    try:
        import tensorflow as tf

        return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
    except Exception:  # noqa: BLE001 - another backend, or TensorFlow unavailable
        return []


def limit_threads(threads: int) -> None:
    """Runs TensorFlow on `threads` inter-op threads of one intra-op thread each.

    Each operation then runs on one thread, and up to `threads` independent
    operations run side by side: the fast recurrent layers
    (`recurrent_mnist.fast_rnn`) split the batch into that many independent
    recurrences. On small recurrent models this measured much faster than
    splitting every small matrix product over intra-op threads (docs/speed.md).

    Applies to this process, if TensorFlow has not run an operation yet, and to
    every process it starts (through `TF_NUM_INTRAOP_THREADS` and
    `TF_NUM_INTEROP_THREADS`), such as bench's isolated training processes.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer; received {threads!r}")
    set_thread_pools(intra_op=1, inter_op=threads)


def set_thread_pools(intra_op: int, inter_op: int) -> None:
    """Sizes TensorFlow's intra-op and inter-op thread pools, here and in every process started from here.

    `limit_threads` is the setting this project trains with; this is the general form.
    """
    for name, threads in (("intra_op", intra_op), ("inter_op", inter_op)):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer; received {name}={threads!r}")
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra_op)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter_op)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except (ImportError, RuntimeError):  # another backend, or TensorFlow already running here
        pass


def _threads() -> dict:
    found = {
        name: os.environ[name] for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS") if name in os.environ
    }
    try:
        import tensorflow as tf

        found["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        found["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    except Exception:  # noqa: BLE001
        pass
    return found


def provenance() -> dict:
    """Columns that every result row carries, so that rows from several machines stay apart."""
    import keras

    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpus": default_threads(),
        "device": next((d for d in _devices() if d.startswith("GPU")), "CPU"),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "tensorflow_version": _version("tensorflow"),
        "git_commit": git_commit(),
    }


def environment_info(command: list[str] | None = None, **extra) -> dict:
    """A JSON-ready description of this process's environment.

    Args:
        command: the command line; defaults to `sys.argv`.
        **extra: more fields (seeds, data set, configuration).
    """
    import keras

    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command if command is not None else list(sys.argv),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": {
            "model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": default_threads(),
            "flags": _cpu_flags(),
        },
        "threads": _threads(),
        "devices": _devices(),
        "keras_backend": keras.backend.backend(),
        "versions": {package: _version(package) for package in _PACKAGES},
        "git_commit": git_commit(),
        **extra,
    }
