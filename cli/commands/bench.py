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

Framework = StrEnum("Framework", {"keras": "keras", "torch": "torch"})


@o.with_options(o.RUN_OPTIONS, into="run")
@o.with_options(
    {
        "dataset": o.DatasetOpt,
        **o.TRAIN_OPTIONS,
        "units": o.BenchUnitsOpt,
        "layers": o.BenchLayersOpt,
        "target_accuracy": o.TargetAccuracyOpt,
    }
)
def bench(
    cells: o.cells_option("Cells to compare, e.g. --cells lstm gru.") = None,
    seeds: Annotated[
        list[int] | None,
        typer.Option(
            "--seeds",
            metavar="SEED...",
            help="Seeds; each (cell, seed) is one variant, e.g. --seeds 0 1 2 (plural, as --cells: train and "
            "tune take one --seed). Default: 0.",
            callback=o.seeds_callback,
            rich_help_panel=o.TRAINING,
            show_default=False,
        ),
    ] = None,
    frameworks: Annotated[
        list[Framework] | None,
        typer.Option(
            "--frameworks",
            metavar="FRAMEWORK...",
            help="What trains each (cell, seed): keras, and torch, the PyTorch model of the same shape, "
            'e.g. --frameworks keras torch (needs pip install "recurrent-mnist[torch]"). Default: keras.',
            rich_help_panel=o.TRAINING,
            show_default=False,
        ),
    ] = None,
    imports: o.ImportOpt = None,
    preset: o.PresetOpt = None,
    match_params: o.MatchParamsOpt = False,
    params: o.ParamsOpt = None,
    from_tune: o.FromTuneOpt = None,
    tensorboard_dir: o.tensorboard_option(
        "per variant, its loss, accuracy and epoch times per epoch, and an HParams session with its "
        "configuration and final figures"
    ) = None,
    retry_failed: o.flag_option(
        "--retry-failed", help="Train variants again that failed in an earlier run.", panel=o.OUTPUT
    ) = False,
    isolate: o.flag_option(
        "--isolate/--in-process",
        help="Train each variant in a fresh process (own memory figures, a crash fails one variant) or all in "
        "this one (faster start).",
        panel=o.OUTPUT,
        default="isolate",
    ) = True,
    measure_inference: o.MeasureInferenceOpt = True,
    cluster: o.ClusterOpt = None,
    *,
    given: dict,
    run: dict,
) -> None:
    """Train the cells side by side under identical conditions and write accuracy and timing tables.

    Writes runs.csv, summary.csv, summary.md, history.csv, environment.json and plots under
    RESULTS_DIR/RUN_NAME. Rerunning the same command resumes: finished variants are kept.
    """
    import_library()
    from recurrent_mnist_cli.views.bench import BenchProgress, files_line, summary_table, ties_line

    from recurrent_mnist.bench import BenchConfig, run_bench, untried_cells
    from recurrent_mnist.cells import import_cell_modules, resolve_imports

    modules = resolve_imports(o.split_values(imports) or ())
    units, units_per_cell = o.parse_per_cell(given.pop("units", None))
    layers, layers_per_cell = o.parse_per_cell(given.pop("layers", None))
    with user_errors():
        import_cell_modules(modules)
        config = BenchConfig.from_options(
            preset.value if preset else None,
            cells=tuple(o.split_values(cells)) if cells else None,
            seeds=tuple(seeds) if seeds else None,
            units=units,
            units_per_cell=units_per_cell or None,
            layers=layers,
            layers_per_cell=layers_per_cell or None,
            match_params=match_params or None,
            params=params,
            from_tune=from_tune,
            frameworks=tuple(framework.value for framework in frameworks) if frameworks else None,
            **given,
        )
        if cluster is not None:
            from recurrent_mnist.cluster import check_address, plain_tcp_warning

            check_address(cluster)
            warning = plain_tcp_warning(cluster)
            if warning:
                err_console.print(f"[yellow]Warning:[/] {escape(warning)}", highlight=False)
        if from_tune is not None and not cells:
            _say_what_the_search_covered(from_tune, config.cells, untried_cells(from_tune))
        with interruptible(BenchProgress(console), at_once=True) as view:
            result = run_bench(
                config,
                **run,
                retry_failed=retry_failed,
                isolate=isolate,
                measure=measure_inference,
                progress=view,
                command=command_line(),
                imports=modules,
                tensorboard_dir=tensorboard_dir,
                cluster=cluster,
            )
    console.print(summary_table(result.summary, f"Summary ({result.run_dir})"))
    for line in (ties_line(result.summary), result.first_look):
        if line:
            console.print(f"[dim]{escape(line)}[/]", highlight=False)
    for warning in result.warnings:
        err_console.print(f"[yellow]{escape(warning)}[/]", highlight=False)
    if result.failed:
        err_console.print(f"[yellow]{result.failed} variant(s) failed; see summary.md for the reasons.[/]")
    console.print(files_line(result.run_dir, result.files), highlight=False)


def _say_what_the_search_covered(run_dir, found: tuple[str, ...], untried: tuple[str, ...]) -> None:
    """`--from-tune` compares the cells with a finished trial; say so, and name the cells searched without one."""
    line = f"From {run_dir}: the best trial of {', '.join(found)}"
    if untried:
        line += (
            f"; the search also covered {', '.join(untried)} but finished no trial of "
            f"{'it' if len(untried) == 1 else 'them'}, so {'it is' if len(untried) == 1 else 'they are'} not compared"
        )
    err_console.print(line + ".", highlight=False)
