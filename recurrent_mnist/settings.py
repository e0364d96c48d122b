"""Every option once: its canonical name, default, range, validation and one line of help.

The configurations (`TrainConfig`, `BenchConfig`, `TuneConfig`), the model, the
hypermodel and the command line all read their settings from here, so that a
default or a rule is written in one place. The canonical name is the
configuration field, the `runs.csv` column and the tune hyperparameter alike.

This module imports no TensorFlow and no Keras: the command line builds its
options and help from it before the library is loaded. Checks raise
`ConfigError` with `argument` set, in Keras's form: "`units` must be an
integer >= 1. Received: units=0".
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable

from recurrent_mnist import cell_names, readings
from recurrent_mnist.datasets import DATASETS
from recurrent_mnist.errors import ConfigError

__all__ = ["SETTINGS", "Setting", "check_cells", "check_fields", "check_range", "default_threads"]


def default_threads() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under `taskset`)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Setting:
    """One option: what it is called, what it defaults to and which values it takes.

    Attributes:
        name: the canonical name (configuration field, column, hyperparameter).
        help: one sentence for `--help` and the docs, without the default.
        default: the value when none is given; None where `optional` means "off"
            or "automatic" (said by `default_text`).
        kind: `int`, `float`, `bool` or `str`.
        minimum, maximum: inclusive bounds; `above`, `below`: exclusive bounds.
        choices: the allowed values of a `str` setting.
        optional: whether None is a value (off, automatic).
        default_text: how `--help` states the default, where `default` does not say it.
        search: the tune search range `(min, max)` when the option does not narrow it.
        resolve: for an `optional` setting whose None means a value known only at
            run time (all the cores), the function that gives it; `check` then
            returns that value, so that it is recorded.
    """

    name: str
    help: str
    default: object = None
    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    default_text: str | None = None
    search: tuple | None = None
    resolve: Callable[[], object] | None = None

    def describe(self) -> str:
        """The allowed values in words: "an integer >= 1", "a number in [0, 1)"."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "True or False"
        noun = "an integer" if self.kind is int else "a number"
        low = ("[", self.minimum) if self.minimum is not None else ("(", self.above)
        high = ("]", self.maximum) if self.maximum is not None else (")", self.below)
        if low[1] is not None and high[1] is not None:
            return f"{noun} in {low[0]}{format_number(low[1])}, {format_number(high[1])}{high[0]}"
        if low[1] is not None:
            return f"{noun} {'>=' if low[0] == '[' else '>'} {format_number(low[1])}"
        return noun

    def check(self, value, argument: str | None = None):
        """Returns `value` in its canonical type, or raises `ConfigError` naming the argument."""
        argument = argument or self.name
        if value is None and self.optional:
            return None if self.resolve is None else self.resolve()
        if not self._valid(value):
            allowed = self.describe() + (" or None" if self.optional else "")
            raise ConfigError(f"`{argument}` must be {allowed}. Received: {argument}={value!r}", argument=argument)
        if self.kind is float:
            return float(value)
        if self.kind is int:
            return int(value)
        return value

    def _valid(self, value) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, str) and (self.choices is None or value in self.choices)
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, wanted) or not math.isfinite(value):
            return False
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    @property
    def help_with_default(self) -> str:
        """The help sentence with the default, as `--help` shows it."""
        shown = self.default_text or (format_number(self.default) if self.default is not None else None)
        return f"{self.help} Default: {shown}." if shown else self.help


def format_number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_fields(config, checked: Iterable[Setting]) -> None:
    """Checks the fields of a frozen configuration dataclass named like `checked`, in place."""
    for setting in checked:
        object.__setattr__(config, setting.name, setting.check(getattr(config, setting.name)))


def check_readings(readings, argument: str = "readings") -> tuple[str, ...]:
    """The readings a search chooses from (duplicates dropped), each one of `READING`'s, or `ConfigError`."""
    if isinstance(readings, str) or not readings:
        raise ConfigError(
            f"`{argument}` is empty; name at least one reading. Received: {argument}={readings!r}", argument=argument
        )
    return tuple(dict.fromkeys(READING.check(reading, argument) for reading in readings))


