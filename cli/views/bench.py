"""Rich views of the library's progress events and result frames."""

from __future__ import annotations

import math

from recurrent_mnist_cli.views.events import EventView
from rich import box
from rich.console import Console
from rich.table import Table


def _num(value, digits=4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}" if digits == 0 else f"{value:.{digits}f}"


def _variant(event) -> str:
    """ "lstm seed 0", or "lstm (torch) seed 0" for a variant that another framework than Keras trains."""
    framework = f" ({event['framework']})" if event.get("framework") else ""
    return f"{event['cell']}{framework} seed {event['seed']}"


class BenchProgress(EventView):
    """Shows a bench run: one bar over the variants, one over the current variant's
    training steps with epoch, live accuracy and ETA, and a line per finished epoch.

    Both bars move between Keras's step reports at the pace measured so far
    (`StepClock`), and the overall bar counts the running variant's fraction, so
    that its ETA stands from the first epoch on.
    """

    def __init__(self, console: Console):
        super().__init__(console, eta=True)
        self.kept = 0
        self.queued = 0
        self.remote = {}  # on a cluster: the row of each running variant, by its name

    def interrupted_message(self) -> str:
        where = self.run_dir or "the results folder"
        return (
            f"Interrupted: {self.finished + self.kept} finished variant(s) are kept in {where}; "
            "run the same command again to resume."
        )

    def _label(self, event) -> str:
        return f"{_variant(event)} ({event['index']}/{event['total']})"

    def _on_run_start(self, event):
        self.run_dir = event["run_dir"]
        self.kept = event["kept"]
        self.dataset_line(event["dataset"])
        self.console.print(
            f"Results in [bold]{self.run_dir}[/]: {event['total']} variant(s), {event['kept']} already finished",
            highlight=False,
        )
        self.overall = self.progress.add_task("variants", total=event["total"], completed=event["kept"], status="")

    def _on_variant_kept(self, event):
        self.console.print(f"[dim]kept {_variant(event)} from an earlier run[/]")

    def _on_variant_start(self, event):
        self._epochs = event["epochs"]
        self.start_unit(self._label(event), done_before=self.kept + self.finished)

    # On a cluster, variants train side by side on their workers: a row each, from start to end.

    def _on_variant_queued(self, event):
        self.queued += 1
        self._show_queue()

    def _on_variant_started(self, event):
        self.queued = max(0, self.queued - 1)
        self._show_queue()
        self.console.print(f"  {_variant(event)} started on {event['worker']}", highlight=False)
        row = self.remote.pop(_variant(event), None)
        if row is not None:  # started again (its first worker died)
            self.progress.remove_task(row)
        self.remote[_variant(event)] = self.progress.add_task(
            f"{_variant(event)} on {event['worker']}", total=event.get("epochs"), status="starting"
        )

    def _show_queue(self):
        self.progress.update(self.overall, status=f"{self.queued} queued on the cluster" if self.queued else "")

    def _remote_epoch(self, event):
        row = self.remote.get(_variant(event))
        if row is not None:
            acc = _num(event["logs"].get("accuracy"), 3)
            status = f"epoch {event['epoch']}/{event['epochs']} acc {acc}"
            self.progress.update(row, total=event["epochs"], completed=event["epoch"], status=status)

    def _on_epoch_begin(self, event):
        self.epoch_begins(event["epoch"], event["steps"], event.get("steps_per_call", 1))
        status = f"epoch {event['epoch']}/{event['epochs']}"
        self.progress.update(self.current, status=status + (" (tracing)" if event["epoch"] == 1 else ""))

    def _on_batch(self, event):
        self.step_reached(event["epoch"], event["step"], event["steps"])
        self.progress.update(
            self.current,
            status=f"epoch {event['epoch']}/{self._epochs} acc {_num(event.get('accuracy'), 3)}",
        )

    def _on_epoch_end(self, event):
        logs = event["logs"]
        if event.get("worker"):
            self._remote_epoch(event)
        self.console.print(
            f"  {_variant(event)} epoch {event['epoch']}/{event['epochs']}: "
            f"loss {_num(logs.get('loss'))} acc {_num(logs.get('accuracy'))} "
            f"val_acc {_num(logs.get('val_accuracy'))} ({event['epoch_time_s']:.1f} s"
            + (", with tracing and compilation)" if event.get("includes_compilation") else ")"),
            highlight=False,
        )

    def _on_variant_end(self, event):
        row = event["row"]
        self.finished += 1
        self.end_unit()
        remote = self.remote.pop(_variant(event), None)
        if remote is not None:
            self.progress.remove_task(remote)
        self.progress.update(self.overall, completed=self.kept + self.finished)
        if row.get("status") == "ok":
            steady = row.get("epoch_time_s")
            timing = (
                f"epoch {_num(steady, 2)} s"
                if steady is not None
                else "no steady-state epoch time (its only epoch included compilation)"
            )
            where = f" (on {event['worker']})" if event.get("worker") else ""
            self.console.print(
                f"[green]✓[/] {_variant(event)}{where}: test accuracy {_num(row.get('test_accuracy'))}, " + timing,
                highlight=False,
            )
        else:
            self.console.print(f"[red]✗[/] {_variant(event)} failed: {row.get('error')}", highlight=False)


