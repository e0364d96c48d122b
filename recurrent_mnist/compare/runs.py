"""Reading the runs to compare: each folder checked, labelled, and what it is (configuration, environment)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recurrent_mnist import settings
from recurrent_mnist.bench import BenchFolder
from recurrent_mnist.errors import ResultsError
from recurrent_mnist.runs.folder import digest
from recurrent_mnist.runs.records import flatten

# environment.json fields that describe an invocation, not the environment.
_NOT_ENVIRONMENT = {"created_at", "command", "config", "variants"}


def default_out_dir(run_dirs: Sequence[str | os.PathLike], results_dir: str | os.PathLike = settings.RESULTS_DIR):
    """`results/compare-A-vs-B`, from the runs' folder names (a hash instead when the names are too long)."""
    name = "compare-" + "-vs-".join(Path(run_dir).resolve().name for run_dir in run_dirs)
    if len(name) > 120:
        name = f"compare-{len(run_dirs)}-runs-{digest([str(Path(p).resolve()) for p in run_dirs])[:12]}"
    return Path(results_dir) / name


# --------------------------------------------------------------------------- reading runs


def run_labels(paths: list[Path]) -> list[str]:
    """The folder names; where two are alike, the shortest ends of the paths that tell them apart
    (`x/run`, `y/run`); the same folder twice is numbered (`run`, `run #2`)."""
    parts = [path.resolve().parts for path in paths]
    for depth in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    seen: dict[str, int] = {}
    labels = []
    for path in paths:
        name = path.resolve().name
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return labels


def check_run(path: Path) -> BenchFolder:
    folder = BenchFolder(path)
    if not path.is_dir():
        raise ResultsError(f"{path} is not a folder; give the folder of a bench run, e.g. results/NAME")
    if not (path / "run.json").is_file() and not folder.variants.is_dir():
        raise ResultsError(f"{path} is not a bench run (no run.json or variants/ inside)")
    unfinished = folder.unfinished_variants()
    if unfinished:
        raise ResultsError(
            f"{path} is still incomplete: {len(unfinished)} variant(s) not finished "
            f"({', '.join(unfinished)}); resume it with the same bench command, then compare again"
        )
    return folder


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _flatten(value, prefix: str) -> dict[str, str]:
    """Nested dicts as dotted names (`runs.records.flatten`); every leaf as text (lists as compact JSON)."""
    return {name: _text(leaf) for name, leaf in flatten(value, prefix).items()}


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return json.dumps(value, separators=(",", " "))
    return "–" if value is None else settings.format_number(value)


def run_fields(path: Path, label: str, notes: list[str]) -> dict[str, str]:
    """What a run is: its configuration (`config.*`, the data set's digest) and its environment(s) (`environment.*`).

    environment.json holds `{"environments": [...]}` (one entry per distinct environment) or, in runs
    written before, the last invocation's environment itself.
    """
    fields = {}
    identity = _read_json(path / "run.json")
    if isinstance(identity, dict):
        fields.update(_flatten(identity.get("config", {}), "config"))
        if "dataset_sha256" in identity:
            fields["dataset_sha256"] = str(identity["dataset_sha256"])
    environment = _read_json(path / "environment.json")
    if environment is None:
        notes.append(f"{label} has no readable environment.json: its environment is not compared.")
        return fields
    entries = environment.get("environments") if isinstance(environment, dict) else None
    entries = [environment] if entries is None else entries
    entries = [entry for entry in entries if isinstance(entry, dict)]
    if len(entries) > 1:
        notes.append(f"{label} was trained in {len(entries)} different environments; their values are joined by |.")
    values: dict[str, list[str]] = {}
    for entry in entries:
        kept = {k: v for k, v in entry.items() if k not in _NOT_ENVIRONMENT}
        for name, value in _flatten(kept, "environment").items():
            values.setdefault(name, [])
            if value not in values[name]:
                values[name].append(value)
    fields.update({name: " | ".join(found) for name, found in values.items()})
    return fields


def field_differences(fields: list[dict[str, str]], labels: list[str]) -> pd.DataFrame:
    names = sorted({name for run in fields for name in run})
    rows = [
        {"field": name, **{label: run.get(name, "–") for label, run in zip(labels, fields, strict=True)}}
        for name in names
        if len({run.get(name, "–") for run in fields}) > 1
    ]
    return pd.DataFrame(rows, columns=["field", *labels])


# --------------------------------------------------------------------------- comparing