def check_range(setting: Setting, bounds, argument: str | None = None) -> tuple:
    """Checks a `(min, max)` search range of `setting`: both values valid and min <= max."""
    argument = argument or setting.name
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ConfigError(
            f"`{argument}` must be a (min, max) pair. Received: {argument}={bounds!r}", argument=argument
        ) from None
    return _ordered(setting, low, high, argument, argument)


def narrowed_range(setting: Setting, low=None, high=None) -> tuple:
    """The search range of `setting` narrowed by a minimum and/or a maximum (`units_min`, `units_max`).

    A bound left out is the default one, moved where it must so that the range
    is not empty: `units_min=512` alone searches 512 to 512.
    """
    default_low, default_high = setting.search
    low_name, high_name = f"{setting.name}_min", f"{setting.name}_max"
    if low is None:
        low = default_low if high is None else min(default_low, setting.check(high, high_name))
    if high is None:
        high = max(default_high, setting.check(low, low_name))
    return _ordered(setting, low, high, low_name, high_name)


def _ordered(setting: Setting, low, high, low_name: str, high_name: str) -> tuple:
    low, high = setting.check(low, low_name), setting.check(high, high_name)
    if low is None or high is None or low > high:
        if low_name == high_name:
            raise ConfigError(f"`{low_name}`: the minimum {low} is above the maximum {high}", argument=low_name)
        raise ConfigError(f"`{low_name}` {low} is above `{high_name}` {high}", argument=low_name)
    return low, high


def check_cells(cells, argument: str = "cells") -> tuple[str, ...]:
    """The registered names of `cells` (aliases resolved, duplicates dropped), or `ConfigError`.

    Checks the names against `recurrent_mnist.cell_names`, which needs no
    Keras: the built-in names and aliases are there from the start, and a
    custom cell once `register_cell` (in a module that `imports` names) has
    added it.
    """
    if isinstance(cells, str) or not cells:
        raise ConfigError(
            f"`{argument}` is empty; name at least one cell. Received: {argument}={cells!r}", argument=argument
        )
    try:
        return tuple(dict.fromkeys(cell_names.canonical(cell) for cell in cells))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), argument=argument) from None


_WORKER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_ORACLE = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.\-]+):(\d{1,5})")


def parse_oracle_address(text: str, argument: str = "oracle") -> tuple[str, int]:
    """Splits `HOST:PORT` (or `[IPv6]:PORT`) into a host and a port in 1..65535, or raises `ConfigError`."""
    match = _ORACLE.fullmatch(str(text).strip())
    port = int(match.group(2) or match.group(4)) if match else 0
    if not match or not 1 <= port <= 65535:
        raise ConfigError(
            f"`{argument}` must be HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:8000. "
            f"Received: {argument}={text!r}",
            argument=argument,
        )
    return (match.group(1) or match.group(3)), port


# The examples a threshold's error gives of the two forms it takes, per argument.
_THRESHOLD_EXAMPLES = {"fail_if_slower": ("0.1", "10%"), "fail_if_less_accurate": ("0.005", "0.5%")}


def parse_threshold(value, argument: str) -> float | None:
    """A gate's limit as a fraction: `"10%"` and `"0.1"` both give 0.1; None stays None.

    Takes a number or text: a fraction in [0, 1) (`"0.1"`) or a percentage (`"10%"`);
    raises `ConfigError` naming `argument` and both forms.
    """
    if value is None:
        return None
    percent = isinstance(value, str) and value.strip().endswith("%")
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value.strip().removesuffix("%") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (not percent and number >= 1):
        fraction, percentage = _THRESHOLD_EXAMPLES.get(argument, ("0.1", "10%"))
        raise ConfigError(
            f"`{argument}` must be a fraction in [0, 1) such as {fraction} or a percentage such as {percentage}. "
            f"Received: {argument}={value!r}",
            argument=argument,
        )
    return number / 100 if percent else number


def check_worker_id(value: str | None, argument: str = "worker_id") -> str | None:
    """A keras-tuner worker id: letters, digits, '.', '_', '-', without 'chief' (keras-tuner's chief id)."""
    if value is not None and (not isinstance(value, str) or not _WORKER_ID.fullmatch(value) or "chief" in value):
        raise ConfigError(
            f"`{argument}` must be letters, digits, '.', '_' or '-' without 'chief' (keras-tuner reads that "
            f"as the chief). Received: {argument}={value!r}",
            argument=argument,
        )
    return value


