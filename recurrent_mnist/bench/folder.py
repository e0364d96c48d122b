"""A bench run folder and the tables rebuilt from it.

`BenchFolder` holds `run.json` (the run's identity), `variants/*.json` (one
record per finished variant), `logs/`, and the tables and plots, which
`rebuild_report` (and `run_bench` after each variant) rebuilds from the records:
a table is never edited, only rewritten whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

import pandas as pd

from recurrent_mnist import published, reporting
from recurrent_mnist.bench.contrasts import framework_contrasts, rank_contrasts
from recurrent_mnist.environment import FRAMEWORK_FIELDS, code_identity, describe_code
from recurrent_mnist.errors import ResultsError
from recurrent_mnist.html_report import write_report
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json
from recurrent_mnist.runs.folder import RunFolder, digest
from recurrent_mnist.training.config import TrainConfig
from recurrent_mnist.training.measure import NO_STEADY_EPOCH

# What summary.md says when a run has PyTorch rows.
TORCH_NOTE = (
    "Rows of framework torch are the PyTorch peer of each Keras model (`recurrent_mnist.torch_peer`), each "
    "trained in a process without TensorFlow: the same layers, parameters, initial weight scheme, input "
    "dropout, Adam learning rate and epsilon, data, validation split, batch size, early stopping and "
    "measurements; its own random draws (initial weights, dropout masks) and batch order (a permutation per "
    "epoch seeded with the variant's seed), so a seed is not the same run in both frameworks. Its first epoch "
    "compiles nothing, but is kept out of the steady-state epoch time as Keras's is."
)

RESULT_FILES = (
    "runs.csv",
    "summary.csv",
    "summary.md",
    "history.csv",
    "environment.json",
    "learning_curves.png",
    "accuracy_vs_time.png",
    "report.html",
    "run.json",
)


@dataclasses.dataclass
class BenchResult:
    """What `run_bench` returns: the run folder, the tables and what happened to each variant."""

    run_dir: Path
    runs: pd.DataFrame
    summary: pd.DataFrame
    history: pd.DataFrame
    files: list[Path]
    trained: int = 0
    kept: int = 0
    failed: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)  # what a reader of the figures must know
    first_look: str | None = None  # on the sample or under three epochs: what its figures mean, and a real run


# --------------------------------------------------------------------------- the run folder


class BenchFolder(RunFolder):
    """The files of one bench run: `run.json`, `variants/*.json` (the records), `logs/`, the tables and plots.

    While a variant trains, `variants/<name>.running` marks it: a marker without its record is a
    variant that a running or interrupted process has not finished (the run is incomplete).
    """

    FOLDERS = ("variants", "logs")
    DISCARDED = (*RESULT_FILES, *FOLDERS)

    def __init__(self, path: str | os.PathLike):
        super().__init__(path)
        self.variants = self.path / "variants"
        self.logs = self.path / "logs"

    def variant_path(self, variant: TrainConfig, key: str, framework: str = "keras") -> Path:
        return self.variants / f"{variant_label(variant.cell, variant.seed, framework)}-{key[:12]}.json"

    def finished_variants(self) -> list[dict]:
        return records.read_records(self.variants)

    def unfinished_variants(self) -> list[str]:
        """The variants that started but have no record: training now, or interrupted."""
        return sorted(p.stem for p in self.variants.glob("*.running") if not p.with_suffix(".json").exists())


# --------------------------------------------------------------------------- tables


def rebuild_report(run_dir: str | os.PathLike) -> BenchResult:
    """Rebuilds every table and plot of a run folder from its variant files.

    Raises:
        ResultsError: the folder holds no run.
    """
    folder = BenchFolder(run_dir)
    if not (folder.path / "run.json").exists() and not folder.variants.is_dir():
        raise ResultsError(f"{folder.path} holds no bench run (no run.json or variants/ inside)")
    with folder.lock():
        return write_tables(folder)


def write_tables(folder: BenchFolder) -> BenchResult:
    """Rebuilds the tables, the plots and `environment.json` of a run folder from its variant records."""
    found = folder.finished_variants()
    runs, summary, history = reporting.record_frames(found)
    identity = {}
    with contextlib.suppress(OSError, ValueError):
        identity = json.loads((folder.path / "run.json").read_text())
    environments = variant_environments(found)
    environment = {
        "run": folder.path.name,
        "config": identity.get("config"),
        "dataset_sha256": identity.get("dataset_sha256"),
        "code": identity.get("code"),
        "environments": environments,
        "commands": sorted({" ".join(r["command"]) for r in found if r.get("command")}),
    }
    atomic_write_json(folder.path / "environment.json", environment)
    warnings = _warnings(runs, environments)
    cpus = trained_on_cpus(runs)
    notes = [*_identity_notes(identity, runs), *(f"**{warning}**" for warning in warnings), *_outcome_notes(runs)]
    # On several kinds of CPU, time columns compare machines as well as cells: no timing contrast then.
    contrasts = (rank_contrasts(summary, runs), framework_contrasts(runs) if len(cpus) < 2 else None)
    notes += [section for section in contrasts if section]
    notes += _published_section(runs, summary)
    look = first_look(runs)
    notes += [f"**{look}**"] if look else []
    title = f"Recurrent cells compared: {folder.path.name}"
    files = reporting.write_tables(folder.path, runs, summary, history, title, notes, mark_timings=len(cpus) > 1)
    files.insert(0, folder.path / "environment.json")
    files.append(
        write_report(
            folder.path / "report.html",
            title,
            (folder.path / "summary.md").read_text(),
            [path for path in files if path.suffix == ".png"],
            environment,
        )
    )
    failed = int((runs["status"] != "ok").sum())
    return BenchResult(folder.path, runs, summary, history, files, failed=failed, warnings=warnings, first_look=look)


# Under this many epochs, or on the embedded sample, a run's figures are a first look.
FIRST_LOOK_EPOCHS = 3
# A run whose figures can be compared: the full set, three seeds, to convergence (the reference results' setting).
REAL_RUN = (
    "recurrent-mnist bench --cells lstm gru simple_rnn --dataset mnist --seeds 0 1 2 --epochs 40 --early-stopping 5"
)


def first_look(runs: pd.DataFrame) -> str | None:
    """What a run on the sample or of under three epochs shows, and the command for figures to compare; or None."""
    runs = runs[runs["status"] == "ok"] if "status" in runs else runs
    if runs.empty or "dataset" not in runs:
        return None
    epochs = pd.to_numeric(runs.get("epochs"), errors="coerce").max()
    why = []
    if (runs["dataset"] == "mnist-sample").any():
        why.append("the embedded sample of 4,000 training images")
    if pd.notna(epochs) and epochs < FIRST_LOOK_EPOCHS:
        why.append(f"{int(epochs)} epoch{'s' if epochs != 1 else ''}")
    if not why:
        return None
    return (
        f"A first look, not a comparison: this run trained on {' for '.join(why)}. Accuracies this early are far "
        "below what the cells reach, and cells tie or swap ranks from seed to seed. For figures to compare, "
        f"train on the full data set to convergence, as the reference results do: `{REAL_RUN}`."
    )


def _published_section(runs: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The published figures of the run's task (`recurrent_mnist.published`) beside its mean test accuracy."""
    if runs.empty or "dataset" not in runs or runs["dataset"].nunique() != 1:
        return []
    reading = runs["reading"].iloc[0] if "reading" in runs and runs["reading"].nunique() == 1 else "rows"
    dataset = runs["dataset"].iloc[0]
    found = published.anchors(dataset, reading)
    if not found:
        return []
    keras_rows = summary[summary["framework"] == "keras"] if "framework" in summary else summary
    ours = dict(zip(keras_rows["cell"], keras_rows["test_accuracy_mean"], strict=True))
    rows = []
    for anchor in found:
        mine = [f"{cell} {100 * ours[cell]:.2f} %" for cell in anchor.cells if cell in ours and pd.notna(ours[cell])]
        rows.append([anchor.cell, ", ".join(mine) or "–", anchor.accuracy, anchor.setting, anchor.source])
    table = reporting.markdown_table(["cell", "this run (mean)", "published", "their setting", "source"], rows)
    return [
        f"## Published figures for {dataset} read as {reading}\n\n"
        "Test accuracy as the papers report it, beside this run's mean over its seeds. Their budgets (epochs, "
        "learning-rate schedules, layers) are theirs: compare the configuration above before the figures.\n\n"
        + table.rstrip("\n")
    ]


