"""The `recurrent-mnist` command: compare recurrent cells on images read row by row.

Each command parses its options, calls one library function and renders the
result; the work itself lives in `recurrent_mnist`, where Python users reach it too.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli._support import (
    VariadicCommand,
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

app = typer.Typer(
    name="recurrent-mnist",
    help="Compare recurrent cells (LSTM, GRU, SimpleRNN) on images read as sequences of rows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)


class PresetName(StrEnum):
    tutorial = "tutorial"
    quick = "quick"


MODEL = "Model"
TRAINING = "Training"
DATA = "Data"
OUTPUT = "Output"


def _version_callback(value: bool) -> None:
    if value:
        try:
            console.print(f"recurrent-mnist {version('recurrent-mnist')}", highlight=False)
        except PackageNotFoundError:
            console.print("recurrent-mnist (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    version_: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Compare recurrent cells (LSTM, GRU, SimpleRNN) on images read as sequences of rows."""


# Options shared by bench, train and tune ------------------------------------------------------

DatasetOpt = Annotated[
    DatasetName,
    typer.Option(help="Data set: mnist, fashion-mnist, or the embedded mnist-sample (offline).", rich_help_panel=DATA),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder with the four IDX files (gzipped or not) or mnist.npz. Default: the Keras cache, "
        "then (fashion-mnist) /usr/share/datasets/fashion-mnist, then a download.",
        rich_help_panel=DATA,
        show_default=False,
    ),
]
UnitsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Hidden units per recurrent layer (default: 128).", rich_help_panel=MODEL, show_default=False
    ),
]
LayersOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Stacked recurrent layers (default: 1).", rich_help_panel=MODEL, show_default=False),
]
BidirectionalOpt = Annotated[
    bool | None,
    typer.Option(
        "--bidirectional/--unidirectional",
        help="Read the rows in both directions (default: unidirectional).",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
DropoutOpt = Annotated[
    float | None,
    typer.Option(
        callback=fraction,
        help="Input dropout of each recurrent layer, in [0, 1) (default: 0).",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
RecurrentDropoutOpt = Annotated[
    float | None,
    typer.Option(
        callback=fraction,
        help="Dropout of the recurrent state, in [0, 1) (default: 0). Slower: it disables the fast kernels.",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
EpochsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="Epochs per variant (default: 10).", rich_help_panel=TRAINING, show_default=False),
]
BatchOpt = Annotated[
    int | None, typer.Option(min=1, help="Batch size (default: 128).", rich_help_panel=TRAINING, show_default=False)
]
LearningRateOpt = Annotated[
    float | None,
    typer.Option(
        callback=positive, help="Adam's learning rate (default: 0.001).", rich_help_panel=TRAINING, show_default=False
    ),
]
ValidationOpt = Annotated[
    float | None,
    typer.Option(
        callback=fraction,
        help="Fraction of the training images held out for validation (default: 0.1).",
        rich_help_panel=TRAINING,
        show_default=False,
    ),
]
StrategyOpt = Annotated[
    StrategyName,
    typer.Option(
        help="tf.distribute strategy: 'mirrored' splits each batch over every GPU (or logical CPU device).",
        rich_help_panel=TRAINING,
    ),
]
StepsPerExecutionOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Training steps per call into the compiled graph (default: 50; fewer Python round trips).",
        rich_help_panel=TRAINING,
        show_default=False,
    ),
]
JitOpt = Annotated[
    bool | None,
    typer.Option(
        "--jit-compile/--no-jit-compile",
        help="Compile each training step with XLA (default: automatic: on for the lstm cell at batch "
        "sizes up to 64 with --threads 1, where it was measured faster on CPUs, off otherwise; see docs/speed.md).",
        rich_help_panel=TRAINING,
        show_default=False,
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help=THREADS_HELP,
        rich_help_panel=TRAINING,
        show_default=False,
    ),
]
ImportOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        help="Python module(s) to import first, e.g. one that registers custom cells with "
        "recurrent_mnist.register_cell (imported in every training process too).",
        rich_help_panel=MODEL,
        show_default=False,
    ),
]
EarlyStoppingOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Stop after this many epochs without a better validation accuracy, keeping the best "
        "weights (default: off).",
        rich_help_panel=TRAINING,
        show_default=False,
    ),
]


