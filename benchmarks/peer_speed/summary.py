"""The raw runs of one invocation, appended as they finish, and their summary: one row per (cell, shape, impl)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from peer_speed import report
from peer_speed.flops import train_flops_per_epoch
from peer_speed.quiet import quiet_import

SUMMARY_COLUMNS = [
    "cell",
    "units",
    "batch_size",
    "impl",
    "layer",
    "runs",
    "failed",
    "epoch_time_s",
    "epoch_time_min_s",
    "first_epoch_s",
    "train_samples_per_s",
    "test_accuracy",
    "infer_samples_per_s",
    "latency_ms_p50",
    "latency_ms_p95",
    "params",
    "flops_per_epoch",
    "peak_fraction",
    "vs_torch",
    "keras_over_torch",
    "keras_over_keras_stock",
    "keras_le_torch_rounds",
    "products_floor_s",
    "floor_over_torch",
    "train_samples",
    "threads",
    "other_load_max",
    "error",
]


class Results:
    """The raw runs of this invocation and the files made from them: `<name>.jsonl`, `.csv` and `.md`."""

    def __init__(self, args: argparse.Namespace, folder: Path, run_id: str):
        self.args, self.folder, self.run_id = args, folder, run_id
        self.jsonl = folder / f"{args.name}.jsonl"
        self.records: list[dict] = []
        self.peak_gflops: float | None = None
        self.floors: dict[str, float] = {}  # "cell:UNITSxBATCH" -> the epoch's products floor, seconds
        self.dataset: dict = {}
        self.header: list[str] = []

    def append(self, record: dict) -> None:
        """Appends one raw record to the JSONL file at once, so an interrupted run keeps what it measured."""
        record = quiet_import("recurrent_mnist.runs.atomic").json_value({"run_id": self.run_id, **record})
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if record.get("kind") == "train":
            self.records.append(record)

    def write(self) -> str:
        """Rewrites `<name>.csv` and `<name>.md` from the runs so far; returns the Markdown."""
        summary = self.summary()
        text = report.markdown(self.header, summary, self.jsonl.name)
        quiet_import("recurrent_mnist.reporting").write_csv(summary, self.folder / f"{self.args.name}.csv")
        quiet_import("recurrent_mnist.runs.atomic").atomic_write_text(self.folder / f"{self.args.name}.md", text)
        return text

    def summary(self):
        """One row per (cell, shape, impl): medians over the rounds, peak fraction and ratios."""
        import pandas as pd

        rows = []
        for cell in self.args.cells:
            for units, batch in self.args.shapes:
                rows += self._shape_rows(cell, units, batch)
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def _shape_rows(self, cell: str, units: int, batch: int) -> list[dict]:
        """The rows of one (cell, shape), each with the ratios between the implementations' medians."""
        rows = []
        for impl in self.args.impls:
            runs = [r for r in self.records if run_key(r) == (cell, units, batch, impl)]
            if runs:
                rows.append(self._row(cell, units, batch, impl, runs))
        medians = {row["impl"]: row["epoch_time_s"] for row in rows if row["epoch_time_s"] is not None}
        floor = self.floors.get(f"{cell}:{units}x{batch}")
        for row in rows:
            row["products_floor_s"] = floor
            row["floor_over_torch"] = ratio(floor, medians.get("torch"))
            row["vs_torch"] = ratio(medians.get(row["impl"]), medians.get("torch"))
            row["keras_over_torch"] = ratio(medians.get("keras"), medians.get("torch"))
            row["keras_over_keras_stock"] = ratio(medians.get("keras"), medians.get("keras-stock"))
            row["keras_le_torch_rounds"] = self._paired_rounds(cell, units, batch)
        return rows

    def _row(self, cell: str, units: int, batch: int, impl: str, runs: list[dict]) -> dict:
        """The summary row of one implementation's runs of one (cell, shape)."""
        ok = [r for r in runs if r.get("status") == "ok" and r.get("epoch_time_s")]

        def median(key: str) -> float | None:
            values = [r[key] for r in ok if r.get(key) is not None]
            return float(statistics.median(values)) if values else None

        steady = [r["epoch_time_s"] for r in ok]
        epoch_time = median("epoch_time_s")
        n_train = ok[0]["train_samples"] if ok else self.args.n_train or self.dataset.get("train_size")
        flops = train_flops_per_epoch(cell, units, batch, n_train) if n_train else None
        peak_fraction = (
            flops / epoch_time / (self.peak_gflops * 1e9) if flops and epoch_time and self.peak_gflops else None
        )
        failures = [r for r in runs if r.get("status") != "ok"]
        loads = [r["foreign_cpu_share"] for r in runs if r.get("foreign_cpu_share") is not None]
        return {
            "cell": cell,
            "units": units,
            "batch_size": batch,
            "impl": impl,
            "layer": ok[0].get("layer") if ok else (runs[0].get("layer")),
            "runs": len(ok),
            "failed": len(failures),
            "epoch_time_s": epoch_time,
            "epoch_time_min_s": min(steady) if steady else None,
            "first_epoch_s": median("first_epoch_s"),
            "train_samples_per_s": n_train / epoch_time if n_train and epoch_time else None,
            "test_accuracy": median("test_accuracy"),
            "infer_samples_per_s": median("infer_samples_per_s"),
            "latency_ms_p50": median("latency_ms_p50"),
            "latency_ms_p95": median("latency_ms_p95"),
            "params": ok[0].get("params") if ok else None,
            "flops_per_epoch": flops,
            "peak_fraction": peak_fraction,
            "train_samples": n_train,
            "threads": self.args.threads,
            "other_load_max": max(loads) if loads else None,
            "error": " ".join(str(failures[0].get("error") or "failed").split())[:300] if failures else "",
        }

    def _paired_rounds(self, cell: str, units: int, batch: int) -> str | None:
        """In how many rounds keras's steady epoch was at most torch's (both ok), as `k/n`."""
        by_round: dict[int, dict[str, float]] = {}
        for r in self.records:
            if run_key(r)[:3] == (cell, units, batch) and r.get("status") == "ok":
                by_round.setdefault(r["round"], {})[r["impl"]] = r["epoch_time_s"]
        pairs = [times for times in by_round.values() if "keras" in times and "torch" in times]
        if not pairs:
            return None
        return f"{sum(t['keras'] <= t['torch'] for t in pairs)}/{len(pairs)}"


def run_key(record: dict) -> tuple:
    """(cell, units, batch, impl) of a training record."""
    return record.get("cell"), record.get("units"), record.get("batch_size"), record.get("impl")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None
