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

With `frameworks=("keras", "torch")` each (cell, seed) also trains as a PyTorch
model of the same shape (`recurrent_mnist.torch_peer`), always in a process of
its own that never loads TensorFlow, on the same arrays and measured alike;
its rows say `framework` torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from recurrent_mnist import _worker, reporting, settings, sizing, torch_peer
from recurrent_mnist.datasets import Dataset, load
from recurrent_mnist.environment import FRAMEWORK_FIELDS, code_identity, describe_code, machine_environment
from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.runs.folder import RunFolder, check_run_name, digest
from recurrent_mnist.torch_peer import worker as torch_worker
from recurrent_mnist.training.config import TrainConfig
from recurrent_mnist.training.measure import NO_STEADY_EPOCH
from recurrent_mnist.training.tensorboard import check_tensorboard, prepare_tensorboard_root

__all__ = ["PRESETS", "BenchConfig", "BenchResult", "rebuild_report", "run_bench"]

Progress = Callable[[dict], None]

PRESETS = settings.PRESETS
# What a preset may set besides training settings.
_BENCH_FIELDS = ("dataset", "cells", "seeds", "match_params", "frameworks")
# The training settings a cell may have of its own (`--units CELL=N`, `--from-tune`).
PER_CELL = ("units", "layers", "bidirectional", "dropout", "recurrent_dropout", "learning_rate", "batch_size")
# What trains the variants: Keras (the default), and the PyTorch peer of the same model.
FRAMEWORKS = torch_peer.FRAMEWORKS
DEFAULT_FRAMEWORKS = FRAMEWORKS[:1]