def _import_modules(modules: list[str] | None) -> tuple[str, ...]:
    from recurrent_mnist.cells import import_cell_modules
    from recurrent_mnist.errors import ConfigError

    modules = tuple(split_values(modules) or ())
    try:
        import_cell_modules(modules)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--import'") from None
    return modules


def _cell_names(values: list[str] | None) -> list[str] | None:
    values = split_values(values)
    if values is None:
        return None
    from recurrent_mnist.cells import canonical_cell_name

    try:
        return [canonical_cell_name(v) for v in values]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--cells'") from None


# bench --------------------------------------------------------------------------------------


@app.command(cls=VariadicCommand)
def bench(
    cells: Annotated[
        list[str] | None,
        typer.Option(
            "--cells",
            help="Cells to compare, e.g. --cells lstm gru (default: lstm gru simple_rnn).",
            rich_help_panel=MODEL,
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOpt = DatasetName.mnist,
    data_dir: DataDirOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    units: UnitsOpt = None,
    layers: LayersOpt = None,
    bidirectional: BidirectionalOpt = None,
    dropout: DropoutOpt = None,
    recurrent_dropout: RecurrentDropoutOpt = None,
    learning_rate: LearningRateOpt = None,
    validation_split: ValidationOpt = None,
    early_stopping: EarlyStoppingOpt = None,
    target_accuracy: Annotated[
        float | None,
        typer.Option(
            callback=positive,
            help="Report the epoch and time at which each variant first reaches this validation accuracy.",
            rich_help_panel=TRAINING,
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        list[int] | None,
        typer.Option(
            "--seeds",
            min=0,
            help="Seeds; each (cell, seed) is one variant, e.g. --seeds 0 1 2 (default: 0).",
            rich_help_panel=TRAINING,
            show_default=False,
        ),
    ] = None,
    strategy: StrategyOpt = StrategyName.default,
    steps_per_execution: StepsPerExecutionOpt = None,
    jit_compile: JitOpt = None,
    threads: ThreadsOpt = None,
    imports: ImportOpt = None,
    preset: Annotated[
        PresetName | None,
        typer.Option(
            help="Start from a preset: 'tutorial' is the original TensorFlow 1 script's configuration "
            "(LSTM, 100 units, batch 50, Adam 1e-4, 21 epochs); 'quick' is a two-epoch first look. "
            "Other options override it.",
            rich_help_panel=TRAINING,
            show_default=False,
        ),
    ] = None,
    results_dir: Annotated[
        Path, typer.Option(help="Folder that holds the run folders.", rich_help_panel=OUTPUT)
    ] = Path("results"),
    run_name: Annotated[
        str | None,
        typer.Option(
            help="Name of this run's folder (default: derived from the configuration).",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Discard this run's earlier results instead of resuming.", rich_help_panel=OUTPUT),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed", help="Train variants again that failed in an earlier run.", rich_help_panel=OUTPUT
        ),
    ] = False,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate/--in-process",
            help="Train each variant in a fresh process (own memory figures, a "
            "crash fails one variant) or all in this one (faster start).",
            rich_help_panel=OUTPUT,
        ),
    ] = True,
    measure_inference: Annotated[
        bool,
        typer.Option(
            "--measure-inference/--no-measure-inference",
            help="Also time inference and single-image latency.",
            rich_help_panel=OUTPUT,
        ),
    ] = True,
) -> None:
    """Train the cells side by side under identical conditions and write accuracy and timing tables.

    Writes runs.csv, summary.csv, summary.md, history.csv, environment.json and plots under
    RESULTS_DIR/RUN_NAME. Rerunning the same command resumes: finished variants are kept.
    """
    install_sigterm_handler()
    import_library()
    apply_threads(threads)
    from recurrent_mnist_cli.render import BenchProgress, files_line, summary_table

    from recurrent_mnist.bench import BenchConfig, run_bench

    modules = _import_modules(imports)
    cell_names = _cell_names(cells)
    with user_errors():
        config = BenchConfig.from_preset(
            preset.value if preset else None,
            dataset=dataset.value,
            cells=tuple(cell_names) if cell_names else None,
            seeds=tuple(seeds) if seeds else None,
            units=units,
            num_layers=layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_split=validation_split,
            early_stopping=early_stopping,
            target_accuracy=target_accuracy,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
            strategy=strategy.value,
        )
        view = BenchProgress(console)
        try:
            with view:
                result = run_bench(
                    config,
                    data_dir=data_dir,
                    results_dir=results_dir,
                    run_name=run_name,
                    fresh=fresh,
                    retry_failed=retry_failed,
                    isolate=isolate,
                    measure=measure_inference,
                    progress=view,
                    command=["recurrent-mnist", *sys.argv[1:]],
                    imports=modules,
                )
        except KeyboardInterrupt as exc:
            where = view.run_dir or "the results folder"
            err_console.print(
                f"Interrupted: {view.finished + view.kept} finished variant(s) are kept in {where}; "
                "run the same command again to resume.",
                highlight=False,
            )
            raise typer.Exit(code=interrupt_code(exc)) from None
    console.print(summary_table(result.summary, f"Summary ({result.run_dir})"))
    if result.failed:
        err_console.print(f"[yellow]{result.failed} variant(s) failed; see summary.md for the reasons.[/]")
    console.print(files_line(result.run_dir, result.files), highlight=False)


# report -------------------------------------------------------------------------------------


@app.command()
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A run folder written by bench, e.g. results/<run-name>.", show_default=False)
    ],
) -> None:
    """Rebuild a run's tables and plots from its finished variants (e.g. after several machines filled it)."""
    import_library()
    from recurrent_mnist_cli.render import files_line, summary_table

    from recurrent_mnist.bench import rebuild_report

    with user_errors():
        result = rebuild_report(run_dir)
    console.print(summary_table(result.summary, f"Summary ({result.run_dir})"))
    console.print(files_line(result.run_dir, result.files), highlight=False)


