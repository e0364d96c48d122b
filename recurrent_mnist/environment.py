"""What produced a result: the code, versions, hardware, threads, devices and command line.

A table that cannot say where it came from is not a result. `code_identity()` is
the code that trains (this package's source and every `--import` module, by
digest, with the git commit it came from); `machine_environment()` the rest of
the environment; `environment_info()` both with the command line, for
`environment.json`; and `provenance()` the few columns every result row carries.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from recurrent_mnist.settings import default_threads

__all__ = [
    "code_identity",
    "cpu_model",
    "environment_info",
    "framework_name",
    "git_commit",
    "machine_environment",
    "provenance",
    "source_digest",
]

_PACKAGE_DIR = Path(__file__).resolve().parent

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
    """The commit of the source tree this package runs from, when it is a git checkout.

    `<sha>-dirty` when the package's source (`recurrent_mnist/`) differs from that
    commit's: a changed or new file there. Other files (results, docs, tests) do
    not make the code differ from the commit's.
    """
    source = _PACKAGE_DIR.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            # Only the package's own files: results or docs written since the commit do not change the code.
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=all", "--", str(_PACKAGE_DIR)],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{out}-dirty" if dirty else out


def _files_digest(files: list[Path], root: Path) -> str:
    hasher = hashlib.sha256()
    for path in sorted(files):
        hasher.update(path.relative_to(root).as_posix().encode() + b"\0")
        hasher.update(path.read_bytes() + b"\0")
    return hasher.hexdigest()


@functools.cache
def source_digest() -> str:
    """The SHA-256 of this package's Python source (every `.py` file under `recurrent_mnist/`).

    What identifies the code that trains, installed from a checkout, a wheel or a
    tree with uncommitted changes alike; commits that change only documentation,
    tests or results keep it.
    """
    return _files_digest([p for p in _PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts], _PACKAGE_DIR)


def import_path(entry: str) -> Path | None:
    """The file or folder an `--import` entry names, or None for a module name.

    A path is an entry that ends in `.py`, holds a path separator, or names an
    existing folder (with no `__init__.py`: a package folder is imported by name).
    """
    path = Path(entry)
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        return path
    if path.is_dir() and not (path / "__init__.py").exists():
        return path
    return None


def import_label(entry: str) -> str:
    """How a run's identity names an `--import` entry: a module's name, a file's or folder's name without
    its place, so that the same code imported from elsewhere names the same."""
    path = import_path(entry)
    return entry if path is None else path.stem if path.suffix == ".py" else path.name


def import_digest(entry: str) -> str | None:
    """The SHA-256 of the source an `--import` entry names (a module, a `.py` file or a folder of them)."""
    path = import_path(entry)
    if path is None:
        return module_digest(entry)
    try:
        files = [path] if path.is_file() else sorted(path.glob("*.py"))
        return _files_digest(files, path.parent if path.is_file() else path) if files else None
    except OSError:
        return None


def module_digest(name: str) -> str | None:
    """The SHA-256 of the source of the module `name` (every `.py` file of a package), found
    without importing it; None when it cannot be found or read."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    try:
        if spec is None:
            return None
        if spec.submodule_search_locations:
            roots = [Path(location) for location in spec.submodule_search_locations]
            files = [p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts]
            return _files_digest(files, roots[0].parent) if files else None
        if spec.origin and spec.origin.endswith(".py"):
            origin = Path(spec.origin)
            return _files_digest([origin], origin.parent)
    except OSError:
        return None
    return None


def code_identity(imports: tuple[str, ...] | list[str] = ()) -> dict:
    """The code that trains: this package's version and source digest, where it was committed,
    and the digest of each module in `imports` (the `--import` modules that register cells).

    Two runs whose `source_sha256` and `imports` agree ran the same code; `git_commit` and
    `git_dirty` say where it came from (None outside a git checkout).
    """
    commit = git_commit()
    return {
        "version": _version("recurrent-mnist"),
        "source_sha256": source_digest(),
        "git_commit": commit.removesuffix("-dirty") if commit else None,
        "git_dirty": commit.endswith("-dirty") if commit else None,
        "imports": {import_label(entry): import_digest(entry) for entry in sorted(imports)},
    }


def describe_code(code: dict) -> str:
    """`code_identity()` in a few words: "recurrent-mnist 0.1.0 at commit 1a2b3c4d (source 5e6f7a8b)"."""
    if not code:
        return "code not recorded (a run made before runs recorded their code)"
    where = f"commit {code['git_commit'][:8]}" if code.get("git_commit") else "no git checkout"
    if code.get("git_dirty"):
        where += " with uncommitted changes"
    text = f"recurrent-mnist {code.get('version')} at {where} (source {str(code.get('source_sha256'))[:8]}"
    imports = code.get("imports") or {}
    if imports:
        text += ", " + ", ".join(f"{name} {str(value)[:8]}" for name, value in imports.items())
    return text + ")"


