"""`RunFolder`: the folder `<results>/<run>/` of one run, whatever command writes it.

It creates the folder and checks that it can be written, removes temporary files
left by a killed process, discards a run's files for `fresh=True`, records what
the run is (its configuration and the data set's SHA-256) and refuses to mix
another configuration into it, and holds locks that the kernel drops when the
process dies (even after `kill -9`). `bench.BenchFolder` and
`tuning.folder._SearchFolder` add their own files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from recurrent_mnist.environment import describe_code, same_code
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs.atomic import atomic_write_json

__all__ = ["RunFolder", "check_run_name", "digest", "os_message", "try_lock"]


def digest(obj) -> str:
    """The SHA-256 of `obj` as canonical JSON: the same configuration always gives the same digest."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def check_run_name(run_name: str | None) -> None:
    """Raises `ConfigError` unless `run_name` is None or a plain folder name (no path, not `.` or `..`)."""
    if run_name is not None and (not run_name.strip() or Path(run_name).name != run_name or run_name in (".", "..")):
        raise ConfigError(
            f"`run_name` must be a plain folder name (no path). Received: run_name={run_name!r}", argument="run_name"
        )


def os_message(path: Path, exc: OSError) -> str:
    """One sentence for a results folder the operating system refuses."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a file stands where a folder is needed"
    return f"the results folder {path} cannot be created or written: {reason}"


def try_lock(handle, wait: bool = False) -> bool:
    """Takes an exclusive lock on the open file `handle`; False when another process holds it.

    With `wait`, waits for the lock instead. True where there are no locks to
    take (not POSIX, or a file system without them): the caller goes ahead.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks
    return True


class RunFolder:
    """The files of one run under `path`; subclasses name their own.

    Class attributes:
        KIND: what the folder holds, as messages name it (`"run"`, `"search"`).
        IDENTITY_FILE: the file that records what the run is.
        FOLDERS: subfolders that `prepare` creates.
        DISCARDED: the files and folders that `discard` removes.
    """

    KIND = "run"
    IDENTITY_FILE = "run.json"
    FOLDERS: tuple[str, ...] = ()
    DISCARDED: tuple[str, ...] = ()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def prepare(self) -> None:
        """Creates the folders, or raises `ResultsError` naming the folder that cannot be written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for name in self.FOLDERS:
                (self.path / name).mkdir(exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ResultsError(os_message(self.path, exc)) from None
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self, older_than_s: float = 3600.0) -> None:
        # Left by a process killed between writing a temporary file and renaming it.
        now = time.time()
        for folder in (self.path, *(self.path / name for name in self.FOLDERS)):
            for tmp in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime > older_than_s:
                        tmp.unlink()

    def discard(self) -> None:
        """Removes the run's files and folders (for `fresh=True`); anything else in the folder stays."""
        for name in self.DISCARDED:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()

    def check_config(self, config: dict, dataset_sha256: str, write: bool = True, code: dict | None = None) -> None:
        """Records what the run is in `IDENTITY_FILE`, or checks that the one there says the same.

        Args:
            config: the configuration every part of the run shares (JSON values).
            dataset_sha256: the data set's digest.
            write: record it when the folder holds no run yet (False: leave that to another process).
            code: the code that trains (`environment.code_identity()`), recorded with a
                new run; `check_code` compares it with the run's.

        Raises:
            ResultsError: the folder holds a run of another configuration or data set (the
                message names every field that differs), or its identity file is unreadable.
        """
        path = self.path / self.IDENTITY_FILE
        wanted = {"config": config, "dataset_sha256": dataset_sha256}
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(
                    f"{path} cannot be read ({exc}); pass `fresh=True` to start the {self.KIND} over"
                ) from None
            differences = _differences(existing, wanted)
            if differences:
                raise ResultsError(
                    f"{self.path} holds a {self.KIND} with another configuration ({differences}); "
                    "choose another `run_name`, or pass `fresh=True` to discard it"
                )
        elif write:
            record = {**wanted, "config_hash": digest(wanted)}
            if code is not None:
                record["code"] = code
            atomic_write_json(path, record)

    def check_code(self, code: dict) -> None:
        """Raises `ResultsError`, naming both commits, unless the run was made by `code`
        (`environment.same_code`): a run is filled by one code only, so no table mixes versions."""
        try:
            existing = json.loads((self.path / self.IDENTITY_FILE).read_text()).get("code") or {}
        except (OSError, ValueError, AttributeError):
            return  # no run yet: `check_config` records one
        if not same_code(existing, code):
            raise ResultsError(
                f"{self.path} holds a {self.KIND} trained by other code ({describe_code(existing)} there, "
                f"{describe_code(code)} here); resume it with that code, choose another `run_name`, "
                "or pass `fresh=True` to discard it"
            )

    @contextlib.contextmanager
    def lock(self, path: str | os.PathLike | None = None, busy: str | None = None, tries: int = 1) -> Iterator[None]:
        """Holds an exclusive lock on `path` (the folder's `.lock` by default) for the block.

        The kernel releases it when the process dies. Without `busy`, waits for
        the lock; with it, tries `tries` times, 0.2 s apart, then raises
        `ResultsError(busy)`. Where the file system has no locks, the block runs
        unlocked (every table is still rebuilt from all the records).
        """
        path = self.path / ".lock" if path is None else Path(path)
        try:
            handle = open(path, "a")
        except OSError as exc:
            raise ResultsError(os_message(path.parent, exc)) from None
        with handle:
            for attempt in range(tries):
                if try_lock(handle, wait=busy is None):
                    break
                if attempt == tries - 1:
                    raise ResultsError(busy)
                time.sleep(0.2)  # e.g. a chief checking whether this worker lives holds the lock for a moment
            yield


def _differences(existing: dict, wanted: dict) -> str:
    old, new = existing.get("config", {}), wanted["config"]
    changed = [
        f"{k}: {new.get(k)!r} now, {old.get(k)!r} there"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]
    if existing.get("dataset_sha256") != wanted["dataset_sha256"]:
        changed.append("the data set's files differ")
    return "; ".join(changed)
