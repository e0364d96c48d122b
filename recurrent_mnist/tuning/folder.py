"""The run folder of a search, `<results>/<run>/`: the core `runs.folder.RunFolder` and the search's own files.

A search holds `.search.lock` while it runs, and each distributed worker holds `workers/<id>.lock`,
so that a chief tells a live worker from a dead one (the kernel drops a dead process's lock, even
after `kill -9`); `chief.json` says where the chief is in its life, for workers that start late.
"""

from __future__ import annotations

import json
import os
import time

from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.runs.folder import RunFolder, try_lock
from recurrent_mnist.tuning.tables import _iso

PROJECT = "search"


class _SearchFolder(RunFolder):
    """`<results>/<run>/`: the tables, `search.json` (what the search is), keras-tuner's project
    `search/`, and `workers/` (one lock file held by each live worker, and the chief's state)."""

    KIND = "search"
    IDENTITY_FILE = "search.json"
    FILES = (
        "trials.csv",
        "best_hyperparameters.json",
        "best_model.keras",
        "best_model.metrics.json",
        "summary.md",
        "search.json",
        "chief.json",
    )
    FOLDERS = ("workers",)
    DISCARDED = (*FILES, "environment.json", PROJECT)  # workers/ stays: live workers hold their locks there

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.project = self.path / PROJECT
        self.workers = self.path / "workers"

    def live_workers(self) -> dict[str, bool]:
        """Each worker that left a lock file, and whether a process still holds it."""
        found = {}
        for path in self.workers.glob("*.lock"):
            try:
                with open(path, "a") as handle:
                    found[path.stem] = not try_lock(handle)
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
        atomic_write_json(self.path / "chief.json", record)

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