# What summary.md says when a run has PyTorch rows.
TORCH_NOTE = (
    "Rows of framework torch are the PyTorch peer of each Keras model (`recurrent_mnist.torch_peer`), each "
    "trained in a process without TensorFlow: the same layers, parameters, initial weight scheme, input "
    "dropout, Adam learning rate and epsilon, data, validation split, batch size, early stopping and "
    "measurements; its own random draws (initial weights, dropout masks) and batch order (a permutation per "
    "epoch seeded with the variant's seed), so a seed is not the same run in both frameworks. Its first epoch "
    "compiles nothing, but is kept out of the steady-state epoch time as Keras's is."
)

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
        per_cell: training settings of their own per cell (`PER_CELL` fields),
            over `train`'s: `{"gru": {"units": 148}}`. Every cell named must be compared.
        match_params: give every cell but the first the units that bring its
            parameter count closest to the first's (see `sizing.matched_units`);
            `run_bench` resolves them into `per_cell` once the data set's image
            shape is known.
        from_tune: where `per_cell` came from, when it is each cell's best trial
            of a search (`tuned_settings`): `{"run": ..., "trials": {cell: trial_id}}`.
        frameworks: what trains each (cell, seed): `"keras"` (default) and/or
            `"torch"`, the PyTorch peer of the same model (`recurrent_mnist.torch_peer`;
            needs `pip install "recurrent-mnist[torch]"` and the built-in cells).
            Each (cell, seed, framework) is one variant.

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
    per_cell: dict[str, dict] = dataclasses.field(default_factory=dict)
    match_params: bool = False
    from_tune: dict | None = None
    frameworks: tuple[str, ...] = DEFAULT_FRAMEWORKS

    def __post_init__(self):
        settings.DATASET.check(self.dataset)
        object.__setattr__(self, "cells", settings.check_cells(tuple(self.cells)))
        seeds = tuple(self.seeds)
        if not seeds:
            raise ConfigError("`seeds` is empty; give at least one seed", argument="seeds")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(settings.SEED.check(s, "seeds") for s in seeds)))
        if not isinstance(self.train, TrainConfig):
            raise ConfigError(f"`train` must be a TrainConfig. Received: train={self.train!r}", argument="train")
        per_cell = {}
        for cell, overrides in dict(self.per_cell).items():
            name = settings.check_cells((cell,))[0]
            fields = sorted(set(overrides) - set(PER_CELL))
            if fields:
                raise ConfigError(
                    f"`per_cell` may set {', '.join(PER_CELL)}; not {', '.join(fields)}. "
                    f"Received: per_cell={dict(self.per_cell)!r}",
                    argument="per_cell",
                )
            if name not in self.cells:
                argument = "units" if set(overrides) == {"units"} else "per_cell"
                raise ConfigError(
                    f"`{argument}` names {name}, which is not compared (cells: {', '.join(self.cells)}). "
                    f"Received: {argument}={dict(self.per_cell)!r}",
                    argument=argument,
                )
            checked = dataclasses.replace(self.train, **overrides)  # TrainConfig checks every value
            per_cell[name] = {field: getattr(checked, field) for field in overrides}
        object.__setattr__(self, "per_cell", per_cell)
        if self.match_params and len(self.cells) < 2:
            raise ConfigError(
                f"`match_params` needs two cells or more to match. Received: cells={list(self.cells)}",
                argument="match_params",
            )
        if self.match_params and self.from_tune:
            raise ConfigError(
                "`match_params` and `from_tune` both choose the cells' sizes; pick one", argument="match_params"
            )
        frameworks = (self.frameworks,) if isinstance(self.frameworks, str) else tuple(self.frameworks)
        unknown = [framework for framework in frameworks if framework not in FRAMEWORKS]
        if unknown or not frameworks:
            raise ConfigError(
                f"`frameworks` must name one or more of {', '.join(FRAMEWORKS)}. Received: frameworks={frameworks!r}",
                argument="frameworks",
            )
        object.__setattr__(self, "frameworks", tuple(dict.fromkeys(frameworks)))
        if "torch" in self.frameworks:
            torch_peer.check_trainable([self.config_of(cell) for cell in self.cells])

    def config_of(self, cell: str) -> TrainConfig:
        """The training configuration of `cell` (its seed aside)."""
        return dataclasses.replace(self.train, cell=cell, **self.per_cell.get(cell, {}))

    @classmethod
    def from_options(cls, preset: str | None = None, **options) -> BenchConfig:
        """A configuration from flat options: `dataset`, `cells`, `seeds`, `match_params`,
        `units_per_cell` (`{cell: units}`), `from_tune` (a tune run folder, see
        `tuned_settings`) and any `TrainConfig` field.

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
        per_cell = {cell: {"units": units} for cell, units in base.pop("units_per_cell", {}).items()}
        if "from_tune" in base:
            tuned, provenance = tuned_settings(base.pop("from_tune"), bench.get("cells"))
            bench.setdefault("cells", tuple(tuned))
            for cell, values in tuned.items():
                per_cell[cell] = {**values, **per_cell.get(cell, {})}
            bench["from_tune"] = provenance
        return cls(**bench, train=TrainConfig(**base), preset=preset, per_cell=per_cell)

    def variants(self) -> list[TrainConfig]:
        """The training configuration of each (cell, seed), whatever framework trains it."""
        # Seed-major order interleaves the cells, so a drift in machine load over
        # the run does not favour the cells that ran first.
        return [dataclasses.replace(self.config_of(cell), seed=seed) for seed in self.seeds for cell in self.cells]

    def framework_variants(self) -> list[tuple[str, TrainConfig]]:
        """Every variant as `(framework, configuration)`: each (cell, seed) in each framework, the
        frameworks of one cell next to each other (so a drift in machine load hits them alike)."""
        return [(framework, variant) for variant in self.variants() for framework in self.frameworks]

    def shared(self) -> dict:
        """What identifies the run: the training configuration but cell and seed, each cell's
        settings of its own, and how they were chosen."""
        identity = self.train.identity()
        per_cell = {
            cell: {k: v for k, v in sorted(overrides.items()) if v != getattr(self.train, k)}
            for cell, overrides in sorted(self.per_cell.items())
        }
        per_cell = {cell: overrides for cell, overrides in per_cell.items() if overrides}
        if per_cell:
            identity["per_cell"] = per_cell
        if self.match_params:
            identity["match_params"] = True
        if self.from_tune:
            identity["from_tune"] = self.from_tune
        if self.frameworks != DEFAULT_FRAMEWORKS:
            identity["frameworks"] = sorted(self.frameworks)
        return identity

    def with_matched_units(self, image_shape: tuple[int, int], num_classes: int) -> BenchConfig:
        """This configuration with `match_params` resolved into units per cell, for images of `image_shape`."""
        if not self.match_params:
            return self
        matched = sizing.matched_units(
            self.cells,
            self.config_of(self.cells[0]).units,
            layers=self.train.layers,
            bidirectional=self.train.bidirectional,
            image_shape=image_shape,
            num_classes=num_classes,
        )
        per_cell = {cell: {**self.per_cell.get(cell, {}), "units": units} for cell, units in matched.items()}
        return dataclasses.replace(self, per_cell=per_cell)


def tuned_settings(run_dir: str | os.PathLike, cells: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Each cell's best trial of a finished tune run, as training settings (`PER_CELL` fields).

    Args:
        run_dir: the tune run folder (it holds `best_hyperparameters.json` once the search ended).
        cells: the cells wanted; default: every cell the search tried.

    Returns:
        `({cell: settings}, provenance)`; the provenance names the run, the objective
        and each cell's trial and score, and joins the bench run's identity.

    Raises:
        ConfigError: the folder holds no finished search, or no finished trial of a cell wanted.
    """
    path = Path(run_dir)
    best_file = path / "best_hyperparameters.json"
    try:
        best = json.loads(best_file.read_text())
    except FileNotFoundError:
        what = "a finished search" if path.is_dir() else "a folder"
        raise ConfigError(
            f"`from_tune={path}` is not {what} (no best_hyperparameters.json: tune writes it when its search ends)",
            argument="from_tune",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"`from_tune`: {best_file} cannot be read ({exc})", argument="from_tune") from None
    found = best.get("per_cell") if isinstance(best, dict) else None
    found = found if isinstance(found, dict) else {}
    wanted = settings.check_cells(tuple(cells)) if cells else tuple(found)
    missing = [cell for cell in wanted if cell not in found]
    if missing or not wanted:
        raise ConfigError(
            f"`from_tune={path}` holds no finished trial of {', '.join(missing) or 'any cell'} "
            f"(it has: {', '.join(found) or 'none'})",
            argument="from_tune",
        )
    tuned = {
        cell: {k: settings.SETTINGS[k].kind(found[cell][k]) for k in PER_CELL if found[cell].get(k) is not None}
        for cell in wanted
    }
    provenance = {
        "run": path.name,
        "objective": best.get("objective"),
        "trials": {cell: str(found[cell].get("trial_id")) for cell in wanted},
        "scores": {cell: found[cell].get("score") for cell in wanted},
    }
    return tuned, provenance


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
    warnings: list[str] = dataclasses.field(default_factory=list)  # what a reader of the figures must know