def _identity_notes(identity: dict, runs: pd.DataFrame) -> list[str]:
    """What summary.md says of the run's configuration and code, and of how the cells' settings were chosen."""
    config = identity.get("config")
    notes = []
    if isinstance(config, dict):
        notes.append("Configuration: " + ", ".join(f"{k}={v}" for k, v in config.items()) + ".")
    if identity.get("code"):
        notes.append(f"Code: {describe_code(identity['code'])}.")
        current = code_identity()
        if current["source_sha256"] != identity["code"].get("source_sha256"):
            notes.append(f"Tables rebuilt from the variant records by {describe_code(current)}.")
    config = config or {}
    if config.get("match_params"):
        notes.append(
            f"**The cells are compared at matched parameter counts**: the first cell keeps its units, every "
            f"other cell has the units that bring its parameters closest ({_sizes(runs)})."
        )
    elif config.get("from_tune"):
        tuned = config["from_tune"]
        trials = ", ".join(f"{cell} trial {trial}" for cell, trial in tuned.get("trials", {}).items())
        settings_text = "; ".join(
            f"{cell}: " + ", ".join(f"{k} {v}" for k, v in values.items())
            for cell, values in config.get("per_cell", {}).items()
        )
        notes.append(
            f"**Each cell trains with its best configuration from the search {tuned.get('run')}** ({trials}); "
            f"the variants differ in more than the cell: {settings_text or 'as the shared configuration'}."
        )
    elif config.get("per_cell"):
        notes.append(f"The cells have settings of their own ({_sizes(runs)}).")
    return notes


