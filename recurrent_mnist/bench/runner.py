"""`run_bench`: train every variant a bench run folder does not hold yet, each in its own process."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from recurrent_mnist import _worker, settings
from recurrent_mnist.bench.config import BenchConfig, default_run_name
from recurrent_mnist.bench.folder import BenchFolder, BenchResult, variant_key, write_tables
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import code_identity, machine_environment
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.runs.folder import check_run_name
from recurrent_mnist.torch_peer import worker as torch_worker
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

    Returns:
        A `BenchResult` with the tables of every variant in the run folder.

    Raises:
        DatasetError, ConfigError, ResultsError: nothing was trained or written; among
            them a run folder of another configuration, data set or code.
    """
    emit = progress or (lambda event: None)
    if dataset is None:
        dataset = load(config.dataset, data_dir)
    if dataset.name != config.dataset:
        raise ConfigError(f"the data set passed is {dataset.name!r}, the configuration names {config.dataset!r}")
    config = config.with_matched_units(dataset.image_shape, dataset.num_classes)
    shared = config.shared()
    folder = BenchFolder(Path(results_dir) / (run_name or default_run_name(config, dataset.sha256)))
    check_run_name(run_name)
    folder.prepare()
    if fresh:
        folder.discard()
        folder.prepare()
    if tensorboard_dir is not None:
        check_tensorboard()
    code = code_identity(imports)
    folder.check_config(shared, dataset.sha256, code=code)
    command = list(sys.argv) if command is None else list(command)

    def finished(path: Path) -> bool:
        record = records.read_record(path)
        return record is not None and (record["row"].get("status") == "ok" or not retry_failed)

    plan = []
    for framework, variant in config.framework_variants():
        key = variant_key(shared, dataset.sha256, variant, framework)
        path = folder.variant_path(variant, key, framework)
        plan.append((framework, variant, key, path, finished(path)))
    if not all(keep for *_, keep in plan):
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
            "kept": sum(keep for *_, keep in plan),
            "dataset": dataset.describe(),
        }
    )

    trained = kept = 0
    arrays = None  # the data set's arrays for the PyTorch processes, written once, removed at the end
    with contextlib.ExitStack() as scratch:
        for index, (framework, variant, key, path, keep) in enumerate(plan, start=1):
            label = {"cell": variant.cell, "seed": variant.seed, "index": index, "total": len(plan)}
            if framework != "keras":
                label["framework"] = framework
            if keep or finished(path):  # finished earlier, or meanwhile by another process
                kept += 1
                emit({"event": "variant_kept", **label})
                continue
            emit({"event": "variant_start", **label, "epochs": variant.epochs})
            marker = path.with_suffix(".running")
            atomic_write_json(marker, {"pid": os.getpid(), "started_at": records.now()})
            log_path = folder.logs / f"{path.stem}.log"
            spec = {
                "dataset": dataset.name,
                "data_dir": None if data_dir is None else str(data_dir),
                "dataset_sha256": dataset.sha256,
                "train_config": variant.to_dict(),
                "measure": measure,
                "imports": list(imports),
                "tensorboard": None
                if tensorboard_dir is None or framework != "keras"
                else [str(tensorboard_dir), f"{folder.path.name}/{variant.cell}-seed{variant.seed}"],
            }

            def forward(event, label=label):
                emit({**event, **label})

            if framework == "torch":
                # Always a process of its own, also in-process: PyTorch beside TensorFlow would share
                # the process's threads and memory, and its figures would not be PyTorch's alone.
                if arrays is None:
                    where = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="recurrent-mnist-")))
                    arrays = torch_worker.save_arrays(dataset, where / "arrays.npz")
                outcome = torch_worker.run_isolated({**spec, "arrays": arrays}, log_path, forward)
            elif isolate:
                outcome = _worker.run_isolated(spec, log_path, forward)
            else:
                outcome = _worker.execute(spec, forward, dataset=dataset)
            row = {
                **outcome["row"],
                "variant": key,
                "dataset": dataset.name,
                "dataset_sha256": dataset.sha256,
                "dataset_verified": dataset.verified,
                "isolated": isolate or framework != "keras",
            }
            # A worker that crashed reported no environment: this process's stands in.
            environment = outcome.get("environment") or {**machine_environment(framework), "code": code}
            records.write_record(path, key, variant.to_dict(), row, outcome.get("history", []), environment, command)
            marker.unlink(missing_ok=True)
            trained += 1
            emit({"event": "variant_end", **label, "row": row})
            with folder.lock():
                write_tables(folder)

    with folder.lock():
        result = write_tables(folder)
    result.trained, result.kept = trained, kept
    emit({"event": "run_end", "run_dir": str(folder.path), "trained": trained, "kept": kept, "failed": result.failed})
    return result