def same_code(a: dict, b: dict) -> bool:
    """Whether two `code_identity()` records name the same code (source and imports; not where it came from)."""
    return (
        bool(a)
        and bool(b)
        and a.get("source_sha256") == b.get("source_sha256")
        and a.get("imports") == b.get("imports")
    )


def _tensorflow():
    """TensorFlow when Keras runs on it, else None: another backend never pays for its slow import."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def _devices() -> list[str]:
    """The Keras backend's devices as `TYPE:name`, accelerators as `GPU:...`."""
    try:
        import keras

        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
        if backend == "jax":
            import jax

            return [f"{d.platform.upper()}:{d}" for d in jax.devices()]
        if backend == "torch":
            import torch

            return ["CPU:cpu", *(f"GPU:cuda:{i}" for i in range(torch.cuda.device_count()))]
    except Exception:  # noqa: BLE001 - a backend that cannot list its devices records none
        pass
    return []


def limit_threads(threads: int) -> None:
    """Runs TensorFlow on `threads` inter-op threads of one intra-op thread each.

    Each operation then runs on one thread, and up to `threads` independent
    operations run side by side: the fast recurrent layers
    (`recurrent_mnist.fast_rnn`) split the batch into that many independent
    recurrences. A small recurrent model's matrix products are too small to
    gain from being split over intra-op threads; whole recurrences side by side
    keep each thread busy (docs/speed.md).

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
    On another Keras backend only the variables are set, for TensorFlow in the processes started from here.
    """
    for name, threads in (("intra_op", intra_op), ("inter_op", inter_op)):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer; received {name}={threads!r}")
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(intra_op)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(inter_op)
    try:
        tf = _tensorflow()
        if tf is not None:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except (ImportError, RuntimeError):  # TensorFlow unavailable, or already running here
        pass


def _threads() -> dict:
    found = {
        name: os.environ[name] for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS") if name in os.environ
    }
    try:
        tf = _tensorflow()
        if tf is not None:
            found["intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
            found["inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    except Exception:  # noqa: BLE001 - TensorFlow unavailable: the variables alone
        pass
    return found


def framework_name(framework: str = "keras") -> str:
    """What trains, as a row's `framework` column says it: "keras 3.15.1 (tensorflow)", "torch 2.13.0+cpu".

    Imports Keras for `"keras"`; PyTorch's version is read from its installed metadata, without importing it.
    """
    if framework == "torch":
        return f"torch {_version('torch')}"
    import keras

    return f"keras {keras.__version__} ({keras.backend.backend()})"


def provenance(framework: str = "keras") -> dict:
    """Columns that every result row carries, so that rows from several machines stay apart.

    `framework="torch"`: the columns of a PyTorch peer's row (`recurrent_mnist.torch_peer`), which
    trains on the CPU and uses neither Keras nor TensorFlow (their columns stay empty); Keras is not imported.
    """
    if framework == "torch":
        trained_with = {"device": "CPU", "backend": None, "keras_version": None, "tensorflow_version": None}
    else:
        import keras

        trained_with = {
            "device": next((d for d in _devices() if d.startswith("GPU")), "CPU"),
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "tensorflow_version": _version("tensorflow"),
        }
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpus": default_threads(),
        **trained_with,
        "git_commit": git_commit(),
        "code_sha256": source_digest()[:12],
    }


def machine_environment(framework: str = "keras") -> dict:
    """Where a figure was measured: the framework, Python, platform, host, CPU, threads, devices,
    Keras backend and package versions. No timestamps, so that one environment always gives the same record.

    `framework="torch"`: the environment of a PyTorch peer's process: PyTorch's threads (when it
    is loaded here), the CPU it trains on, no Keras backend; neither PyTorch nor Keras is imported.
    """
    if framework == "torch":
        torch = sys.modules.get("torch")
        threads = {}
        if torch is not None:
            threads = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
        framework_fields = {"threads": threads, "devices": ["CPU"]}
    else:
        import keras

        framework_fields = {"threads": _threads(), "devices": _devices(), "keras_backend": keras.backend.backend()}
    return {
        "framework": framework_name(framework),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpu": {
            "model": cpu_model(),
            "logical_cpus": os.cpu_count(),
            "usable_cpus": default_threads(),
            "flags": _cpu_flags(),
        },
        **framework_fields,
        "versions": {package: _version(package) for package in _PACKAGES},
    }


# The fields of `machine_environment` that describe the framework rather than the machine.
FRAMEWORK_FIELDS = ("framework", "threads", "devices", "keras_backend")


def environment_info(command: list[str] | None = None, **extra) -> dict:
    """A JSON-ready description of this process's environment.

    Args:
        command: the command line; defaults to `sys.argv`.
        **extra: more fields (seeds, data set, configuration).
    """
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command if command is not None else list(sys.argv),
        **machine_environment(),
        "git_commit": git_commit(),
        **extra,
    }
