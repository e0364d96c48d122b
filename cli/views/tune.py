"""Rich views of a `tune` search: its progress events, and the top trials as a table.

`TuneProgress` receives `recurrent_mnist.tuning.run_search`'s progress events (a bar over the trials,
one over the running trial's epochs, a line per trial); `top_trials_table` shows the best trials.
"""

from __future__ import annotations

import math
import time

import pandas as pd
from recurrent_mnist_cli.views.events import EventView
from rich import box
from rich.console import Console
from rich.table import Table


def _describe(values: dict) -> str:
    """A configuration in a few words: `gru, 64 units, 2 layers, bidirectional, dropout 0.2, lr 1.2e-03, batch 128`."""
    parts = [str(values["cell"])] if "cell" in values else []
    if values.get("reading"):
        parts.append(f"reading {values['reading']}")
    if "units" in values:
        parts.append(f"{values['units']} units")
    if "layers" in values:
        parts.append(f"{values['layers']} layer" + ("s" if values["layers"] != 1 else ""))
    if values.get("bidirectional"):
        parts.append("bidirectional")
    if values.get("dropout"):
        parts.append(f"dropout {values['dropout']:g}")
    if "learning_rate" in values:
        parts.append(f"lr {values['learning_rate']:.1e}")
    if "batch_size" in values:
        parts.append(f"batch {values['batch_size']}")
    return ", ".join(parts)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


class TuneProgress(EventView):
    """Shows a search: a bar over the trials, one over the running trial's epochs, a line per trial."""

    def __init__(self, console: Console):
        super().__init__(console, eta=False)
        self.role = "local"
        self.deadline = None
        self.best = None
        self.worker_id = None

    def interrupted_message(self) -> str:
        if self.role == "worker":
            return (
                "Interrupted: the chief keeps this worker's finished trials; start the same command again "
                "(same --worker-id) to resume its interrupted trial."
            )
        where = self.run_dir or "the results folder"
        return (
            f"Interrupted: {self.finished} finished trial(s) are kept in {where}; run the same command again "
            "to resume (an interrupted trial runs again)."
        )

    def _status(self) -> str:
        parts = []
        if self.best is not None:
            parts.append(f"best {self.best['score']:.4f} (trial {self.best['trial_id']})")
        if self.deadline is not None:
            parts.append(f"{_minutes(max(0.0, self.deadline - time.time()))} left")
        return " · ".join(parts)

    def _on_search_start(self, event):
        self.run_dir, self.role = event["run_dir"], event["role"]
        self.finished = event["kept"]
        self.deadline, self.worker_id = event.get("deadline"), event.get("worker_id")
        self.dataset_line(event["dataset"])
        if self.role == "worker":
            self.console.print(
                f"Worker [bold]{self.worker_id}[/] runs trials for the chief at {event['address']}", highlight=False
            )
        else:
            self.console.print(
                f"Search in [bold]{self.run_dir}[/]: {event['tuner']} tuner, up to {event['total']} trial(s), "
                f"{event['kept']} finished earlier",
                highlight=False,
            )
        if self.role == "chief":
            self.console.print(
                f"Chief oracle listening on {event['address']}; start workers with the same command and "
                f"--distributed worker --oracle {event['address']} --worker-id NAME",
                highlight=False,
            )
        total = event["total"] if self.role != "worker" else None
        self.overall = self.progress.add_task("trials", total=total, completed=event["kept"], status=self._status())

    def _on_trial_start(self, event):
        self._epochs = event.get("epochs") or 1
        count = f" ({event['number']} of {event['total']})" if event.get("number") else ""
        label = f"trial {event['trial_id']}{count}: {_describe(event['hyperparameters'])}"
        if self.role == "chief":
            self.console.print(f"  started {label} on {event.get('worker')}", highlight=False)
            return
        self.start_unit(f"trial {event['trial_id']}", done_before=self.finished)
        self.console.print(f"  {label}", highlight=False)

    def _on_epoch_begin(self, event):
        if self.current is None:
            return
        self.epoch_begins(event["epoch"], event["steps"], event.get("steps_per_call", 1))
        self.progress.update(self.current, status=f"epoch {event['epoch']}")

    def _on_batch(self, event):
        if self.current is None:
            return
        self.step_reached(event["epoch"], event["step"], event["steps"])
        self.progress.update(self.current, status=f"epoch {event['epoch']}")

    def _on_epoch_end(self, event):
        if self.current is None:
            return
        logs = event["logs"]
        accuracy = logs.get("val_accuracy")
        self.progress.update(
            self.current,
            status=f"epoch {event['epoch']} val_acc {accuracy:.4f}" if accuracy is not None else "",
        )

    def _on_trial_end(self, event):
        self.finished += 1
        if event.get("best"):
            self.best = event["best"]
        self.end_unit()
        if self.overall is not None:
            self.progress.update(self.overall, completed=self.finished, status=self._status())
        number = event["trial_id"]
        where = f" on {event['worker']}" if self.role == "chief" and event.get("worker") else ""
        took = f" ({event['duration_s']:.1f} s)" if event.get("duration_s") is not None else ""
        if event["status"] == "completed":
            score = "–" if event.get("score") is None else f"{event['score']:.4f}"
            self.console.print(f"[green]✓[/] trial {number}{where}: score {score}{took}", highlight=False)
        else:
            self.console.print(f"[red]✗[/] trial {number}{where} failed: {event.get('error')}", highlight=False)

    def _on_search_end(self, event):
        self.console.print(f"Search over: {event['reason']}.", highlight=False)

    def _on_retrain_start(self, event):
        self.current = self.progress.add_task(f"best (trial {event['trial_id']}) retrained", total=None, status="")
        self.console.print(
            f"Retraining the best configuration (trial {event['trial_id']}) for up to {event['epochs']} epoch(s)",
            highlight=False,
        )

    def _on_retrain_end(self, event):
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None
        if event.get("error"):
            self.console.print(f"[red]✗[/] retraining the best configuration failed: {event['error']}", highlight=False)
        elif event.get("kept"):
            self.console.print(f"[dim]kept the best model from an earlier run: {event['path']}[/]", highlight=False)