# The terminal shows what was compared (units, parameters), the mean test accuracy with its 95 % interval
# and the columns people scan first, within 80 columns; summary.md has every column with its spread.
TERMINAL_COLUMNS = [
    # (header, metric, digits)
    ("epoch s", "epoch_time_s", 2),
    ("train/s", "train_samples_per_s", 0),
]


def summary_table(summary, title: str) -> Table:
    from recurrent_mnist.reporting import interval, rank_text

    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True
    )
    labels = ("cell", "framework") if "framework" in summary else ("cell",)
    table.add_column("#", justify="right", no_wrap=True)
    for header in labels:  # a name wraps only past 16 characters
        longest = max([len(header), *(len(str(value)) for value in summary[header])])
        table.add_column(header, justify="left", overflow="fold", min_width=min(longest, 16))
    table.add_column("seeds", justify="right", overflow="fold")  # "2 (1 failed)" may wrap after its count
    for header in ("units", "params", "test acc (95 % CI)", *(column[0] for column in TERMINAL_COLUMNS)):
        table.add_column(header, justify="right", no_wrap=True)
    for record in summary.to_dict("records"):
        seeds = str(record["seeds"]) + (f" ({record['failed']} failed)" if record["failed"] else "")
        units = _num(record.get("units"), 0)
        params = _num(record.get("params"), 0)
        accuracy = _num(record["test_accuracy_mean"])
        if accuracy != "–":
            accuracy += f" ({interval(record, 'test_accuracy', 3).replace(' to ', '–')})"
        figures = [_num(record[f"{metric}_mean"], digits) for _, metric, digits in TERMINAL_COLUMNS]
        names = [str(record[label]) for label in labels]
        table.add_row(rank_text(summary, record["rank"]), *names, seeds, units, params, accuracy, *figures)
    return table


def ties_line(summary) -> str | None:
    """One sentence naming the cells that tie (equal mean accuracy to four decimals), or None."""
    from recurrent_mnist.reporting import ties

    groups = ties(summary)
    if not groups:
        return None
    parts = [" and ".join(group) for group in groups]
    return "Tie: " + "; ".join(parts) + " have the same mean test accuracy to four decimals (rank marked =)."


def files_line(run_dir, files) -> str:
    names = [str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p) for p in files]
    return f"Wrote {', '.join(names)} in {run_dir}"


def confusion_table(matrix, class_names) -> Table:
    table = Table(title="Confusion matrix (rows: true class, columns: predicted)", title_justify="left")
    table.add_column("true \\ pred", justify="left")
    for name in class_names:
        table.add_column(name[:7], justify="right")
    for i, (name, counts) in enumerate(zip(class_names, matrix, strict=True)):
        table.add_row(name, *(f"[bold]{c}[/]" if j == i else str(c) for j, c in enumerate(counts)))
    return table