def trained_on_cpus(runs: pd.DataFrame) -> list[str]:
    """The kinds of CPU the finished variants of a run trained on."""
    if runs.empty or "cpu" not in runs:
        return []
    return sorted(runs.loc[runs["status"] == "ok", "cpu"].dropna().astype(str).unique())


def _warnings(runs: pd.DataFrame, environments: list[dict]) -> list[str]:
    """What a reader of the figures must know: several kinds of CPU, environments that differ, epoch times missing."""
    warnings = []
    cpus = trained_on_cpus(runs)
    if len(cpus) > 1:
        warnings.append(
            f"The variants trained on {len(cpus)} kinds of CPU ({'; '.join(cpus)}): the time columns (marked †) "
            "compare machines as well as cells, and the timing contrasts are withheld (trained on different CPUs); "
            "accuracy is compared as usual."
        )
    differing = mixed_fields(environments)
    if differing:
        warnings.append(
            f"This run mixes {len(environments)} environments (they differ in: {', '.join(differing)}); "
            "environment.json lists each with its variants. Compare timings only within one environment."
        )
    ok = runs[runs["status"] == "ok"]
    if len(ok) and ok["epoch_time_s"].isna().any():
        warnings.append(f"Epoch time is empty for some variants: {NO_STEADY_EPOCH}.")
    return warnings


def _outcome_notes(runs: pd.DataFrame) -> list[str]:
    """What summary.md says of PyTorch rows, and of the variants that failed and why."""
    notes = []
    if any(_framework_key(framework) != "keras" for framework in runs["framework"]):
        notes.append(TORCH_NOTE)
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        reasons = "; ".join(f"{_row_label(r)}: {r['error']}" for r in failed.to_dict("records"))
        notes.append(f"{len(failed)} variant(s) failed: {reasons}.")
    return notes


def _sizes(runs: pd.DataFrame) -> str:
    first = runs[runs["params"].notna()].drop_duplicates("cell")
    return "; ".join(
        f"{r['cell']}: {int(r['units'])} units, {int(r['params']):,} parameters" for r in first.to_dict("records")
    )


def _framework_key(framework) -> str:
    """ "torch" of "torch 2.13.0+cpu"; "keras" of a Keras row's or of an empty value (rows from before frameworks)."""
    return str(framework).split()[0] if isinstance(framework, str) and framework else "keras"


def _row_label(row: dict) -> str:
    framework = _framework_key(row.get("framework"))
    return f"{row['cell']} seed {row['seed']}" + ("" if framework == "keras" else f" ({framework})")


def variant_environments(found: list[dict]) -> list[dict]:
    """The distinct environments that trained a run's variants, each with the variants it trained."""
    groups: dict[str, dict] = {}
    for record in found:
        environment = record.get("environment") or {}
        group = groups.setdefault(json.dumps(environment, sort_keys=True), {"variants": [], **environment})
        row = record["row"]
        group["variants"].append(variant_label(row["cell"], row["seed"], _framework_key(row.get("framework"))))
    for group in groups.values():
        group["variants"].sort()
    return sorted(groups.values(), key=lambda group: group["variants"])


def mixed_fields(environments: list[dict]) -> list[str]:
    """The fields in which the environments that trained a run differ where they should not: any field
    between environments of one framework, only the machine's (not `FRAMEWORK_FIELDS`) between frameworks."""
    plain = [{k: v for k, v in e.items() if k != "variants"} for e in environments]
    by_framework: dict[str, list[dict]] = {}
    for environment in plain:
        by_framework.setdefault(_framework_key(environment.get("framework")), []).append(environment)
    differing = set(differing_fields([{k: v for k, v in e.items() if k not in FRAMEWORK_FIELDS} for e in plain]))
    for group in by_framework.values():
        differing.update(differing_fields(group))
    return sorted(differing)


def differing_fields(items: list[dict]) -> list[str]:
    """The dotted names of the fields whose values are not the same in all `items` (nested dicts flattened)."""
    flat = [records.flatten(item) for item in items]
    names = sorted(set().union(*flat)) if flat else []
    return [name for name in names if len({json.dumps(f.get(name), sort_keys=True) for f in flat}) > 1]


def variant_label(cell: str, seed: int, framework: str = "keras") -> str:
    """`lstm-seed0`; another framework than Keras is named: `lstm-torch-seed0`."""
    return f"{cell}-seed{seed}" if framework == "keras" else f"{cell}-{framework}-seed{seed}"


def variant_key(shared: dict, dataset_sha256: str, variant: TrainConfig, framework: str = "keras") -> str:
    key = {"shared": shared, "dataset": dataset_sha256, "cell": variant.cell, "seed": variant.seed}
    if framework != "keras":  # Keras variants keep the keys they had before there were frameworks
        key["framework"] = framework
    return digest(key)
