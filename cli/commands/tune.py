"""`recurrent-mnist tune`: search hyperparameters with keras-tuner (`recurrent_mnist.tuning.run_search`).

The search space's options narrow the ranges of `recurrent_mnist.settings`; keras-tuner's own
words (`--max-trials`, `--max-epochs`, `--executions-per-trial`) keep their meaning there.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import (
    command_line,
    console,
    err_console,
    fail,
    import_library,
    interruptible,
    user_errors,
)

from recurrent_mnist import settings
from recurrent_mnist.settings import Setting

SEARCH, SPACE, DISTRIBUTED = o.SEARCH, o.SPACE, o.DISTRIBUTED
_READINGS_HELP = f"Readings: {', '.join(settings.READING.choices)}."


def _bound(setting: Setting, end: str, help_text: str):
    """`--units-min` and the like: one end of a search range, checked by the setting's rule."""
    default = setting.search[0 if end == "min" else 1]
    return o.setting_option(setting, SPACE, help=f"{help_text} Default: {settings.format_number(default)}.")


# The settings of a search, one option each (the search space's bounds are below, in `tune` itself).
# Where an option means what it means in bench and train it is the same declaration, in the same panel;
# `--early-stopping` and `--validation-split` say in their help why a search's differ.
SEARCH_OPTIONS = {
    "dataset": o.DatasetOpt,
    "recurrent_dropout": o.RecurrentDropoutOpt,
    "permutation_seed": o.setting_option(settings.PERMUTATION_SEED, SPACE),
    "clipnorm": o.ClipnormOpt,
    "validation_split": o.setting_option(
        settings.VALIDATION_SPLIT,
        o.TRAINING,
        help="Fraction of the training images held out (always the same ones) to score the trials on; "
        "the test split is used only once, for the best model. Default: 0.1.",
    ),
    "early_stopping": o.setting_option(
        settings.EARLY_STOPPING,
        o.TRAINING,
        help="Stop a trial after this many epochs without a better objective. "
        f"Default: {settings.TUNE_EARLY_STOPPING} (bench and train: off; a search is many short trainings).",
    ),
    "seed": o.setting_option(settings.SEED, o.TRAINING, help="Seeds the tuner and every trial. Default: 0."),
    "strategy": o.StrategyOpt,
    "steps_per_execution": o.StepsPerExecutionOpt,
    "jit_compile": o.JitOpt,
    "threads": o.ThreadsOpt,
    "tuner": o.setting_option(settings.TUNER, SEARCH),
    "max_trials": o.setting_option(settings.MAX_TRIALS, SEARCH),
    "max_epochs": o.setting_option(settings.MAX_EPOCHS, SEARCH),
    "executions_per_trial": o.setting_option(settings.EXECUTIONS_PER_TRIAL, SEARCH),
    "objective": o.setting_option(settings.OBJECTIVE, SEARCH),
    "time_budget": o.setting_option(settings.TIME_BUDGET, SEARCH),
    "distributed": o.setting_option(settings.DISTRIBUTED, DISTRIBUTED),
}