# datasets -----------------------------------------------------------------------------------


@app.command()
def datasets(
    check: Annotated[
        DatasetName | None,
        typer.Option(help="Load and validate this data set and print its checksum.", show_default=False),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List the data sets, or validate one with --check."""
    from rich.table import Table

    import_library()
    from recurrent_mnist import datasets as ds

    if check is None:
        table = Table(title="Data sets", title_justify="left")
        for column in ("name", "description", "licence"):
            table.add_column(column)
        for info in ds.DATASETS.values():
            table.add_row(info.name, info.description, info.licence)
        console.print(table)
        console.print(f"Keras cache: {ds.keras_cache_dirs()[0]}", highlight=False)
        return
    with user_errors():
        data = ds.load(check.value, data_dir)
    described = data.describe()
    console.print(
        f"[green]✓[/] {data.name}: {described['train_size']:,} train / {described['test_size']:,} test "
        f"images of {data.image_shape[0]}x{data.image_shape[1]}, {data.num_classes} classes",
        highlight=False,
    )
    console.print(f"  source: {data.source}\n  sha256: {data.sha256}", highlight=False)


# train and evaluate -------------------------------------------------------------------------


@app.command()
def train(
    cell: Annotated[str, typer.Option(help="Cell: lstm, gru or simple_rnn.", rich_help_panel=MODEL)] = "lstm",
    dataset: DatasetOpt = DatasetName.mnist,
    data_dir: DataDirOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    units: UnitsOpt = None,
    layers: LayersOpt = None,
    bidirectional: BidirectionalOpt = None,
    dropout: DropoutOpt = None,
    recurrent_dropout: RecurrentDropoutOpt = None,
    learning_rate: LearningRateOpt = None,
    validation_split: ValidationOpt = None,
    early_stopping: EarlyStoppingOpt = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed for weights, shuffling and dropout.", rich_help_panel=TRAINING)
    ] = 0,
    strategy: StrategyOpt = StrategyName.default,
    steps_per_execution: StepsPerExecutionOpt = None,
    jit_compile: JitOpt = None,
    threads: ThreadsOpt = None,
    imports: ImportOpt = None,
    output: Annotated[
        Path, typer.Option(help="Where to save the trained model (.keras).", rich_help_panel=OUTPUT)
    ] = Path("model.keras"),
) -> None:
    """Train one model and save it as .keras, with its history as CSV beside it.

    An interrupted training resumes from its last finished epoch when run again.
    """
    install_sigterm_handler()
    import_library()
    apply_threads(threads)
    from recurrent_mnist.single import train_and_save
    from recurrent_mnist.training import TrainConfig

    _import_modules(imports)
    (cell_name,) = _cell_names([cell]) or ["lstm"]
    overrides = {
        k: v
        for k, v in dict(
            units=units,
            num_layers=layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            validation_split=validation_split,
            early_stopping=early_stopping,
            steps_per_execution=steps_per_execution,
            jit_compile=jit_compile,
        ).items()
        if v is not None
    }
    with user_errors():
        config = TrainConfig(cell=cell_name, seed=seed, strategy=strategy.value, **overrides)
        if output.suffix != ".keras":
            raise fail(f"--output {output} must end in .keras")

        def show(event):
            if event["event"] == "epoch_end":
                logs = event["logs"]
                console.print(
                    f"epoch {event['epoch']}/{event['epochs']}: loss {logs.get('loss'):.4f} "
                    f"acc {logs.get('accuracy'):.4f} val_acc {logs.get('val_accuracy') or float('nan'):.4f} "
                    f"({event['epoch_time_s']:.1f} s)",
                    highlight=False,
                )

        try:
            outcome = train_and_save(dataset.value, config, output, data_dir=data_dir, emit=show)
        except KeyboardInterrupt as exc:
            err_console.print(
                f"Interrupted: progress is kept in {output}.backup; run the same command again to resume.",
                highlight=False,
            )
            raise typer.Exit(code=interrupt_code(exc)) from None
    row = outcome.row
    if row["status"] != "ok":
        raise fail(f"training failed: {row['error']}")
    console.print(
        f"[green]✓[/] test accuracy {row['test_accuracy']:.4f}, loss {row['test_loss']:.4f}; "
        f"saved {outcome.model_path} and {outcome.history_path}",
        highlight=False,
    )


@app.command()
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A saved .keras model.", show_default=False)],
    dataset: DatasetOpt = DatasetName.mnist,
    data_dir: DataDirOpt = None,
    trust_legacy_h5: Annotated[
        bool,
        typer.Option(
            "--trust-legacy-h5",
            help="Allow a legacy HDF5 (.h5) model. Safe mode does not cover HDF5: "
            "only for files from a source you trust.",
        ),
    ] = False,
) -> None:
    """Evaluate a saved model on a data set's test split: accuracy, loss and confusion matrix.

    The model is loaded with Keras's safe_mode=True: a file that would run code is refused.
    """
    import_library()
    from recurrent_mnist_cli.render import confusion_table

    from recurrent_mnist.single import evaluate_model

    with user_errors():
        result = evaluate_model(model_path, dataset.value, data_dir=data_dir, trust_legacy_h5=trust_legacy_h5)
    console.print(
        f"{model_path} on {result.dataset} test ({result.samples:,} images): "
        f"accuracy [bold]{result.accuracy:.4f}[/], loss {result.loss:.4f}",
        highlight=False,
    )
    console.print(confusion_table(result.confusion, result.class_names))


from recurrent_mnist_cli.tune_command import tune  # noqa: E402 - a command of its own module

app.command(cls=VariadicCommand)(tune)


def main() -> None:
    """Entry point of the `recurrent-mnist` console script."""
    app()


if __name__ == "__main__":
    main()