# --------------------------------------------------------------------------- the run folder


class BenchFolder(RunFolder):
    """The files of one bench run: `run.json`, `variants/*.json` (the records), `logs/`, the tables and plots.

    While a variant trains, `variants/<name>.running` marks it: a marker without its record is a
    variant that a running or interrupted process has not finished (the run is incomplete).
    """

    FOLDERS = ("variants", "logs")
    DISCARDED = (*RESULT_FILES, *FOLDERS)

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.variants = self.path / "variants"
        self.logs = self.path / "logs"

    def variant_path(self, variant: TrainConfig, key: str, framework: str = "keras") -> Path:
        return self.variants / f"{variant_label(variant.cell, variant.seed, framework)}-{key[:12]}.json"

    def finished_variants(self) -> list[dict]:
        return records.read_records(self.variants)

    def unfinished_variants(self) -> list[str]:
        """The variants that started but have no record: training now, or interrupted."""
        return sorted(p.stem for p in self.variants.glob("*.running") if not p.with_suffix(".json").exists())


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
    found = folder.finished_variants()
    runs, summary, history = reporting.record_frames(found)
    identity = {}
    with contextlib.suppress(OSError, ValueError):
        identity = json.loads((folder.path / "run.json").read_text())
    environments = variant_environments(found)
    atomic_write_json(
        folder.path / "environment.json",
        {
            "run": folder.path.name,
            "config": identity.get("config"),
            "dataset_sha256": identity.get("dataset_sha256"),
            "code": identity.get("code"),
            "environments": environments,
            "commands": sorted({" ".join(r["command"]) for r in found if r.get("command")}),
        },
    )
    notes, warnings = [], []
    if isinstance(identity.get("config"), dict):
        notes.append("Configuration: " + ", ".join(f"{k}={v}" for k, v in identity["config"].items()) + ".")
    if identity.get("code"):
        notes.append(f"Code: {describe_code(identity['code'])}.")
    sizes = _sizes(runs)
    if (identity.get("config") or {}).get("match_params"):
        notes.append(
            f"**The cells are compared at matched parameter counts**: the first cell keeps its units, every "
            f"other cell has the units that bring its parameters closest ({sizes})."
        )
    elif (identity.get("config") or {}).get("from_tune"):
        tuned = identity["config"]["from_tune"]
        trials = ", ".join(f"{cell} trial {trial}" for cell, trial in tuned.get("trials", {}).items())
        settings_text = "; ".join(
            f"{cell}: " + ", ".join(f"{k} {v}" for k, v in values.items())
            for cell, values in identity["config"].get("per_cell", {}).items()
        )
        notes.append(
            f"**Each cell trains with its best configuration from the search {tuned.get('run')}** ({trials}); "
            f"the variants differ in more than the cell: {settings_text or 'as the shared configuration'}."
        )
    elif (identity.get("config") or {}).get("per_cell"):
        notes.append(f"The cells have settings of their own ({sizes}).")
    differing = mixed_fields(environments)
    if differing:
        warnings.append(
            f"This run mixes {len(environments)} environments (they differ in: {', '.join(differing)}); "
            "environment.json lists each with its variants. Compare timings only within one environment."
        )
    ok = runs[runs["status"] == "ok"]
    if len(ok) and ok["epoch_time_s"].isna().any():
        warnings.append(f"Epoch time is empty for some variants: {NO_STEADY_EPOCH}.")
    notes += [f"**{warning}**" for warning in warnings]
    if any(_framework_key(framework) != "keras" for framework in runs["framework"]):
        notes.append(TORCH_NOTE)
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        reasons = "; ".join(f"{_row_label(r)}: {r['error']}" for r in failed.to_dict("records"))
        notes.append(f"{len(failed)} variant(s) failed: {reasons}.")
    title = f"Recurrent cells compared: {folder.path.name}"
    files = reporting.write_tables(folder.path, runs, summary, history, title, notes)
    files.insert(0, folder.path / "environment.json")
    return BenchResult(folder.path, runs, summary, history, files, failed=len(failed), warnings=warnings)


