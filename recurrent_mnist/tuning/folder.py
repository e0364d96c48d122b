"""The run folder `<results>/<run>/`: its files, the check that it holds the same search, and its locks.

A search holds `.search.lock` while it runs, and each distributed worker holds `workers/<id>.lock`,
so that a chief tells a live worker from a dead one (the kernel drops a dead process's lock, even
after `kill -9`); `chief.json` says where the chief is in its life, for workers that start late.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from recurrent_mnist import reporting
from recurrent_mnist.errors import ResultsError
from recurrent_mnist.tuning.tables import _iso

PROJECT = "search"


def _os_message(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a file stands where a folder is needed"
    return f"the results folder {path} cannot be created or written: {reason}"


def _flock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks; the search still works, without the checks they allow
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without locks
    return True


class _SearchFolder:
    """`<results>/<run>/`: the tables, `search.json` (what the search is), keras-tuner's project
    `search/`, and `workers/` (one lock file held by each live worker, and the chief's state)."""

    FILES = ("trials.csv", "best_hyperparameters.json", "best_model.keras", "summary.md", "search.json", "chief.json")

    def __init__(self, path: Path):
        self.path = path
        self.project = path / PROJECT
        self.workers = path / "workers"
        self._handles: list = []

    def prepare(self) -> None:
        try:
            self.workers.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ResultsError(_os_message(self.path, exc)) from None

    def discard(self) -> None:
        for name in (*self.FILES, "environment.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.project, ignore_errors=True)

    def check_config(self, identity: dict, dataset_sha256: str, write: bool = True) -> None:
        """Writes search.json, or checks that an existing one describes the same search."""
        path = self.path / "search.json"
        wanted = {"config": identity, "dataset_sha256": dataset_sha256}
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{path} cannot be read ({exc}); pass --fresh to start the search over") from None
            old, new = existing.get("config", {}), identity
            changed = [
                f"{k}: {new.get(k)!r} now, {old.get(k)!r} there"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            ]
            if existing.get("dataset_sha256") != dataset_sha256:
                changed.append("the data set's files differ")
            if changed:
                raise ResultsError(
                    f"{self.path} holds a search with another configuration ({'; '.join(changed)}); "
                    "choose another --run-name, or pass --fresh to discard it"
                )
        elif write:
            reporting.atomic_write_json(path, wanted)

    @contextlib.contextmanager
    def lock(self, path: Path, busy_message: str, tries: int = 1) -> Iterator[None]:
        """Holds an exclusive lock on `path` for the block; the kernel releases it when the process dies."""
        try:
            handle = open(path, "a")
        except OSError as exc:
            raise ResultsError(_os_message(path.parent, exc)) from None
        with handle:
            for attempt in range(tries):
                if _flock(handle):
                    break
                if attempt == tries - 1:
                    raise ResultsError(busy_message)
                time.sleep(0.2)  # a chief checking whether this worker lives holds the lock for a moment
            yield

    def live_workers(self) -> dict[str, bool]:
        """Each worker that left a lock file, and whether a process still holds it."""
        found = {}
        for path in self.workers.glob("*.lock"):
            try:
                with open(path, "a") as handle:
                    found[path.stem] = not _flock(handle)
            except OSError:
                continue
        return found

    def chief_state(self) -> dict:
        """What the chief last said: `starting`, `serving`, `finishing`, `finished` (with `complete`: no
        trial left to run) or `stopped` (interrupted); empty when no chief shares this folder."""
        try:
            state = json.loads((self.path / "chief.json").read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def set_chief_state(self, state: str, address: str, **extra) -> None:
        record = {"state": state, "address": address, "pid": os.getpid(), "at": _iso(time.time()), **extra}
        reporting.atomic_write_json(self.path / "chief.json", record)

    def search_ended(self, grace_s: float = 20.0) -> bool:
        """Whether a worker arrives too late: its chief is ending, or has ended.

        A chief restarted at the same moment as its workers may still be starting: a stale state
        counts only if it does not turn into `starting` or `serving` within `grace_s`.
        """
        deadline = time.monotonic() + grace_s
        while True:
            state = self.chief_state()
            ended = state.get("state") in ("finishing", "finished")
            if not ended or time.monotonic() >= deadline:
                return ended
            time.sleep(0.5)