@o.with_options(o.RUN_OPTIONS, into="run")
@o.with_options(SEARCH_OPTIONS)
def tune(
    cells: o.cells_option("Cells to search over (the 'cell' hyperparameter), e.g. --cells lstm gru.", SPACE) = None,
    readings: Annotated[
        list[str] | None,
        typer.Option(
            "--reading",
            metavar="READING...",
            help="How the models read an image: one reading fixes it, several are searched over (the 'reading' "
            f"hyperparameter), e.g. --reading pixels permuted-pixels. {_READINGS_HELP} Default: rows.",
            rich_help_panel=SPACE,
            show_default=False,
        ),
    ] = None,
    units_min: _bound(settings.UNITS, "min", "Fewest hidden units; searched in powers of two from it.") = None,
    units_max: _bound(settings.UNITS, "max", "Most hidden units.") = None,
    layers_min: _bound(settings.LAYERS, "min", "Fewest stacked recurrent layers.") = None,
    layers_max: _bound(settings.LAYERS, "max", "Most stacked recurrent layers.") = None,
    bidirectional: Annotated[
        bool | None,
        typer.Option(
            "--bidirectional/--unidirectional",
            help="Fix the direction. Default: both are searched.",
            rich_help_panel=SPACE,
            show_default=False,
        ),
    ] = None,
    dropout_min: _bound(settings.DROPOUT, "min", "Least dropout.") = None,
    dropout_max: _bound(settings.DROPOUT, "max", "Most dropout.") = None,
    learning_rate_min: _bound(settings.LEARNING_RATE, "min", "Least learning rate, searched on a log scale.") = None,
    learning_rate_max: _bound(settings.LEARNING_RATE, "max", "Most learning rate.") = None,
    batch_size_min: _bound(
        settings.BATCH_SIZE, "min", "Smallest batch size; searched in powers of two from it."
    ) = None,
    batch_size_max: _bound(settings.BATCH_SIZE, "max", "Largest batch size.") = None,
    tensorboard_dir: o.tensorboard_option("each trial's training, and keras-tuner's HParams view of the search") = None,
    oracle: Annotated[
        str | None,
        typer.Option(help=settings.ORACLE.help_with_default, rich_help_panel=DISTRIBUTED, show_default=False),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            help="This worker's name; restarted with the same name, it resumes its interrupted trial. "
            "Default: host and process id.",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    imports: o.ImportOpt = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            metavar="ADDRESS",
            help="Run --workers keras-tuner workers as tasks of a Dask cluster (tcp://HOST:PORT, tls://HOST:PORT or "
            "local:N), the chief in this process; they share --results-dir (a folder every worker reaches). "
            "Needs pip install 'recurrent-mnist[cluster]'. Default: none.",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="How many keras-tuner workers run on the --cluster. Default: 1.",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    chief_address: Annotated[
        str | None,
        typer.Option(
            "--chief-address",
            metavar="HOST:PORT",
            help="Where the cluster's workers reach this process's chief (keras-tuner's gRPC, no authentication: "
            "inside a trusted network only). Default with local:N: 127.0.0.1 and a free port; required otherwise.",
            rich_help_panel=DISTRIBUTED,
            show_default=False,
        ),
    ] = None,
    *,
    given: dict,
    run: dict,
) -> None:
    """Search hyperparameters with keras-tuner: the best configuration of each cell, every trial in a table.

    The cell is one hyperparameter of a single search, beside units, layers, direction, dropout, learning
    rate and batch size. Writes trials.csv, best_hyperparameters.json, best_model.keras (the best
    configuration retrained, with its test accuracy, and its record for evaluate), summary.md and
    environment.json under RESULTS_DIR/RUN_NAME. Rerunning the same command resumes: finished trials are kept.

    Options named as in bench and train mean the same here. The search space narrows ranges instead
    of taking one value (--units-min, --units-max, ...), so there is no --preset, and keras-tuner's own
    words (--max-trials, --max-epochs, --executions-per-trial) keep their meaning.
    """
    import_library()
    _quiet_retracing()
    from recurrent_mnist_cli.views.bench import files_line
    from recurrent_mnist_cli.views.tune import TuneProgress, _describe, top_trials_table

    from recurrent_mnist.cells import import_cell_modules, resolve_imports
    from recurrent_mnist.tuning import TuneConfig, run_search

    modules = resolve_imports(o.split_values(imports) or ())
    if cluster is not None:
        oracle = _chief_for_cluster(cluster, chief_address, given, oracle)
    elif workers is not None or chief_address is not None:
        raise typer.BadParameter(
            "applies only with --cluster", param_hint="'--workers'" if workers else "'--chief-address'"
        )
    with user_errors():
        import_cell_modules(modules)
        config = TuneConfig(
            **given,
            **o.given(
                cells=tuple(o.split_values(cells)) if cells else None,
                readings=tuple(o.split_values(readings)) if readings else None,
            ),
            bidirectional=bidirectional,
            oracle=oracle,
            worker_id=worker_id,
            units=settings.narrowed_range(settings.UNITS, units_min, units_max),
            layers=settings.narrowed_range(settings.LAYERS, layers_min, layers_max),
            dropout=settings.narrowed_range(settings.DROPOUT, dropout_min, dropout_max),
            learning_rate=settings.narrowed_range(settings.LEARNING_RATE, learning_rate_min, learning_rate_max),
            batch_size=settings.narrowed_range(settings.BATCH_SIZE, batch_size_min, batch_size_max),
        )
        with contextlib.ExitStack() as stack:
            tasks = None
            if cluster is not None:
                from recurrent_mnist.cluster import commands_on_cluster

                commands = _worker_commands(oracle, workers or 1)
                tasks = stack.enter_context(commands_on_cluster(cluster, commands, config.threads or 1, os.getcwd()))
            with interruptible(TuneProgress(console)) as view:

                def progress(event: dict) -> None:
                    view(event)
                    if tasks is not None and event["event"] == "search_start":  # the chief is about to listen
                        tasks.start()

                result = run_search(
                    config,
                    **run,
                    tensorboard_dir=tensorboard_dir,
                    progress=progress,
                    command=command_line(),
                    imports=modules,
                )
        if tasks is not None:
            _say_how_the_workers_ended(tasks)
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
            f"{config.objective} {best['score']:.4f}; retrained: test accuracy {best['test_accuracy']:.4f}, "
            f"saved {result.run_dir / best['model']}",
            highlight=False,
        )
    console.print(files_line(result.run_dir, result.files), highlight=False)