def _sizes(runs: pd.DataFrame) -> str:
    first = runs[runs["params"].notna()].drop_duplicates("cell")
    return "; ".join(
        f"{r['cell']}: {int(r['units'])} units, {int(r['params']):,} parameters" for r in first.to_dict("records")
    )


def _framework_key(framework) -> str:
    """ "torch" of "torch 2.13.0+cpu"; "keras" of a Keras row's or of an empty value (rows from before frameworks)."""
    return str(framework).split()[0] if isinstance(framework, str) and framework else "keras"


def _row_label(row: dict) -> str:
    framework = _framework_key(row.get("framework"))
    return f"{row['cell']} seed {row['seed']}" + ("" if framework == "keras" else f" ({framework})")


def variant_environments(found: list[dict]) -> list[dict]:
    """The distinct environments that trained a run's variants, each with the variants it trained."""
    groups: dict[str, dict] = {}
    for record in found:
        environment = record.get("environment") or {}
        group = groups.setdefault(json.dumps(environment, sort_keys=True), {"variants": [], **environment})
        row = record["row"]
        group["variants"].append(variant_label(row["cell"], row["seed"], _framework_key(row.get("framework"))))
    for group in groups.values():
        group["variants"].sort()
    return sorted(groups.values(), key=lambda group: group["variants"])


def mixed_fields(environments: list[dict]) -> list[str]:
    """The fields in which the environments that trained a run differ where they should not: any field
    between environments of one framework, only the machine's (not `FRAMEWORK_FIELDS`) between frameworks."""
    plain = [{k: v for k, v in e.items() if k != "variants"} for e in environments]
    by_framework: dict[str, list[dict]] = {}
    for environment in plain:
        by_framework.setdefault(_framework_key(environment.get("framework")), []).append(environment)
    differing = set(differing_fields([{k: v for k, v in e.items() if k not in FRAMEWORK_FIELDS} for e in plain]))
    for group in by_framework.values():
        differing.update(differing_fields(group))
    return sorted(differing)


def differing_fields(items: list[dict]) -> list[str]:
    """The dotted names of the fields whose values are not the same in all `items` (nested dicts flattened)."""
    flat = [records.flatten(item) for item in items]
    names = sorted(set().union(*flat)) if flat else []
    return [name for name in names if len({json.dumps(f.get(name), sort_keys=True) for f in flat}) > 1]


# --------------------------------------------------------------------------- running variants


def variant_label(cell: str, seed: int, framework: str = "keras") -> str:
    """`lstm-seed0`; another framework than Keras is named: `lstm-torch-seed0`."""
    return f"{cell}-seed{seed}" if framework == "keras" else f"{cell}-{framework}-seed{seed}"


def _variant_key(shared: dict, dataset_sha256: str, variant: TrainConfig, framework: str = "keras") -> str:
    key = {"shared": shared, "dataset": dataset_sha256, "cell": variant.cell, "seed": variant.seed}
    if framework != "keras":  # Keras variants keep the keys they had before there were frameworks
        key["framework"] = framework
    return digest(key)


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
        key = _variant_key(shared, dataset.sha256, variant, framework)
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
                _write_tables(folder)

    with folder.lock():
        result = _write_tables(folder)
    result.trained, result.kept = trained, kept
    emit({"event": "run_end", "run_dir": str(folder.path), "trained": trained, "kept": kept, "failed": result.failed})
    return result
