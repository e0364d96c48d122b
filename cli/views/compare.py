"""Rich tables of a comparison of runs (`recurrent_mnist.compare`)."""

from __future__ import annotations

from rich import box
from rich.table import Table

# The colour of each verdict: green better, red worse, dim when nothing can be said.
_BETTER = {"faster", "more accurate", "higher", "less memory"}
_WORSE = {"slower", "less accurate", "lower", "more memory"}


def _coloured(verdict: str) -> str:
    if verdict in _BETTER:
        return f"[green]{verdict}[/]"
    if verdict in _WORSE:
        return f"[bold red]{verdict}[/]"
    return f"[dim]{verdict}[/]"


def comparison_table(comparison) -> Table:
    from recurrent_mnist.compare import comparison_rows

    headers, rows = comparison_rows(comparison)
    table = Table(
        title=f"Runs compared against {comparison.baseline.label} (mean ± std over seeds, n)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for header in headers:
        right = header not in ("cell", "figure", "run", "verdict")
        table.add_column(header, justify="right" if right else "left", no_wrap=True)
    previous = None
    for row in rows:
        cell = row[0] if row[0] != previous else ""
        previous = row[0]
        table.add_row(cell, *row[1:-1], _coloured(row[-1]), end_section=False)
    return table


def differences_table(differences) -> Table:
    title = "What differs between the runs"
    table = Table(
        title=title,
        title_justify="left",
        min_width=len(title),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    for column in differences.columns:
        table.add_column(str(column), justify="left", overflow="fold")
    for row in differences.itertuples(index=False):
        table.add_row(*map(str, row))
    return table
