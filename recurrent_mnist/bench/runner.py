"""`run_bench`: train every variant a bench run folder does not hold yet, each in its own process."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from recurrent_mnist import _worker, settings
from recurrent_mnist import cluster as cluster_module
from recurrent_mnist.bench.config import BenchConfig, default_run_name
from recurrent_mnist.bench.folder import BenchFolder, BenchResult, variant_key, write_tables
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import code_identity, machine_environment
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json, atomic_write_text
from recurrent_mnist.runs.folder import check_run_name
from recurrent_mnist.torch_peer import worker as torch_worker
from recurrent_mnist.training.config import TrainConfig
from recurrent_mnist.training.pipeline import check_train_images
from recurrent_mnist.training.tensorboard import check_tensorboard, prepare_tensorboard_root

Progress = Callable[[dict], None]


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
    tensorboard_dir: str | os.PathLike | None = None,
    cluster: str | None = None,
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
        command: the command line recorded with each variant (default: `sys.argv`).
        dataset: an already loaded data set (it must be `config.dataset`).
        imports: modules that register custom cells, imported in every
            training process too (see `cells.import_cell_modules`).
        tensorboard_dir: log each variant this call trains for TensorBoard under
            `<tensorboard_dir>/<run>/<cell>-seed<seed>/` (scalars per epoch, an
            HParams session with its configuration and final figures).
        cluster: train the variants as tasks of a Dask cluster: `tcp://HOST:PORT`
            or `tls://HOST:PORT` (a running scheduler) or `local:N` (N worker
            processes here); see `recurrent_mnist.cluster`. Each trains in a
            fresh process on its worker, as with `isolate`.

    Returns:
        A `BenchResult` with the tables of every variant in the run folder.

    Raises:
        DatasetError, ConfigError, ResultsError: nothing was trained or written; among
            them a run folder of another configuration, data set or code.
    """
    emit = progress or _ignore
    if dataset is None:
        dataset = load(config.dataset, data_dir)
    if dataset.name != config.dataset:
        raise ConfigError(f"the data set passed is {dataset.name!r}, the configuration names {config.dataset!r}")
    config = config.with_matched_units(dataset.image_shape, dataset.num_classes)
    for variant in config.variants():
        check_train_images(variant.train_images, len(dataset.x_train), variant.validation_split)
    if cluster is not None:
        check_cluster_options(cluster, config, tensorboard_dir, isolate)
    folder = _open_folder(config, dataset, results_dir, run_name, fresh)
    if tensorboard_dir is not None:
        check_tensorboard()
    code = code_identity(imports)
    folder.check_config(config.shared(), dataset.sha256, code=code)
    plan = _plan(config, dataset, folder, retry_failed)
    if not all(planned.finished for planned in plan):
        # Filling a run with other code would mix versions in one table; a run with nothing
        # left to train only has its tables rebuilt, whatever code reads it.
        folder.check_code(code)
        if tensorboard_dir is not None:
            prepare_tensorboard_root(tensorboard_dir)
    emit(
        {
            "event": "run_start",
            "run_dir": str(folder.path),
            "total": len(plan),
            "kept": sum(planned.finished for planned in plan),
            "dataset": dataset.describe(),
        }
    )
    run = _Run(
        dataset=dataset,
        data_dir=None if data_dir is None else str(data_dir),
        folder=folder,
        code=code,
        command=list(sys.argv) if command is None else list(command),
        isolate=isolate,
        measure=measure,
        imports=tuple(imports),
        tensorboard_dir=tensorboard_dir,
    )
    if cluster is not None:
        trained, kept = _train_on_cluster(run, plan, emit, retry_failed, cluster, config)
    else:
        trained, kept = _train_missing(run, plan, emit, retry_failed)
    with folder.lock():
        result = write_tables(folder)
    result.trained, result.kept = trained, kept
    emit({"event": "run_end", "run_dir": str(folder.path), "trained": trained, "kept": kept, "failed": result.failed})
    return result


def _open_folder(
    config: BenchConfig, dataset: Dataset, results_dir: str | os.PathLike, run_name: str | None, fresh: bool
) -> BenchFolder:
    """The run folder, made if it is missing, emptied first when `fresh`."""
    folder = BenchFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    check_run_name(run_name)
    folder.prepare()
    if fresh:
        folder.discard()
        folder.prepare()
    return folder


