"""The side-by-side comparison of recurrent cells: run variants, keep their results, build the tables.

`run_bench(config)` trains every (cell, seed) variant of a `BenchConfig` under
identical conditions and returns pandas DataFrames. Each finished variant is
written to its own file under `<results>/<run>/variants/`; the tables
(`runs.csv`, `summary.csv`, `summary.md`, `history.csv`) and plots are rebuilt
from those files. So a rerun resumes (finished variants are not trained again),
several processes can fill one run folder, and an interruption never leaves a
half-written table.

By default each variant trains in a fresh Python process: its peak memory is its
own, a crash or out-of-memory kill fails that variant only, and no variant
inherits another's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from recurrent_mnist import _worker, reporting, settings
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import environment_info
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.runs.folder import RunFolder, check_run_name, digest
from recurrent_mnist.training.config import TrainConfig

__all__ = ["PRESETS", "BenchConfig", "BenchResult", "rebuild_report", "run_bench"]

Progress = Callable[[dict], None]

PRESETS = settings.PRESETS
# What a preset may set besides training settings.
_BENCH_FIELDS = ("dataset", "cells", "seeds")

RESULT_FILES = (
    "runs.csv",
    "summary.csv",
    "summary.md",
    "history.csv",
    "environment.json",
    "learning_curves.png",
    "accuracy_vs_time.png",
    "run.json",
)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """A comparison: which cells and seeds, on which data, under which training configuration.

    Every variant is `train` with its own cell and seed; everything else is shared.

    Attributes:
        dataset: `mnist`, `fashion-mnist` or `mnist-sample`.
        cells: the registered cell names compared.
        seeds: each (cell, seed) is one variant.
        train: the training configuration every variant shares (its own
            `cell` and `seed` are replaced per variant).
        preset: the name of the preset this configuration started from, if any.

    Example:

    >>> config = BenchConfig(dataset="mnist-sample", cells=("lstm", "gru"), train=TrainConfig(epochs=2))
    >>> [(v.cell, v.seed, v.epochs) for v in config.variants()]
    [('lstm', 0, 2), ('gru', 0, 2)]
    """

    dataset: str = settings.DATASET.default
    cells: tuple[str, ...] = settings.DEFAULT_CELLS
    seeds: tuple[int, ...] = (settings.SEED.default,)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    preset: str | None = None

    def __post_init__(self):
        settings.DATASET.check(self.dataset)
        object.__setattr__(self, "cells", settings.check_cells(tuple(self.cells)))
        seeds = tuple(self.seeds)
        if not seeds:
            raise ConfigError("`seeds` is empty; give at least one seed", argument="seeds")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(settings.SEED.check(s, "seeds") for s in seeds)))
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"`train` must be a TrainConfig. Received: train={self.train!r}", argument="train")

    @classmethod
    def from_options(cls, preset: str | None = None, **options) -> BenchConfig:
        """A configuration from flat options: `dataset`, `cells`, `seeds` and any `TrainConfig` field.

        A `preset` (see `PRESETS`) gives the starting values; `options` (None
        values ignored) apply on top.
        """
        base = {}
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}", argument="preset")
            base = dict(PRESETS[preset])
        base.update({k: v for k, v in options.items() if v is not None})
        bench = {k: base.pop(k) for k in _BENCH_FIELDS if k in base}
        return cls(**bench, train=TrainConfig(**base), preset=preset)

    def variants(self) -> list[TrainConfig]:
        # Seed-major order interleaves the cells, so a drift in machine load over
        # the run does not favour the cells that ran first.
        return [dataclasses.replace(self.train, cell=cell, seed=seed) for seed in self.seeds for cell in self.cells]

    def shared(self) -> dict:
        """Everything that every variant of the run shares: the training configuration but cell and seed."""
        return self.train.identity()


def default_run_name(config: BenchConfig, dataset_sha256: str) -> str:
    """A readable name with a short hash of the whole configuration, so runs never mix."""
    prefix = f"{config.preset}-" if config.preset else ""
    train = config.train
    bi = "-bi" if train.bidirectional else ""
    readable = f"{prefix}{config.dataset}-u{train.units}-l{train.layers}{bi}-b{train.batch_size}-e{train.epochs}"
    return f"{readable}-{digest([config.shared(), dataset_sha256])[:8]}"


@dataclasses.dataclass
class BenchResult:
    """What `run_bench` returns: the run folder, the tables and what happened to each variant."""

    run_dir: Path
    runs: pd.DataFrame
    summary: pd.DataFrame
    history: pd.DataFrame
    files: list[Path]
    trained: int = 0
    kept: int = 0
    failed: int = 0


# --------------------------------------------------------------------------- the run folder


class BenchFolder(RunFolder):
    """The files of one bench run: `run.json`, `variants/*.json` (the records), `logs/`, the tables and plots."""

    FOLDERS = ("variants", "logs")
    DISCARDED = (*RESULT_FILES, *FOLDERS)

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.variants = self.path / "variants"
        self.logs = self.path / "logs"

    def variant_path(self, variant: TrainConfig, key: str) -> Path:
        return self.variants / f"{variant.cell}-seed{variant.seed}-{key[:12]}.json"

    def finished_variants(self) -> list[dict]:
        return records.read_records(self.variants)


# --------------------------------------------------------------------------- tables


def rebuild_report(run_dir: str | os.PathLike) -> BenchResult:
    """Rebuilds every table and plot of a run folder from its variant files.

    Raises:
        ResultsError: the folder holds no run.
    """
    folder = BenchFolder(run_dir)
    if not (folder.path / "run.json").exists() and not folder.variants.is_dir():
        raise ResultsError(f"{folder.path} holds no bench run (no run.json or variants/ inside)")
    with folder.lock():
        return _write_tables(folder)


def _write_tables(folder: BenchFolder) -> BenchResult:
    runs, summary, history = reporting.record_frames(folder.finished_variants())
    notes = []
    with contextlib.suppress(OSError, ValueError, KeyError, AttributeError):
        config = json.loads((folder.path / "run.json").read_text())["config"]
        notes.append("Configuration: " + ", ".join(f"{k}={v}" for k, v in config.items()) + ".")
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        reasons = "; ".join(f"{r['cell']} seed {r['seed']}: {r['error']}" for r in failed.to_dict("records"))
        notes.append(f"{len(failed)} variant(s) failed: {reasons}.")
    title = f"Recurrent cells compared: {folder.path.name}"
    files = reporting.write_tables(folder.path, runs, summary, history, title, notes)
    return BenchResult(folder.path, runs, summary, history, files, failed=len(failed))


# --------------------------------------------------------------------------- running variants


def _variant_key(shared: dict, dataset_sha256: str, variant: TrainConfig) -> str:
    return digest({"shared": shared, "dataset": dataset_sha256, "cell": variant.cell, "seed": variant.seed})


def run_bench(
    config: BenchConfig,
    *,
    data_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = settings.RESULTS_DIR,
    run_name: str | None = None,
    fresh: bool = False,
    retry_failed: bool = False,
    isolate: bool = True,
    measure: bool = True,
    progress: Progress | None = None,
    command: list[str] | None = None,
    dataset: Dataset | None = None,
    imports: tuple[str, ...] = (),
) -> BenchResult:
    """Trains every variant of `config` that the run folder does not hold yet, and builds the tables.

    Args:
        config: the comparison.
        data_dir: where to read the data set from (see `datasets.load`).
        results_dir: the folder that holds run folders.
        run_name: the run folder's name; defaults to one derived from the configuration.
        fresh: discard the run folder's earlier results instead of resuming.
        retry_failed: train variants again that failed before.
        isolate: train each variant in a fresh Python process.
        measure: also measure inference throughput and latency.
        progress: receives progress events (dicts with an `"event"` key).
        command: the command line recorded in environment.json.
        dataset: an already loaded data set (it must be `config.dataset`).
        imports: modules that register custom cells, imported in every
            training process too (see `cells.import_cell_modules`).

    Returns:
        A `BenchResult` with the tables of every variant in the run folder.

    Raises:
        DatasetError, ConfigError, ResultsError: nothing was trained or written.
    """
    emit = progress or (lambda event: None)
    if dataset is None:
        dataset = load(config.dataset, data_dir)
    if dataset.name != config.dataset:
        raise ConfigError(f"the data set passed is {dataset.name!r}, the configuration names {config.dataset!r}")
    shared = config.shared()
    folder = BenchFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    check_run_name(run_name)
    folder.prepare()
    if fresh:
        folder.discard()
        folder.prepare()
    folder.check_config(shared, dataset.sha256)
    atomic_write_json(
        folder.path / "environment.json",
        environment_info(
            command,
            dataset=dataset.describe(),
            config=shared,
            cells=list(config.cells),
            seeds=list(config.seeds),
            preset=config.preset,
            isolated_variants=isolate,
        ),
    )

    def finished(path: Path) -> bool:
        record = records.read_record(path)
        return record is not None and (record["row"].get("status") == "ok" or not retry_failed)

    plan = []
    for variant in config.variants():
        key = _variant_key(shared, dataset.sha256, variant)
        path = folder.variant_path(variant, key)
        plan.append((variant, key, path, finished(path)))
    emit(
        {
            "event": "run_start",
            "run_dir": str(folder.path),
            "total": len(plan),
            "kept": sum(keep for *_, keep in plan),
            "dataset": dataset.describe(),
        }
    )

    trained = kept = 0
    for index, (variant, key, path, keep) in enumerate(plan, start=1):
        label = {"cell": variant.cell, "seed": variant.seed, "index": index, "total": len(plan)}
        if keep or finished(path):  # finished earlier, or meanwhile by another process
            kept += 1
            emit({"event": "variant_kept", **label})
            continue
        emit({"event": "variant_start", **label, "epochs": variant.epochs})
        log_path = folder.logs / f"{path.stem}.log"
        spec = {
            "dataset": dataset.name,
            "data_dir": None if data_dir is None else str(data_dir),
            "dataset_sha256": dataset.sha256,
            "train_config": variant.to_dict(),
            "measure": measure,
            "imports": list(imports),
        }

        def forward(event, label=label):
            emit({**event, **label})

        if isolate:
            outcome = _worker.run_isolated(spec, log_path, forward)
        else:
            outcome = _worker.execute(spec, forward, dataset=dataset)
        row = {
            **outcome["row"],
            "variant": key,
            "dataset": dataset.name,
            "dataset_sha256": dataset.sha256,
            "dataset_verified": dataset.verified,
            "isolated": isolate,
        }
        records.write_record(path, key, variant.to_dict(), row, outcome.get("history", []))
        trained += 1
        emit({"event": "variant_end", **label, "row": row})
        with folder.lock():
            _write_tables(folder)

    with folder.lock():
        result = _write_tables(folder)
    result.trained, result.kept = trained, kept
    result.files.insert(0, folder.path / "environment.json")
    emit({"event": "run_end", "run_dir": str(folder.path), "trained": trained, "kept": kept, "failed": result.failed})
    return result
