"""`recurrent-mnist report`: rebuild a bench run's tables and plots from its variant files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from recurrent_mnist_cli._support import console, err_console, import_library, user_errors
from rich.markup import escape


def report(
    run_dir: Annotated[
        Path,
        typer.Argument(metavar="RUN_DIR", help="A run folder written by bench, e.g. results/NAME.", show_default=False),
    ],
) -> None:
    """Rebuild a run's tables and plots from its finished variants (e.g. after several machines filled it)."""
    import_library()
    from recurrent_mnist_cli.views.bench import files_line, summary_table, ties_line

    from recurrent_mnist.bench import rebuild_report

    with user_errors():
        result = rebuild_report(run_dir)
    console.print(summary_table(result.summary, f"Summary ({result.run_dir})"))
    for line in (ties_line(result.summary), result.first_look):
        if line:
            console.print(f"[dim]{escape(line)}[/]", highlight=False)
    for warning in result.warnings:
        err_console.print(f"[yellow]{escape(warning)}[/]", highlight=False)
    console.print(files_line(result.run_dir, result.files), highlight=False)