def _train_missing(run: _Run, plan: list[_Planned], emit: Progress, retry_failed: bool) -> tuple[int, int]:
    """Trains each variant of `plan` that is not finished, rebuilding the tables after each.

    Returns:
        How many variants were trained, and how many kept as they were.
    """
    trained = kept = 0
    with contextlib.ExitStack() as scratch:  # the PyTorch processes' arrays, removed at the end
        for index, planned in enumerate(plan, start=1):
            label = _label(planned, index, len(plan))
            if planned.finished or _finished(planned.path, retry_failed):  # earlier, or meanwhile by another process
                kept += 1
                emit({"event": "variant_kept", **label})
                continue
            emit({"event": "variant_start", **label, "epochs": planned.variant.epochs})
            row = _train_one(run, planned, functools.partial(_labelled, emit, label), scratch)
            trained += 1
            emit({"event": "variant_end", **label, "row": row})
            with run.folder.lock():
                write_tables(run.folder)
    return trained, kept


def check_cluster_options(address: str, config: BenchConfig, tensorboard_dir, isolate: bool = True) -> None:
    """Refuses, before anything trains, what a cluster run cannot do."""
    cluster_module.check_address(address)
    if not isolate:
        raise ConfigError(
            "a cluster trains each variant in a process of its own: leave --in-process out", argument="cluster"
        )
    if any(framework != "keras" for framework, _ in config.framework_variants()):
        raise ConfigError("a cluster trains the Keras variants only: leave --frameworks torch out", argument="cluster")
    if tensorboard_dir is not None:
        raise ConfigError(
            "TensorBoard logs are written where each variant trains; with a cluster, leave --tensorboard-dir out",
            argument="cluster",
        )


def _train_on_cluster(
    run: _Run, plan: list[_Planned], emit: Progress, retry_failed: bool, address: str, config: BenchConfig
) -> tuple[int, int]:
    """Trains the unfinished variants of `plan` as tasks of the Dask cluster at `address`.

    Each finished variant is recorded (with its worker's log) as it comes back, and the tables rebuilt
    after it, once for the variants that came back together.
    """
    threads = max(variant.threads or 1 for variant in config.variants())
    tasks, kept = [], 0
    for index, planned in enumerate(plan, start=1):
        label = _label(planned, index, len(plan))
        if planned.finished or _finished(planned.path, retry_failed):
            kept += 1
            emit({"event": "variant_kept", **label})
        else:
            tasks.append((_spec(run, planned), {**label, "epochs": planned.variant.epochs}, planned))
    trained = 0

    def done(label: dict, planned: _Planned, outcome: dict) -> None:
        nonlocal trained
        log = run.folder.logs / f"{planned.path.stem}.log"
        atomic_write_text(log, outcome.get("log") or f"(no log came back from {outcome.get('worker', 'the worker')})\n")
        row = _record(run, planned, outcome)
        trained += 1
        timing = {**outcome.get("timing", {}), "recorded_at": time.time()}
        emit({"event": "variant_end", **label, "row": row, "worker": outcome.get("worker"), **timing})

    def rebuild() -> None:
        with run.folder.lock():
            write_tables(run.folder)

    if tasks:
        with cluster_module.connect(address, threads) as client:
            cluster_module.run_variants(client, address, tasks, threads, run.code, emit, done, rebuild)
    return trained, kept


def _ignore(event: dict) -> None:
    """The progress receiver when the caller gives none."""


def _labelled(emit: Progress, label: dict, event: dict) -> None:
    """Passes a worker's `event` on to `emit`, with the variant's label."""
    emit({**event, **label})


# -- plan -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Planned:
    """One variant of the run: its framework and configuration, where its record goes, and whether
    the record was there, finished, when the run began."""

    framework: str
    variant: TrainConfig
    key: str
    path: Path
    finished: bool


def _finished(path: Path, retry_failed: bool) -> bool:
    """Whether the record at `path` means the variant needs no training: it succeeded, or it failed
    and failures are not retried."""
    record = records.read_record(path)
    return record is not None and (record["row"].get("status") == "ok" or not retry_failed)


