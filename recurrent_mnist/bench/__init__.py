"""The side-by-side comparison of recurrent cells: run variants, keep their results, build the tables.

`run_bench(config)` trains every (cell, seed) variant of a `BenchConfig` under
identical conditions and returns pandas DataFrames. Each finished variant is
written to its own file under `<results>/<run>/variants/`; the tables
(`runs.csv`, `summary.csv`, `summary.md`, `history.csv`) and plots are rebuilt
from those files. So a rerun resumes (finished variants are not trained again),
several processes can fill one run folder, and an interruption never leaves a
half-written table.

By default each variant trains in a fresh Python process: its peak memory is its
own, a crash or out-of-memory kill fails that variant only, and no variant
inherits another's state.

With `frameworks=("keras", "torch")` each (cell, seed) also trains as a PyTorch
model of the same shape (`recurrent_mnist.torch_peer`), always in a process of
its own that never loads TensorFlow, on the same arrays and measured alike;
its rows say `framework` torch.

The package: `config` (`BenchConfig`, what a run compares), `folder` (the run
folder, its records and the tables rebuilt from them), `runner` (`run_bench`).
"""

from recurrent_mnist.bench.config import (
    PER_CELL,
    PRESETS,
    BenchConfig,
    default_run_name,
    tuned_settings,
    untried_cells,
)
from recurrent_mnist.bench.folder import BenchFolder, BenchResult, rebuild_report, variant_label
from recurrent_mnist.bench.runner import run_bench

__all__ = [
    "PER_CELL",
    "PRESETS",
    "BenchConfig",
    "BenchFolder",
    "BenchResult",
    "default_run_name",
    "rebuild_report",
    "run_bench",
    "tuned_settings",
    "untried_cells",
    "variant_label",
]
