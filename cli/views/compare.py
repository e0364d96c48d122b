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


def comparison_table(comparison, width: int | None = None) -> tuple[Table, str | None]:
    """The comparison as a table, and a legend when the runs are shown by letter.

    When the table with the runs' names is wider than `width` (the terminal's),
    the runs are named A (the baseline), B, C ... and the legend says which is
    which; every column but the verdict may then wrap, and the verdict, the point
    of the command, is never cut.
    """
    from recurrent_mnist.compare import comparison_rows

    headers, rows = comparison_rows(comparison)
    table = _table(comparison.baseline.label, headers, rows)
    if width is None or _width(table) <= width:
        return table, None
    letters = {run.label: chr(ord("A") + i) for i, run in enumerate(comparison.runs)}
    headers = [headers[0], headers[1], f"{letters[comparison.baseline.label]} (baseline)", *headers[3:]]
    rows = [[*row[:3], letters.get(row[3], row[3]), *row[4:]] for row in rows]
    legend = "\n".join(
        f"  {letter}{' (baseline)' if label == comparison.baseline.label else ''}: {label}"
        for label, letter in letters.items()
    )
    return _table("A", headers, rows), legend


def _width(table: Table) -> int:
    from rich.console import Console

    console = Console(width=10_000)
    return table.__rich_measure__(console, console.options).maximum


def _table(baseline: str, headers: list[str], rows: list[list[str]]) -> Table:
    table = Table(
        title=f"Runs compared against {baseline} (mean ± std over seeds, n)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    verdict_width = max([len("verdict"), *(len(row[-1]) for row in rows)])
    for header in headers[:-1]:
        right = header not in ("cell", "figure", "run")
        table.add_column(header, justify="right" if right else "left", overflow="fold")
    table.add_column(headers[-1], justify="left", no_wrap=True, min_width=verdict_width)
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
