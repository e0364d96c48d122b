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
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from recurrent_mnist import reporting, settings
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import environment_info
from recurrent_mnist.errors import ConfigError, ResultsError
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


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def default_run_name(config: BenchConfig, dataset_sha256: str) -> str:
    """A readable name with a short hash of the whole configuration, so runs never mix."""
    prefix = f"{config.preset}-" if config.preset else ""
    train = config.train
    bi = "-bi" if train.bidirectional else ""
    readable = f"{prefix}{config.dataset}-u{train.units}-l{train.layers}{bi}-b{train.batch_size}-e{train.epochs}"
    return f"{readable}-{_digest([config.shared(), dataset_sha256])[:8]}"


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


class RunFolder:
    """The files of one run: `run.json`, `variants/*.json`, `logs/`, the tables and plots."""

    def __init__(self, path: Path):
        self.path = path
        self.variants = path / "variants"
        self.logs = path / "logs"

    def prepare(self) -> None:
        """Creates the folders, or raises `ResultsError` naming the folder that cannot be written."""
        try:
            self.variants.mkdir(parents=True, exist_ok=True)
            self.logs.mkdir(exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ResultsError(_os_message(self.path, exc)) from None
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self, older_than_s: float = 3600.0) -> None:
        # Left by a process killed between writing a temporary file and renaming it.
        now = time.time()
        for folder in (self.path, self.variants):
            for tmp in folder.glob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime > older_than_s:
                        tmp.unlink()

    def discard(self) -> None:
        """Removes this package's files from the run folder (for `fresh=True`)."""
        for name in RESULT_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        for folder in (self.variants, self.logs):
            shutil.rmtree(folder, ignore_errors=True)

    def check_config(self, shared: dict, dataset_sha256: str) -> None:
        """Writes run.json, or checks that an existing one describes the same configuration."""
        run_file = self.path / "run.json"
        wanted = {"config": shared, "dataset_sha256": dataset_sha256}
        if run_file.exists():
            try:
                existing = json.loads(run_file.read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{run_file} cannot be read ({exc}); pass --fresh to start the run over") from None
            differences = _differences(existing, wanted)
            if differences:
                raise ResultsError(
                    f"{self.path} holds a run with another configuration ({differences}); "
                    "choose another --run-name, or pass --fresh to discard it"
                )
            return
        reporting.atomic_write_json(run_file, {**wanted, "config_hash": _digest(wanted)})

    def variant_path(self, variant: TrainConfig, key: str) -> Path:
        return self.variants / f"{variant.cell}-seed{variant.seed}-{key[:12]}.json"

    def read_variant(self, path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: trained again
        return record if isinstance(record, dict) and "row" in record else None

    def finished_variants(self) -> list[dict]:
        records = []
        for path in sorted(self.variants.glob("*.json")):
            record = self.read_variant(path)
            if record is not None:
                records.append(record)
        return records

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the run folder while tables are rebuilt (best effort where
        the file system has no locks: every table is still rebuilt from all variant files)."""
        try:
            import fcntl
        except ImportError:  # not on POSIX
            yield
            return
        with open(self.path / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


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


def _os_message(path: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        reason = "a file stands where a folder is needed"
    return f"the results folder {path} cannot be created or written: {reason}"


# --------------------------------------------------------------------------- tables


def rebuild_report(run_dir: str | os.PathLike) -> BenchResult:
    """Rebuilds every table and plot of a run folder from its variant files.

    Raises:
        ResultsError: the folder holds no run.
    """
    folder = RunFolder(Path(run_dir))
    if not (folder.path / "run.json").exists() and not folder.variants.is_dir():
        raise ResultsError(f"{folder.path} holds no bench run (no run.json or variants/ inside)")
    with folder.lock():
        return _write_tables(folder)


def _write_tables(folder: RunFolder) -> BenchResult:
    records = folder.finished_variants()
    runs = reporting.runs_frame(record["row"] for record in records)
    history = reporting.history_frame(
        {**entry, "cell": record["row"]["cell"], "seed": record["row"]["seed"], "variant": record["key"]}
        for record in records
        for entry in record.get("history", [])
    )
    summary = reporting.summary_frame(runs)
    path = folder.path
    reporting.write_csv(runs, path / "runs.csv")
    reporting.write_csv(summary, path / "summary.csv")
    reporting.write_csv(history, path / "history.csv")
    notes = []
    run_file = path / "run.json"
    if run_file.exists():
        with contextlib.suppress(OSError, ValueError):
            config = json.loads(run_file.read_text())["config"]
            notes.append("Configuration: " + ", ".join(f"{k}={v}" for k, v in config.items()) + ".")
    failed = int((runs["status"] != "ok").sum()) if not runs.empty else 0
    if failed:
        reasons = runs.loc[runs["status"] != "ok", ["cell", "seed", "error"]].to_dict("records")
        notes.append(
            f"{failed} variant(s) failed: "
            + "; ".join(f"{r['cell']} seed {r['seed']}: {r['error']}" for r in reasons)
            + "."
        )
    reporting.atomic_write_text(
        path / "summary.md", reporting.summary_markdown(summary, f"Recurrent cells compared: {path.name}", notes)
    )
    files = [path / name for name in ("runs.csv", "summary.csv", "summary.md", "history.csv")]
    if reporting.plot_learning_curves(history, path / "learning_curves.png"):
        files.append(path / "learning_curves.png")
    if reporting.plot_accuracy_vs_time(runs, path / "accuracy_vs_time.png"):
        files.append(path / "accuracy_vs_time.png")
    return BenchResult(run_dir=path, runs=runs, summary=summary, history=history, files=files, failed=failed)


# --------------------------------------------------------------------------- running variants


def _variant_key(shared: dict, dataset_sha256: str, variant: TrainConfig) -> str:
    return _digest({"shared": shared, "dataset": dataset_sha256, "cell": variant.cell, "seed": variant.seed})


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
    folder = RunFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    if run_name is not None and (not run_name.strip() or Path(run_name).name != run_name or run_name in (".", "..")):
        raise ConfigError(f"--run-name must be a plain folder name; received {run_name!r}")
    folder.prepare()
    if fresh:
        folder.discard()
        folder.prepare()
    folder.check_config(shared, dataset.sha256)
    reporting.atomic_write_json(
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

    plan = []
    for variant in config.variants():
        key = _variant_key(shared, dataset.sha256, variant)
        path = folder.variant_path(variant, key)
        record = folder.read_variant(path)
        keep = record is not None and (record["row"].get("status") == "ok" or not retry_failed)
        plan.append((variant, key, path, keep))
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
        record = folder.read_variant(path) if not keep else None
        if keep or record is not None:  # finished earlier, or meanwhile by another process
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
            outcome = _run_isolated(spec, log_path, forward)
        else:
            from recurrent_mnist._worker import execute

            outcome = execute(spec, forward, dataset=dataset)
        row = {
            **outcome["row"],
            "variant": key,
            "dataset": dataset.name,
            "dataset_sha256": dataset.sha256,
            "isolated": isolate,
        }
        reporting.atomic_write_json(
            path, {"key": key, "train_config": variant.to_dict(), "row": row, "history": outcome.get("history", [])}
        )
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


def _run_isolated(spec: dict, log_path: Path, emit: Progress) -> dict:
    """Runs one variant in a fresh `python -m recurrent_mnist._worker`, relaying its events.

    Its stderr (TensorFlow's notices, any traceback) goes to `log_path`.
    """
    outcome, returncode = None, None
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            [sys.executable, "-m", "recurrent_mnist._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
        ) as process,
    ):
        try:
            process.stdin.write(json.dumps(spec))
            process.stdin.close()
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "result":
                    outcome = event
                else:
                    emit(event)
            returncode = process.wait()
        finally:
            if process.poll() is None:  # interrupted: do not leave the worker behind
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    if outcome is not None:
        return outcome
    return {"row": _failed_row(spec, _crash_reason(returncode, log_path)), "history": []}


def _crash_reason(returncode: int, log_path: Path) -> str:
    if returncode < 0:
        import signal

        name = (
            signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        )
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


def _failed_row(spec: dict, reason: str) -> dict:
    return TrainConfig.from_dict(spec["train_config"]).failed_row(reason)
