"""The options the commands share, declared once from `recurrent_mnist.settings`, and the flag names of errors.

A setting's help, default and range come from `recurrent_mnist.settings`; an
option here only adds its flag and help panel. Values are checked by the
setting's own rule (a callback), so a bad value is a usage error naming the
flag before anything is loaded. The library names arguments in backticks in
its errors (`run_name`, `fresh=True`); `cli_terms` turns those into flags.
"""

from __future__ import annotations

import functools
import inspect
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.settings import Setting

# The help panels, the same for an option in every command that has it, shown in this order.
MODEL = "Model"
SPACE = "Search space (narrows the defaults)"
DATA = "Data"
TRAINING = "Training"
SEARCH = "Search"
DISTRIBUTED = "Distributed"
OUTPUT = "Output"
PANELS = (MODEL, SPACE, DATA, TRAINING, SEARCH, DISTRIBUTED, OUTPUT)

# Library argument -> flag, where the flag is not the argument with '-' for '_'.
_FLAGS = {
    "imports": "--import",
    "readings": "--reading",
    "num_layers": "--layers",
    "name": "--dataset",
    "dataset_name": "--dataset",
    "seed": "--seed",
    "seeds": "--seeds",
    "run_dirs": "RUN",  # compare's positional arguments
}


def flag(argument: str) -> str:
    """The command-line flag of a library argument: `run_name` -> `--run-name`, `imports` -> `--import`."""
    return _FLAGS.get(argument, "--" + argument.replace("_", "-"))


_ARGUMENT = re.compile(r"`([a-z_]+)(?:=([^`]*))?`")
_RECEIVED = re.compile(r"Received: ([a-z_]+)=")


def cli_terms(message: str) -> str:
    """A library error in the command line's terms: `fresh=True` -> --fresh, `name='x'` -> --dataset x."""

    def replace(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if value is None or value == "True":
            return flag(name)
        return f"{flag(name)} {value.strip(chr(39) + chr(34))}"

    message = _ARGUMENT.sub(replace, message)
    return _RECEIVED.sub(lambda match: f"Received: {flag(match.group(1))} ", message)


def choices(setting: Setting) -> type[StrEnum]:
    """A `str` Enum of a setting's choices, so that `--help` lists them and Click checks them."""
    return StrEnum(setting.name.title().replace("_", ""), {c.replace("-", "_"): c for c in setting.choices})


def _checked(setting: Setting):
    def callback(value):
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            try:
                setting.check(item.value if isinstance(item, StrEnum) else item)
            except ConfigError:
                raise typer.BadParameter(f"{item!r} is not {setting.describe()}") from None
        return value

    return callback


def flag_option(*flags: str, help: str, panel: str, default: str | None = None):
    """An on/off option: `--fresh`, or a pair `--isolate/--in-process` whose default the help states."""
    return Annotated[
        bool,
        typer.Option(
            *flags,
            help=f"{help} Default: {default}." if default else help,
            rich_help_panel=panel,
            show_default=False,
        ),
    ]


def setting_option(setting: Setting, panel: str, *flags: str, help: str | None = None, kind=None):
    """The `Annotated` option of a setting: its help with the default, its check, no default of its own.

    The option's value is None when not given, so that the library applies the
    setting's default (one home for it).
    """
    if kind is None:
        kind = choices(setting) if setting.choices else setting.kind
    return Annotated[
        kind | None,
        typer.Option(
            *flags,
            help=help or setting.help_with_default,
            callback=_checked(setting),
            rich_help_panel=panel,
            show_default=False,
        ),
    ]


seeds_callback = _checked(settings.SEED)

DatasetName = choices(settings.DATASET)
StrategyName = choices(settings.STRATEGY)

DatasetOpt = setting_option(settings.DATASET, DATA)
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder with the four IDX files (gzipped or not) or mnist.npz. Default: the Keras cache, "
        "then (fashion-mnist) /usr/share/datasets/fashion-mnist, then a download.",
        rich_help_panel=DATA,
        show_default=False,
    ),
]
UnitsOpt = setting_option(settings.UNITS, MODEL)
LayersOpt = setting_option(settings.LAYERS, MODEL)
BidirectionalOpt = setting_option(settings.BIDIRECTIONAL, MODEL, "--bidirectional/--unidirectional")
DropoutOpt = setting_option(settings.DROPOUT, MODEL)
RecurrentDropoutOpt = setting_option(settings.RECURRENT_DROPOUT, MODEL)
ReadingOpt = setting_option(settings.READING, MODEL)
PermutationSeedOpt = setting_option(settings.PERMUTATION_SEED, MODEL)
ClipnormOpt = setting_option(settings.CLIPNORM, TRAINING)
ParamsOpt = setting_option(settings.PARAMS, MODEL)
EpochsOpt = setting_option(settings.EPOCHS, TRAINING)
BatchOpt = setting_option(settings.BATCH_SIZE, TRAINING)
LearningRateOpt = setting_option(settings.LEARNING_RATE, TRAINING)
ValidationOpt = setting_option(settings.VALIDATION_SPLIT, TRAINING)
EarlyStoppingOpt = setting_option(settings.EARLY_STOPPING, TRAINING)
TargetAccuracyOpt = setting_option(settings.TARGET_ACCURACY, TRAINING)
SeedOpt = setting_option(settings.SEED, TRAINING)
StrategyOpt = setting_option(settings.STRATEGY, TRAINING)
StepsPerExecutionOpt = setting_option(settings.STEPS_PER_EXECUTION, TRAINING)
JitOpt = setting_option(settings.JIT_COMPILE, TRAINING, "--jit-compile/--no-jit-compile")
ThreadsOpt = setting_option(settings.THREADS, TRAINING)
TrustLegacyH5Opt = flag_option(
    "--trust-legacy-h5",
    help="Allow a legacy HDF5 (.h5) model. Safe mode does not cover HDF5: only for files from a source you trust.",
    panel=MODEL,
)
ImportOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        metavar="MODULE|FILE...",
        help="Python module(s) to import first, e.g. one that registers custom cells with "
        "recurrent_mnist.register_cell: a module name (found on Python's path or in the current folder), "
        "a .py file, or a folder of them (imported in every training process too).",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