def top_trials_table(result, title: str, rows: int = 10) -> Table:
    """The best completed trials, narrow enough for an 80-column terminal (summary.md has every column)."""
    from recurrent_mnist.tuning import ranked

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    columns = [
        # (header, column, format)
        ("#", "rank", "d"),
        ("trial", "trial_id", "s"),
        ("cell", "cell", "s"),
        *([("reading", "reading", "reading")] if "reading" in result.trials.columns else []),
        ("units", "units", "d"),
        ("layers", "layers", "d"),
        ("bidir", "bidirectional", "yes/no"),
        ("drop", "dropout", "g"),
        ("lr", "learning_rate", ".1e"),
        ("batch", "batch_size", "d"),
        ("score", "score", ".4f"),
        ("time", "duration_s", ".0f"),
    ]
    for header, _, _ in columns:
        left = header in ("trial", "cell", "reading")
        table.add_column(header, justify="left" if left else "right", no_wrap=header not in ("cell", "trial"))
    for record in ranked(result.trials).head(rows).to_dict("records"):
        cells = []
        for _, key, form in columns:
            value = record.get(key)
            if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                cells.append("–")
            elif key == "duration_s":
                cells.append(f"{value:.0f} s")
            elif form == "reading":  # "permuted" keeps the table within 80 columns
                cells.append(str(value).removesuffix("-pixels"))
            elif form == "yes/no":
                cells.append("yes" if value else "no")
            elif form == "d":
                cells.append(str(int(value)))
            elif form == "s":
                cells.append(str(value))
            else:
                cells.append(format(value, form))
        table.add_row(*cells)
    return table
