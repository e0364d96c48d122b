"""`recurrent-mnist bench`: train the cells side by side and write the tables (`recurrent_mnist.bench`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import (
    command_line,
    console,
    err_console,
    import_library,
    interruptible,
    user_errors,
)
from rich.markup import escape

from recurrent_mnist import settings

PresetName = StrEnum("PresetName", {name: name for name in settings.PRESETS})


def _preset_help() -> str:
    described = "; ".join(
        f"'{name}': " + ", ".join(f"{key} {' '.join(v) if isinstance(v, tuple) else v}" for key, v in values.items())
        for name, values in settings.PRESETS.items()
    )
    return f"Start from a preset ({described}; 'tutorial' is the TensorFlow 1 script's). Other options override it."


@o.with_options(o.RUN_OPTIONS, into="run")
@o.with_options({"dataset": o.DatasetOpt, **o.TRAIN_OPTIONS, "target_accuracy": o.TargetAccuracyOpt})
def bench(
    cells: o.cells_option("Cells to compare, e.g. --cells lstm gru.") = None,
    seeds: Annotated[
        list[int] | None,
        typer.Option(
            "--seeds",
            help="Seeds; each (cell, seed) is one variant, e.g. --seeds 0 1 2. Default: 0.",
            callback=o.seeds_callback,
            rich_help_panel=o.TRAINING,
            show_default=False,
        ),
    ] = None,
    imports: o.ImportOpt = None,
    preset: Annotated[
        PresetName | None,
        typer.Option(
            help=_preset_help(),
            rich_help_panel=o.TRAINING,
            show_default=False,
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed", help="Train variants again that failed in an earlier run.", rich_help_panel=o.OUTPUT
        ),
    ] = False,
    isolate: Annotated[
        bool,
        typer.Option(
            "--isolate/--in-process",
            help="Train each variant in a fresh process (own memory figures, a "
            "crash fails one variant) or all in this one (faster start).",
            rich_help_panel=o.OUTPUT,
        ),
    ] = True,
    measure_inference: Annotated[
        bool,
        typer.Option(
            "--measure-inference/--no-measure-inference",
            help="Also time inference and single-image latency.",
            rich_help_panel=o.OUTPUT,
        ),
    ] = True,
    *,
    given: dict,
    run: dict,
) -> None:
    """Train the cells side by side under identical conditions and write accuracy and timing tables.

    Writes runs.csv, summary.csv, summary.md, history.csv, environment.json and plots under
    RESULTS_DIR/RUN_NAME. Rerunning the same command resumes: finished variants are kept.
    """
    import_library()
    from recurrent_mnist_cli.views.bench import BenchProgress, files_line, summary_table

    from recurrent_mnist.bench import BenchConfig, run_bench
    from recurrent_mnist.cells import import_cell_modules

    modules = tuple(o.split_values(imports) or ())
    with user_errors():
        import_cell_modules(modules)
        config = BenchConfig.from_options(
            preset.value if preset else None,
            cells=tuple(o.split_values(cells)) if cells else None,
            seeds=tuple(seeds) if seeds else None,
            **given,
        )
        with interruptible(BenchProgress(console)) as view:
            result = run_bench(
                config,
                **run,
                retry_failed=retry_failed,
                isolate=isolate,
                measure=measure_inference,
                progress=view,
                command=command_line(),
                imports=modules,
            )
    console.print(summary_table(result.summary, f"Summary ({result.run_dir})"))
    for warning in result.warnings:
        err_console.print(f"[yellow]{escape(warning)}[/]", highlight=False)
    if result.failed:
        err_console.print(f"[yellow]{result.failed} variant(s) failed; see summary.md for the reasons.[/]")
    console.print(files_line(result.run_dir, result.files), highlight=False)
