"""What a run keeps for each variant: its record file, `variants/<cell>-seed<seed>-<key>.json`.

A record holds the variant's key, its training configuration, its row of
`runs.csv` (a failed variant's row comes from `TrainConfig.failed_row`), its
per-epoch history, and where it was trained: the environment of the process
that trained it (code, versions, machine, threads) and the command line. The
tables are rebuilt from the records, never the other way round, so several
processes can fill one run and an interrupted one loses no row.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from recurrent_mnist.runs.atomic import atomic_write_json

__all__ = ["flatten", "now", "read_record", "read_records", "write_record"]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_record(
    path: str | os.PathLike,
    key: str,
    train_config: dict,
    row: dict,
    history: list[dict],
    environment: dict | None = None,
    command: list[str] | None = None,
) -> None:
    record = {"key": key, "train_config": train_config, "row": row, "history": history}
    record.update(environment=environment or {}, command=command)
    atomic_write_json(path, record)


def read_record(path: str | os.PathLike) -> dict | None:
    """The record at `path`; None when there is none, or it is unreadable (the variant is trained again)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "row" in record else None


def read_records(folder: str | os.PathLike) -> list[dict]:
    """Every readable record in `folder`, in file-name order."""
    records = (read_record(path) for path in sorted(Path(folder).glob("*.json")))
    return [record for record in records if record is not None]


def flatten(value, prefix: str = "") -> dict:
    """Nested dicts as one dict of dotted names (`{"cpu": {"model": m}}` -> `{"cpu.model": m}`), leaves as they are."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat
