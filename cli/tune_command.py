"""`recurrent-mnist tune`: a keras-tuner search over cells and hyperparameters, resumable and distributed.

The command parses its options, calls `recurrent_mnist.tuning.run_search` and
renders its progress events and result tables with rich (the views are in `tune_render`).
"""

from __future__ import annotations

import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli._support import (
    console,
    err_console,
    fail,
    import_library,
    install_sigterm_handler,
    interrupt_code,
    split_values,
    user_errors,
)
from recurrent_mnist_cli.options import THREADS_HELP, DatasetName, StrategyName, apply_threads, fraction, positive
from recurrent_mnist_cli.render import files_line
from recurrent_mnist_cli.tune_render import TuneProgress, _describe, top_trials_table

SEARCH = "Search"
SPACE = "Search space (narrows the defaults)"
DATA = "Data"
OUTPUT = "Output"
DISTRIBUTED = "Distributed"

# The search space's default ranges (recurrent_mnist.tuning.RANGES), repeated here so that --help
# does not have to import TensorFlow.
DEFAULT_RANGES = {
    "units": (16, 256),
    "layers": (1, 3),
    "dropout": (0.0, 0.5),
    "learning_rate": (1e-4, 1e-2),
    "batch_size": (32, 256),
}


class TunerName(StrEnum):
    random = "random"
    bayesian = "bayesian"
    hyperband = "hyperband"
    grid = "grid"


class ObjectiveName(StrEnum):
    val_accuracy = "val_accuracy"
    val_loss = "val_loss"


class RoleName(StrEnum):
    chief = "chief"
    worker = "worker"


def _open_fraction(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(f"{value} is not in (0, 1)")
    return value


def _oracle_address(value: str | None) -> str | None:
    if value is None:
        return None
    if _split_address(value)[0] is None:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT with a port in 1..65535, e.g. 127.0.0.1:8000")
    return value


def _split_address(value: str) -> tuple[str | None, int | None]:
    # The same rule as recurrent_mnist.tuning.parse_oracle_address, without importing TensorFlow to parse.
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9_.\-]+):(\d{1,5})", value.strip())
    if not match or not 1 <= int(match.group(2) or match.group(4)) <= 65535:
        return None, None
    return match.group(1) or match.group(3), int(match.group(2) or match.group(4))


def _worker_name(value: str | None) -> str | None:
    if value is not None and (not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", value) or "chief" in value):
        raise typer.BadParameter(
            f"{value!r}: use letters, digits, '.', '_' or '-', without 'chief' (keras-tuner reads that as the chief)"
        )
    return value


def _range(name: str, low, high, low_flag: str, high_flag: str) -> tuple:
    """A (min, max) range from two options; a bound left out follows the one given when it must."""
    default_low, default_high = DEFAULT_RANGES[name]
    if low is not None and high is not None and low > high:
        raise typer.BadParameter(f"{low_flag} {low} is above {high_flag} {high}", param_hint=f"'{low_flag}'")
    if low is None:
        low = min(default_low, high) if high is not None else default_low
    if high is None:
        high = max(default_high, low)
    return low, high


def _bound(kind, help_text: str, callback=None):
    return Annotated[
        kind | None,
        typer.Option(help=help_text, rich_help_panel=SPACE, show_default=False, callback=callback),
    ]


def tune(
    cells: Annotated[
        list[str] | None,
        typer.Option(
            "--cells",
            help="Cells to search over (the 'cell' hyperparameter), e.g. --cells lstm gru "
            "(default: lstm gru simple_rnn).",
            rich_help_panel=SEARCH,
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        DatasetName,
        typer.Option(
            help="Data set: mnist, fashion-mnist, or the embedded mnist-sample (offline).", rich_help_panel=DATA
        ),
    ] = DatasetName.mnist,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder with the four IDX files (gzipped or not) or mnist.npz. Default: the Keras cache, "
            "then (fashion-mnist) /usr/share/datasets/fashion-mnist, then a download.",
            rich_help_panel=DATA,
            show_default=False,
        ),
    ] = None,
    validation_split: Annotated[
        float,
        typer.Option(
            callback=_open_fraction,
            help="Fraction of the training images held out (always the same ones) to score the trials on; "
            "the test split is used only once, for the best model.",
            rich_help_panel=DATA,
        ),
    ] = 0.1,
    tuner: Annotated[TunerName, typer.Option(help="keras-tuner's search algorithm.", rich_help_panel=SEARCH)] = (
        TunerName.random
    ),
    max_trials: Annotated[
        int, typer.Option(min=1, help="Most trials of the search, earlier runs' included.", rich_help_panel=SEARCH)
    ] = 10,
    max_epochs: Annotated[int, typer.Option(min=1, help="Most epochs of one trial.", rich_help_panel=SEARCH)] = 10,
    executions_per_trial: Annotated[
        int, typer.Option(min=1, help="Models trained per trial, their scores averaged.", rich_help_panel=SEARCH)
    ] = 1,
    early_stopping: Annotated[
        int,
        typer.Option(
            min=1, help="Stop a trial after this many epochs without a better objective.", rich_help_panel=SEARCH
        ),
    ] = 3,
    objective: Annotated[
        ObjectiveName, typer.Option(help="What the search optimises, on the validation split.", rich_help_panel=SEARCH)
    ] = ObjectiveName.val_accuracy,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the tuner and every trial.", rich_help_panel=SEARCH)] = 0,
    time_budget: Annotated[
        float | None,
        typer.Option(
            callback=positive,
            help="Minutes after which no new trial starts; running trials finish, then the search ends.",
            rich_help_panel=SEARCH,
            show_default=False,
        ),
    ] = None,
    units_min: _bound(int, "Fewest hidden units (default 16); units are searched in powers of two from it.") = None,
    units_max: _bound(int, "Most hidden units (default 256).") = None,
    layers_min: _bound(int, "Fewest stacked recurrent layers (default 1).") = None,
    layers_max: _bound(int, "Most stacked recurrent layers (default 3).") = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option(
            "--bidirectional/--unidirectional",
            help="Fix the direction (default: both are searched).",
            rich_help_panel=SPACE,
            show_default=False,
        ),
    ] = None,
    dropout_min: _bound(float, "Least dropout, in [0, 1) (default 0).", fraction) = None,
    dropout_max: _bound(float, "Most dropout, in [0, 1) (default 0.5).", fraction) = None,
    learning_rate_min: _bound(float, "Least learning rate, searched on a log scale (default 1e-4).", positive) = None,
    learning_rate_max: _bound(float, "Most learning rate (default 1e-2).", positive) = None,
    batch_size_min: _bound(int, "Smallest batch size (default 32); searched in powers of two from it.") = None,
    batch_size_max: _bound(int, "Largest batch size (default 256).") = None,
    results_dir: Annotated[
        Path,
        typer.Option(
            help="Folder that holds the run folders (shared by a chief and its workers).", rich_help_panel=OUTPUT
        ),
    ] = Path("results"),
    run_name: Annotated[
        str | None,
        typer.Option(
            help="Name of this search's folder (default: derived from the search).",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Discard this search's earlier trials instead of resuming.", rich_help_panel=OUTPUT
        ),
    ] = False,
    tensorboard_dir: Annotated[
        Path | None,
        typer.Option(
            help="Write each trial's TensorBoard logs and keras-tuner's HParams view here.",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    distributed: Annotated[
        RoleName | None,
        typer.Option(
            help="Run keras-tuner's oracle for workers ('chief'), or trials for a chief ('worker').",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    oracle: Annotated[
        str | None,
        typer.Option(
            callback=_oracle_address,
            help="HOST:PORT the chief listens on and workers connect to (default 127.0.0.1:8000). The channel "
            "has no TLS or authentication: bind another address only on a network you trust.",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            callback=_worker_name,
            help="This worker's name; restarted with the same name, it resumes its interrupted trial "
            "(default: host and process id).",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    strategy: Annotated[
        StrategyName,
        typer.Option(
            help="tf.distribute strategy of each trial: 'mirrored' splits each batch over every GPU "
            "(or logical CPU device).",
            rich_help_panel=DISTRIBUTED,
        ),
    ] = StrategyName.default,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help=THREADS_HELP, rich_help_panel=SEARCH, show_default=False),
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            help="Python module(s) to import first, e.g. one that registers custom cells with "
            "recurrent_mnist.register_cell.",
            rich_help_panel=SEARCH,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Search hyperparameters with keras-tuner: the best configuration of each cell, every trial in a table.

    The cell is one hyperparameter of a single search, beside units, layers, direction, dropout, learning
    rate and batch size. Writes trials.csv, best_hyperparameters.json, best_model.keras (the best
    configuration retrained, with its test accuracy), summary.md and environment.json under
    RESULTS_DIR/RUN_NAME. Rerunning the same command resumes: finished trials are kept.
    """
    if distributed is None and (oracle is not None or worker_id is not None):
        flag = "--oracle" if oracle is not None else "--worker-id"
        raise typer.BadParameter("is for --distributed chief or worker", param_hint=f"'{flag}'")
    if distributed == RoleName.chief and worker_id is not None:
        raise typer.BadParameter("is for workers; the chief's id is 'chief'", param_hint="'--worker-id'")
    if distributed == RoleName.worker and fresh:
        raise typer.BadParameter("discards a search, which only its chief may do", param_hint="'--fresh'")
    ranges = dict(
        units=_range("units", units_min, units_max, "--units-min", "--units-max"),
        layers=_range("layers", layers_min, layers_max, "--layers-min", "--layers-max"),
        dropout=_range("dropout", dropout_min, dropout_max, "--dropout-min", "--dropout-max"),
        learning_rate=_range(
            "learning_rate", learning_rate_min, learning_rate_max, "--learning-rate-min", "--learning-rate-max"
        ),
        batch_size=_range("batch_size", batch_size_min, batch_size_max, "--batch-size-min", "--batch-size-max"),
    )
    for name, (low, _) in ranges.items():
        if name in ("units", "layers", "batch_size") and low < 1:
            flag = f"--{name.replace('_', '-')}-min"
            raise typer.BadParameter(f"{low} is not a positive integer", param_hint=f"'{flag}'")

    install_sigterm_handler()
    import_library()
    apply_threads(threads)
    _quiet_retracing()
    from recurrent_mnist.cells import canonical_cell_name, import_cell_modules
    from recurrent_mnist.errors import ConfigError
    from recurrent_mnist.tuning import TuneConfig, keras_tuner_environment, run_search

    try:
        import_cell_modules(tuple(split_values(imports) or ()))
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--import'") from None
    cell_names = split_values(cells)
    if cell_names is not None:
        try:
            cell_names = [canonical_cell_name(c) for c in cell_names]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--cells'") from None

    with user_errors():
        config = TuneConfig(
            dataset=dataset.value,
            **({"cells": tuple(cell_names)} if cell_names else {}),
            tuner=tuner.value,
            max_trials=max_trials,
            max_epochs=max_epochs,
            executions_per_trial=executions_per_trial,
            objective=objective.value,
            seed=seed,
            time_budget=time_budget,
            early_stopping=early_stopping,
            validation_split=validation_split,
            bidirectional=bidirectional,
            strategy=strategy.value,
            distributed=distributed.value if distributed else None,
            **({"oracle": oracle} if oracle else {}),
            worker_id=worker_id,
            **ranges,
        )
        # keras-tuner reads its distributed role from these variables.
        os.environ.update(keras_tuner_environment(config))
        view = TuneProgress(console)
        try:
            with view:
                result = run_search(
                    config,
                    data_dir=data_dir,
                    results_dir=results_dir,
                    run_name=run_name,
                    fresh=fresh,
                    tensorboard_dir=tensorboard_dir,
                    progress=view,
                    command=["recurrent-mnist", *sys.argv[1:]],
                )
        except KeyboardInterrupt as exc:
            err_console.print(view.interrupted_message(), highlight=False)
            raise typer.Exit(code=interrupt_code(exc)) from None
    if result.role == "worker":
        console.print(
            f"Worker done: it ran {result.ran} trial(s); {result.stop_reason}. The chief writes the tables in "
            f"{result.run_dir}.",
            highlight=False,
        )
        return
    console.print(top_trials_table(result, "Top trials"))
    if result.failed:
        err_console.print(f"[yellow]{result.failed} trial(s) failed; trials.csv and summary.md give the reasons.[/]")
    best = result.best
    if best is None:
        raise fail(f"no trial completed, so there is no best configuration; see {result.run_dir / 'trials.csv'}")
    if best.get("model"):
        console.print(
            f"[green]✓[/] best: trial {best['trial_id']} ({_describe(best['hyperparameters'])}), "
            f"{objective.value} {best['score']:.4f}; retrained: test accuracy {best['test_accuracy']:.4f}, "
            f"saved {result.run_dir / best['model']}",
            highlight=False,
        )
    console.print(files_line(result.run_dir, result.files), highlight=False)


def _quiet_retracing() -> None:
    """Every trial builds new models, and TensorFlow warns about "retracing" after a few: expected here."""
    import logging

    logging.getLogger("tensorflow").addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage()
    )
