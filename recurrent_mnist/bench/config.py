"""A bench run's configuration: which cells, seeds and frameworks, with which training settings.

`BenchConfig` holds one `TrainConfig` (the settings every cell shares) and what
varies between the variants: the cells, the seeds, the frameworks, and a cell's
own settings (`per_cell`: `--units CELL=N`, `--match-params`, `--params`, `--from-tune`).
`shared()` is the part of a run's identity that the configuration decides.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from recurrent_mnist import settings, sizing, torch_peer
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.runs.folder import digest
from recurrent_mnist.training.config import TrainConfig

PRESETS = settings.PRESETS
# What a preset may set besides training settings.
_BENCH_FIELDS = ("dataset", "cells", "seeds", "match_params", "params", "frameworks")
# The training settings a cell may have of its own (`--units CELL=N`, `--from-tune`).
PER_CELL = ("units", "layers", "bidirectional", "dropout", "recurrent_dropout", "learning_rate", "batch_size")
# What trains the variants: Keras (the default), and the PyTorch peer of the same model.
FRAMEWORKS = torch_peer.FRAMEWORKS
DEFAULT_FRAMEWORKS = FRAMEWORKS[:1]


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
        params: a parameter budget: every cell gets the units that bring its
            whole model closest to this many parameters (`sizing.budget_units`),
            resolved as `match_params` is. None: off.
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
    params: int | None = None
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
        object.__setattr__(self, "params", settings.PARAMS.check(self.params))
        sizers = [name for name in ("match_params", "params", "from_tune") if getattr(self, name)]
        if len(sizers) > 1:
            raise ConfigError(
                f"`{sizers[0]}` and `{sizers[1]}` both choose the cells' sizes; pick one", argument=sizers[0]
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
        `units_per_cell` (`{cell: units}`), `layers_per_cell` (`{cell: layers}`), `from_tune` (a tune run folder, see
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
        per_cell = {}
        for field in ("units", "layers"):
            for cell, value in base.pop(f"{field}_per_cell", {}).items():
                per_cell.setdefault(cell, {})[field] = value
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
        if self.params:
            identity["params"] = self.params
        if self.from_tune:
            identity["from_tune"] = self.from_tune
        if self.frameworks != DEFAULT_FRAMEWORKS:
            identity["frameworks"] = sorted(self.frameworks)
        return identity

    def with_matched_units(self, image_shape: tuple[int, int], num_classes: int) -> BenchConfig:
        """This configuration with `match_params` or `params` resolved into units per cell, for images of
        `image_shape`."""
        if not (self.match_params or self.params):
            return self
        shape = dict(
            layers=self.train.layers,
            bidirectional=self.train.bidirectional,
            image_shape=tuple(image_shape),
            num_classes=num_classes,
            reading=self.train.reading,
        )
        layers = {cell: self.config_of(cell).layers for cell in self.cells}
        if self.params:
            matched = sizing.budget_units(self.cells, self.params, layers_per_cell=layers, **shape)
        else:
            matched = sizing.matched_units(
                self.cells, self.config_of(self.cells[0]).units, layers_per_cell=layers, **shape
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


def untried_cells(run_dir: str | os.PathLike) -> tuple[str, ...]:
    """The cells a tune run searched over but finished no trial of (empty where its files do not say)."""
    path = Path(run_dir)
    try:
        searched = json.loads((path / "search.json").read_text())["config"]["cells"]
        found = json.loads((path / "best_hyperparameters.json").read_text()).get("per_cell") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ()
    return tuple(cell for cell in searched if cell not in found)


def default_run_name(config: BenchConfig, dataset_sha256: str) -> str:
    """A readable name with a short hash of the whole configuration, so runs never mix."""
    prefix = f"{config.preset}-" if config.preset else ""
    train = config.train
    bi = "-bi" if train.bidirectional else ""
    readable = f"{prefix}{config.dataset}-u{train.units}-l{train.layers}{bi}-b{train.batch_size}-e{train.epochs}"
    return f"{readable}-{digest([config.shared(), dataset_sha256])[:8]}"