# ----------------------------------------------------------------------------- the settings
# The model
UNITS = Setting("units", "Hidden units per recurrent layer.", 128, minimum=1, search=(16, 256))
LAYERS = Setting("layers", "Stacked recurrent layers.", 1, minimum=1, search=(1, 3))
BIDIRECTIONAL = Setting(
    "bidirectional", "Read the rows in both directions.", False, kind=bool, default_text="unidirectional"
)
DROPOUT = Setting(
    "dropout", "Input dropout of each recurrent layer.", 0.0, kind=float, minimum=0.0, below=1.0, search=(0.0, 0.5)
)
RECURRENT_DROPOUT = Setting(
    "recurrent_dropout",
    "Dropout of the recurrent state; slower: the fast kernels step aside.",
    0.0,
    kind=float,
    minimum=0.0,
    below=1.0,
)
READING = Setting(
    "reading",
    "How each image becomes a sequence: rows (H steps of W pixels), pixels (H*W steps of one pixel: sequential "
    "MNIST) or permuted-pixels (the same pixels in one fixed shuffled order: permuted sequential MNIST).",
    readings.DEFAULT_READING,
    kind=str,
    choices=readings.READINGS,
)
PERMUTATION_SEED = Setting(
    "permutation_seed",
    "Seed of the fixed pixel order of the permuted-pixels reading (stored in a saved model).",
    0,
    minimum=0,
)
PARAMS = Setting(
    "params",
    "Size every cell to this many parameters (its units chosen so that the whole model comes closest), "
    "as the published comparisons of cells do.",
    None,
    minimum=1,
    optional=True,
    default_text="off",
)
# The cells a comparison or a search covers unless told otherwise.
DEFAULT_CELLS = ("lstm", "gru", "simple_rnn")
# The cells `recurrent_mnist.cells` builds itself (the fast layers, then the stock Keras ones);
# `register_cell` adds more, and `import_cell_modules` (--import) imports the modules that do.
BUILTIN_CELLS = tuple(cell_names.BUILTIN_CELLS)
# Training
EPOCHS = Setting("epochs", "The most epochs to train each model.", 10, minimum=1)
BATCH_SIZE = Setting("batch_size", "Training batch size.", 128, minimum=1, search=(32, 256))
LEARNING_RATE = Setting("learning_rate", "Adam's learning rate.", 1e-3, kind=float, above=0.0, search=(1e-4, 1e-2))
VALIDATION_SPLIT = Setting(
    "validation_split",
    "Fraction of the training images held out (always the same ones) for validation; never the test set.",
    0.1,
    kind=float,
    minimum=0.0,
    below=1.0,
)
TRAIN_IMAGES = Setting(
    "train_images",
    "Train on this many of the training images: a fixed subset, the same for every variant and seed, taken "
    "after the validation split (a shorter epoch, for the 784-step readings on a small machine).",
    None,
    minimum=1,
    optional=True,
    default_text="all",
)
EARLY_STOPPING = Setting(
    "early_stopping",
    "Stop after this many epochs without a better validation score, keeping the best weights.",
    None,
    minimum=1,
    optional=True,
    default_text="off",
)
TARGET_ACCURACY = Setting(
    "target_accuracy",
    "Report the epoch and time at which each model first reaches this validation accuracy.",
    None,
    kind=float,
    above=0.0,
    maximum=1.0,
    optional=True,
    default_text="none",
)
CLIPNORM = Setting(
    "clipnorm",
    "Clip each gradient to this norm before Adam's step (long sequences train steadier with it).",
    None,
    kind=float,
    above=0.0,
    optional=True,
    default_text="off",
)
SEED = Setting("seed", "Seeds weights, shuffling and dropout.", 0, minimum=0)
STEPS_PER_EXECUTION = Setting(
    "steps_per_execution",
    "Training steps per call into the compiled graph (fewer Python round trips; 1 under the mirrored strategy).",
    50,
    minimum=1,
)
JIT_COMPILE = Setting(
    "jit_compile",
    "Compile each training step with XLA.",
    None,
    kind=bool,
    optional=True,
    default_text="automatic: on for the lstm cell at batch sizes up to 64 on one thread",
)
STRATEGY = Setting(
    "strategy",
    "tf.distribute strategy: 'mirrored' splits each batch over every GPU (or logical CPU device).",
    "default",
    kind=str,
    choices=("default", "mirrored"),
)
THREADS = Setting(
    "threads",
    "CPU threads per training process: TensorFlow runs this many operations side by side, each on one "
    "thread, and the fast recurrent layers split every batch into this many parallel chains.",
    None,
    minimum=1,
    optional=True,
    default_text="the cores this process may use",
    resolve=default_threads,
)
# The data
DATASET = Setting(
    "dataset",
    "Data set: mnist, fashion-mnist, or the embedded mnist-sample (offline).",
    "mnist",
    kind=str,
    choices=tuple(DATASETS),
)
# Searching (tune)
TUNER = Setting(
    "tuner", "keras-tuner's search algorithm.", "random", kind=str, choices=("random", "bayesian", "hyperband", "grid")
)
# Each objective a search may optimise, and whether keras-tuner maximises or minimises it.
OBJECTIVE_DIRECTIONS = {"val_accuracy": "max", "val_loss": "min"}
OBJECTIVE = Setting(
    "objective",
    "What the search optimises, on the validation split.",
    "val_accuracy",
    kind=str,
    choices=tuple(OBJECTIVE_DIRECTIONS),
)
MAX_TRIALS = Setting("max_trials", "The most trials of the search, earlier runs' included.", 10, minimum=1)
MAX_EPOCHS = Setting("max_epochs", "The most epochs of one trial (keras-tuner's name for the budget).", 10, minimum=1)
EXECUTIONS_PER_TRIAL = Setting("executions_per_trial", "Models trained per trial, their scores averaged.", 1, minimum=1)
TIME_BUDGET = Setting(
    "time_budget",
    "Minutes after which no new trial starts; running trials finish, then the search ends.",
    None,
    kind=float,
    above=0.0,
    optional=True,
    default_text="no limit",
)
DISTRIBUTED = Setting(
    "distributed",
    "Run keras-tuner's oracle for workers ('chief'), or trials for a chief ('worker').",
    None,
    kind=str,
    choices=("chief", "worker"),
    optional=True,
    default_text="one process",
)
ORACLE = Setting(
    "oracle",
    "HOST:PORT the chief listens on and workers connect to. keras-tuner's channel has no TLS or "
    "authentication: keep it on a trusted network.",
    "127.0.0.1:8000",
    kind=str,
)
# Comparing runs (compare)
ALPHA = Setting(
    "alpha",
    "Significance level of Welch's t-test over seeds: a difference counts when its p is below it.",
    0.05,
    kind=float,
    above=0.0,
    below=1.0,
)
# The folder that holds the run folders of bench and tune.
RESULTS_DIR = "results"
# Named starting points for a comparison (`bench --preset`); other options override them.
PRESETS: dict[str, dict] = {
    # The configuration of the TensorFlow 1 tutorial this project grew out of
    # (BasicLSTMCell(100), batch 50, Adam 1e-4, 21 epochs), trained correctly.
    "tutorial": {"cells": ("lstm",), "units": 100, "batch_size": 50, "learning_rate": 1e-4, "epochs": 21},
    # A first look in a minute or two on a laptop.
    "quick": {"units": 64, "epochs": 2},
}
# A search's trials stop early unless told otherwise: a search is many short trainings.
TUNE_EARLY_STOPPING = 3

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        UNITS,
        LAYERS,
        BIDIRECTIONAL,
        DROPOUT,
        RECURRENT_DROPOUT,
        READING,
        PERMUTATION_SEED,
        PARAMS,
        EPOCHS,
        BATCH_SIZE,
        LEARNING_RATE,
        CLIPNORM,
        VALIDATION_SPLIT,
        TRAIN_IMAGES,
        EARLY_STOPPING,
        TARGET_ACCURACY,
        SEED,
        STEPS_PER_EXECUTION,
        JIT_COMPILE,
        STRATEGY,
        THREADS,
        DATASET,
        TUNER,
        OBJECTIVE,
        MAX_TRIALS,
        MAX_EPOCHS,
        EXECUTIONS_PER_TRIAL,
        TIME_BUDGET,
        DISTRIBUTED,
        ORACLE,
        ALPHA,
    )
}