def _plan(config: BenchConfig, dataset: Dataset, folder: BenchFolder, retry_failed: bool) -> list[_Planned]:
    """Every variant of `config`, in the order they train."""
    shared = config.shared()
    plan = []
    for framework, variant in config.framework_variants():
        key = variant_key(shared, dataset.sha256, variant, framework)
        path = folder.variant_path(variant, key, framework)
        plan.append(_Planned(framework, variant, key, path, _finished(path, retry_failed)))
    return plan


def _label(planned: _Planned, index: int, total: int) -> dict:
    """What every progress event of a variant says about which variant it is."""
    label = {"cell": planned.variant.cell, "seed": planned.variant.seed, "index": index, "total": total}
    if planned.framework != "keras":
        label["framework"] = planned.framework
    return label


# -- train one --------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """What every variant of one `run_bench` call trains with and is recorded with."""

    dataset: Dataset
    data_dir: str | None
    folder: BenchFolder
    code: dict
    command: list[str]
    isolate: bool
    measure: bool
    imports: tuple[str, ...]
    tensorboard_dir: str | os.PathLike | None
    arrays: Path | None = None  # the data set's arrays for the PyTorch processes, written once


def _spec(run: _Run, planned: _Planned) -> dict:
    """What a worker needs to train the variant: the data to load and the configuration."""
    variant = planned.variant
    tensorboard = None
    if run.tensorboard_dir is not None and planned.framework == "keras":
        tensorboard = [str(run.tensorboard_dir), f"{run.folder.path.name}/{variant.cell}-seed{variant.seed}"]
    return {
        "dataset": run.dataset.name,
        "data_dir": run.data_dir,
        "dataset_sha256": run.dataset.sha256,
        "train_config": variant.to_dict(),
        "measure": run.measure,
        "imports": list(run.imports),
        "tensorboard": tensorboard,
    }


def _torch_arrays(run: _Run, scratch: contextlib.ExitStack) -> Path:
    """The data set's arrays as a file the PyTorch processes read, written on first use into a
    temporary folder that `scratch` removes."""
    if run.arrays is None:
        where = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="recurrent-mnist-")))
        run.arrays = torch_worker.save_arrays(run.dataset, where / "arrays.npz")
    return run.arrays


def _train_one(run: _Run, planned: _Planned, forward: Progress, scratch: contextlib.ExitStack) -> dict:
    """Trains one variant, in a process of its own unless `run.isolate` is off, and records it.

    Returns:
        The variant's row, as recorded.
    """
    marker = planned.path.with_suffix(".running")
    atomic_write_json(marker, {"pid": os.getpid(), "started_at": records.now()})
    log_path = run.folder.logs / f"{planned.path.stem}.log"
    spec = _spec(run, planned)
    if planned.framework == "torch":
        # Always a process of its own, also in-process: PyTorch beside TensorFlow would share
        # the process's threads and memory, and its figures would not be PyTorch's alone.
        spec["arrays"] = _torch_arrays(run, scratch)
        outcome = torch_worker.run_isolated(spec, log_path, forward)
    elif run.isolate:
        outcome = _worker.run_isolated(spec, log_path, forward)
    else:
        outcome = _worker.execute(spec, forward, dataset=run.dataset)
    row = _record(run, planned, outcome)
    marker.unlink(missing_ok=True)
    return row


# -- record -----------------------------------------------------------------------------


def _record(run: _Run, planned: _Planned, outcome: dict) -> dict:
    """Writes the variant's record from a worker's `outcome`, with what identifies the data and
    the run; returns its row."""
    row = {
        **outcome["row"],
        "variant": planned.key,
        "dataset": run.dataset.name,
        "dataset_sha256": run.dataset.sha256,
        "dataset_verified": run.dataset.verified,
        "isolated": run.isolate or planned.framework != "keras",
    }
    # A worker that crashed reported no environment: this process's stands in.
    environment = outcome.get("environment") or {**machine_environment(planned.framework), "code": run.code}
    history = outcome.get("history", [])
    records.write_record(planned.path, planned.key, planned.variant.to_dict(), row, history, environment, run.command)
    return row