# The options that start a search on a cluster, left out of the command each cluster worker runs.
_CLUSTER_FLAGS = ("--cluster", "--workers", "--chief-address", "--fresh")


def _chief_for_cluster(cluster: str, chief_address: str | None, given: dict, oracle: str | None) -> str:
    """The chief's address for a search on a cluster, checked; this process becomes the chief."""
    from recurrent_mnist.cluster import check_address, plain_tcp_warning

    with user_errors():
        kind, _ = check_address(cluster)
    if given.get("distributed") is not None or oracle is not None:
        raise typer.BadParameter(
            "a search on a cluster runs its chief here and its workers there: leave --distributed and --oracle out "
            "(--chief-address names where the workers reach the chief)",
            param_hint="'--cluster'",
        )
    if chief_address is None:
        if kind != "local":
            raise typer.BadParameter(
                "give --chief-address HOST:PORT, an address of this machine that the cluster's workers reach",
                param_hint="'--cluster'",
            )
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            chief_address = f"127.0.0.1:{probe.getsockname()[1]}"
    warning = plain_tcp_warning(cluster)
    if warning:
        err_console.print(f"[yellow]Warning:[/] {warning}", highlight=False)
    given["distributed"] = "chief"
    return chief_address


def _worker_commands(chief: str, count: int) -> list[list[str]]:
    """The command each cluster worker runs: this one, as a keras-tuner worker of the chief at `chief`."""
    words, skip = [], False
    for word in sys.argv[1:]:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in _CLUSTER_FLAGS or name in ("--distributed", "--oracle", "--worker-id"):
            skip = "=" not in word and name != "--fresh"
            continue
        words.append(word)
    base = [sys.executable, "-m", "recurrent_mnist_cli", *words, "--distributed", "worker", "--oracle", chief]
    return [[*base, "--worker-id", f"dask-{n}"] for n in range(1, count + 1)]


def _say_how_the_workers_ended(tasks) -> None:
    for outcome in tasks.outcomes:
        if outcome["returncode"] != 0:
            where = f" on {outcome['worker']}" if outcome["worker"] else ""
            how = "did not end" if outcome["returncode"] is None else f"exited with {outcome['returncode']}"
            err_console.print(f"[yellow]A search worker{where} {how}:[/] {outcome['output'][-500:]}", highlight=False)


def _quiet_retracing() -> None:
    """Every trial builds new models, and TensorFlow warns about "retracing" after a few: expected here."""
    import logging

    logging.getLogger("tensorflow").addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage()
    )