# Every cell option's list of names: the built-in ones and the registered ones.
CELLS_HELP = (
    f"Built in: {', '.join(settings.DEFAULT_CELLS)} (fast layers), "
    "indrnn (IndRNN, Li et al. 2018, fast layer), "
    f"{', '.join(c for c in settings.BUILTIN_CELLS if c.startswith('keras_'))} (without the fast path: the stock "
    "Keras layers, and IndRNN on Keras's RNN loop); or any cell registered by a module given to --import."
)
CellOpt = Annotated[
    str | None,
    typer.Option(
        "--cell",
        metavar="CELL",
        help=f"The recurrent cell (one model: bench and tune take several, --cells). {CELLS_HELP} Default: lstm.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
PresetName = StrEnum("PresetName", {name: name for name in settings.PRESETS})


def _preset_help() -> str:
    described = "; ".join(
        f"'{name}': " + ", ".join(f"{key} {' '.join(v) if isinstance(v, tuple) else v}" for key, v in values.items())
        for name, values in settings.PRESETS.items()
    )
    return f"Start from a preset ({described}; 'tutorial' is the TensorFlow 1 script's). Other options override it."


PresetOpt = Annotated[
    PresetName | None, typer.Option(help=_preset_help(), rich_help_panel=TRAINING, show_default=False)
]
MeasureInferenceOpt = flag_option(
    "--measure-inference/--no-measure-inference",
    help="Also time inference (samples per second) and single-image latency.",
    panel=OUTPUT,
    default="measure-inference",
)
ResultsDirOpt = Annotated[
    Path | None,
    typer.Option(
        help=f"Folder that holds the run folders. Default: {settings.RESULTS_DIR}.",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]
RunNameOpt = Annotated[
    str | None,
    typer.Option(
        help="Name of this run's folder. Default: derived from the configuration, with a hash.",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]
FreshOpt = Annotated[
    bool | None,
    typer.Option(
        "--fresh",
        help="Discard this run's earlier results instead of resuming.",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
]


def cells_option(help: str, panel: str = MODEL):
    """`--cells`, several values after one flag (see `VariadicCommand`)."""
    return Annotated[
        list[str] | None,
        typer.Option(
            "--cells",
            metavar="CELL...",
            help=f"{help} {CELLS_HELP} Default: {' '.join(settings.DEFAULT_CELLS)}.",
            rich_help_panel=panel,
            show_default=False,
        ),
    ]


def tensorboard_option(what: str):
    """`--tensorboard-dir`: the same option in every command that trains; `what` says what it logs there."""
    return Annotated[
        Path | None,
        typer.Option(
            "--tensorboard-dir",
            metavar="DIR",
            help=f"Write TensorBoard logs here: {what}. Open them with: tensorboard --logdir DIR. Default: none.",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ]


def _per_cell_values(setting: Setting):
    """The check of an option that takes a number for every cell and/or CELL=NUMBER (`--units`, `--layers`)."""
    name = setting.name.upper()

    def check(values: list[str] | None):
        for value in split_values(values) or []:
            cell, _, number = value.rpartition("=")
            try:
                setting.check(int(number))
            except (ValueError, ConfigError):
                raise typer.BadParameter(f"{value!r} is not {setting.describe()} or CELL={name}") from None
            if _ and not cell.strip():
                raise typer.BadParameter(f"{value!r} names no cell before '='")
        return values

    return check


def parse_per_cell(values: list[str] | None) -> tuple[int | None, dict[str, int]]:
    """`--units 64`, `--units lstm=128 gru=148` or both: the number every cell has, and those of single cells."""
    shared, per_cell = None, {}
    for value in split_values(values) or []:
        cell, _, number = value.rpartition("=")
        if cell:
            per_cell[cell.strip()] = int(number)
        else:
            shared = int(number)
    return shared, per_cell


def _per_cell_option(setting: Setting, flag: str, example: str):
    """bench's `--units` and `--layers`: a number for every cell and/or one per cell (a comparison may size
    each cell its own way)."""
    name = setting.name.upper()
    return Annotated[
        list[str] | None,
        typer.Option(
            flag,
            metavar=f"{name}|CELL={name}...",
            help=f"{setting.help} A number for every cell, and/or CELL={name} for single cells, "
            f"e.g. {flag} {example}. Default: {setting.default}.",
            callback=_per_cell_values(setting),
            rich_help_panel=MODEL,
            show_default=False,
        ),
    ]


BenchUnitsOpt = _per_cell_option(settings.UNITS, "--units", "lstm=128 gru=148")
BenchLayersOpt = _per_cell_option(settings.LAYERS, "--layers", "1 indrnn=6")
MatchParamsOpt = flag_option(
    "--match-params",
    help="Compare the cells at equal size: the first cell keeps --units, every other cell gets the units that "
    "bring its parameter count (stacking, bidirectional and head included) closest to the first's.",
    panel=MODEL,
)
FromTuneOpt = Annotated[
    Path | None,
    typer.Option(
        "--from-tune",
        metavar="RUN",
        help="A finished tune run folder: each cell trains with its best trial's units, layers, direction, "
        "dropout, learning rate and batch size (its cells are compared unless --cells names some). Default: none.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        help="Train the variants as tasks of a Dask cluster: tcp://HOST:PORT or tls://HOST:PORT (a running "
        "scheduler; each worker declares its cores with --resources threads=CORES) or local:N (N worker processes "
        "here). Each variant trains in a fresh process on its worker; the run folder is written here. Needs "
        "pip install 'recurrent-mnist[cluster]'. Default: none.",
        rich_help_panel=DISTRIBUTED,
        show_default=False,
    ),
]


# The options of a training configuration (`TrainConfig`), the same in every command that trains.
TRAIN_OPTIONS = {
    "units": UnitsOpt,
    "layers": LayersOpt,
    "bidirectional": BidirectionalOpt,
    "dropout": DropoutOpt,
    "recurrent_dropout": RecurrentDropoutOpt,
    "reading": ReadingOpt,
    "permutation_seed": PermutationSeedOpt,
    "epochs": EpochsOpt,
    "batch_size": BatchOpt,
    "learning_rate": LearningRateOpt,
    "clipnorm": ClipnormOpt,
    "validation_split": ValidationOpt,
    "train_images": setting_option(settings.TRAIN_IMAGES, DATA),
    "early_stopping": EarlyStoppingOpt,
    "strategy": StrategyOpt,
    "steps_per_execution": StepsPerExecutionOpt,
    "jit_compile": JitOpt,
    "threads": ThreadsOpt,
}


# Where a run's data comes from and where its folder is: the same for bench and tune.
RUN_OPTIONS = {"data_dir": DataDirOpt, "results_dir": ResultsDirOpt, "run_name": RunNameOpt, "fresh": FreshOpt}


def with_options(options: dict[str, object], into: str = "given"):
    """Adds `options` (name -> `Annotated` option) to a command's parameters.

    The command receives the ones the user gave, by their library names, as one
    keyword argument `into` (a dict; Enum choices as their values): one
    declaration serves every command, and the command passes the dict on to the
    library, whose defaults apply to what was not given.
    """

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != into]
        keyword = inspect.Parameter.KEYWORD_ONLY
        added = [inspect.Parameter(name, keyword, annotation=a, default=None) for name, a in options.items()]

        @functools.wraps(command)
        def call(**kwargs):
            chosen = {name: kwargs.pop(name) for name in options}
            return command(**kwargs, **{into: given(**chosen)})

        call.__signature__ = signature.replace(parameters=[*own, *added])
        return call

    return decorate


def split_values(values: list[str] | None) -> list[str] | None:
    """Accepts `--cells lstm gru`, `--cells lstm --cells gru` and `--cells lstm,gru`."""
    if values is None:
        return None
    return [part for value in values for part in value.split(",") if part.strip()]


def given(**options) -> dict:
    """The options the user gave (not None), with Enum choices as their values."""
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in options.items() if v is not None}
