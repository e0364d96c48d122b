"""`recurrent-mnist compare`: bench runs side by side, with a verdict per figure and optional regression gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli import options as o
from recurrent_mnist_cli._support import EXIT_ERROR, console, err_console, import_library, user_errors

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError

GATES = "Gates"


def _threshold(argument: str):
    """Checks a gate's limit as the option is parsed: a usage error before the library loads."""

    def callback(value: str | None) -> str | None:
        try:
            settings.parse_threshold(value, argument)
        except ConfigError as exc:
            raise typer.BadParameter(o.cli_terms(str(exc))) from None
        return value

    return callback


def compare(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN",
            help="Two or more bench run folders, e.g. results/A results/B; the first is the baseline.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help=f"Folder for compare.md, compare.csv and compare.png. "
            f"Default: {settings.RESULTS_DIR}/compare-A-vs-B, from the runs' folder names.",
            rich_help_panel=o.OUTPUT,
            show_default=False,
        ),
    ] = None,
    alpha: o.setting_option(settings.ALPHA, GATES) = None,
    fail_if_slower: Annotated[
        str | None,
        typer.Option(
            help="Exit 1 when a cell's steady-state epoch time is more than this above the baseline's and the "
            "difference is significant: a percentage (10%) or a fraction (0.1).",
            metavar="LIMIT",
            callback=_threshold("fail_if_slower"),
            rich_help_panel=GATES,
            show_default=False,
        ),
    ] = None,
    fail_if_less_accurate: Annotated[
        str | None,
        typer.Option(
            help="Exit 1 when a cell's test accuracy is more than this below the baseline's (absolute) and the "
            "difference is significant: a fraction (0.005) or percentage points (0.5%).",
            metavar="LIMIT",
            callback=_threshold("fail_if_less_accurate"),
            rich_help_panel=GATES,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare bench runs with the first, cell by cell: mean ± std over seeds, ratio, Welch's p, a verdict.

    Each figure (accuracy, steady-state epoch time, throughput, latency, memory) gets a verdict: faster,
    slower, more or less accurate, ..., not significant, or too few seeds. Also lists the configuration and
    environment fields that differ, and writes compare.md, compare.csv and compare.png. With --fail-if-slower
    or --fail-if-less-accurate it is a regression gate for CI: exit 1 only when a difference is both beyond
    the limit and significant.
    """
    import_library()
    from recurrent_mnist_cli.views.compare import comparison_table, differences_table

    from recurrent_mnist.compare import compare_runs, default_out_dir, write_comparison

    with user_errors():
        comparison = compare_runs(
            run_dirs,
            **o.given(alpha=alpha),
            fail_if_slower=fail_if_slower,
            fail_if_less_accurate=fail_if_less_accurate,
        )
        out_dir = out if out is not None else default_out_dir(run_dirs)
        files = write_comparison(comparison, out_dir)
    table, legend = comparison_table(comparison, console.width)
    if legend:
        console.print(f"Runs:\n{legend}", highlight=False)
    console.print(table)
    if comparison.differences.empty:
        console.print("The runs' configurations and environments do not differ.")
    else:
        console.print(differences_table(comparison.differences))
    for note in comparison.notes:
        console.print(f"[dim]{o.cli_terms(note)}[/]", highlight=False)
    console.print(f"Wrote {', '.join(path.name for path in files)} in {out_dir}", highlight=False)
    for failure in comparison.failures:
        err_console.print(f"[bold red]Gate failed:[/] {o.cli_terms(failure)}.", highlight=False, soft_wrap=True)
    if comparison.failures:
        raise typer.Exit(code=EXIT_ERROR)
