"""Bench runs side by side: is a difference real, or noise between seeds?

`compare_runs(run_dirs)` reads finished bench runs, matches them by cell and,
for each figure (accuracy, steady-state epoch time, throughput, latency,
memory), gives every run's mean ± standard deviation over seeds and, against
the first run (the baseline), the ratio or difference, Welch's p and a verdict.
It also lists the configuration and environment fields that differ between the
runs, and applies the regression gates (`fail_if_slower`,
`fail_if_less_accurate`). `write_comparison` writes `compare.md`, `compare.csv`
and `compare.png`. The anchors for the form are pyperf's `compare_to` and asv's
`compare`.

The package: `figures` (what is compared, and the `Comparison` returned),
`runs` (reading and checking the run folders), `verdicts` (`compare_runs`:
the tests and the gates), `report` (the files and the rows shown).
"""

from recurrent_mnist.compare.figures import FIGURES, Comparison, Figure
from recurrent_mnist.compare.report import comparison_rows, write_comparison
from recurrent_mnist.compare.runs import default_out_dir
from recurrent_mnist.compare.verdicts import compare_runs

__all__ = [
    "FIGURES",
    "Comparison",
    "Figure",
    "compare_runs",
    "comparison_rows",
    "default_out_dir",
    "write_comparison",
]
