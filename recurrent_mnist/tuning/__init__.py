"""Hyperparameter search with keras-tuner: the search space as a HyperModel, and a resumable, exported search.

`RowSequenceHyperModel` declares the search space (cell, units, layers,
bidirectional, dropout, learning rate on a log scale, batch size) and builds
each candidate with the public `RowSequenceClassifier` constructor.
`run_search(TuneConfig(...))` runs keras-tuner over it and writes, under
`<results>/<run>/`: `trials.csv` (every trial, failed ones with their reason),
`best_hyperparameters.json`, `best_model.keras` (the best configuration
retrained, with its test accuracy), `summary.md` and `environment.json`.

The cell is a hyperparameter of one search, not a search per cell: one
keras-tuner project and one oracle serve every cell, so `max_trials` is the
whole budget, the tuner spends trials where they pay (Bayesian optimisation
learns which cell does well, Hyperband drops a weak cell early), and
keras-tuner's distributed mode (one chief oracle, many workers) works
unchanged. The best configuration of each cell is read from the trials table.
For an equal budget per cell, run one search per cell (`cells=("gru",)`), or
compare fixed configurations with `bench`.

What keras-tuner 1.4 leaves to its users is done here: every state file is
written atomically, so a `kill -9` loses at most the running trial and the
same call resumes (a grid search too); a trial whose loss turns NaN fails with
its reason and is never ranked, while the search goes on (keras-tuner's
`max_consecutive_failed_trials` limit is lifted); a time budget stops handing
out trials; and a distributed chief ends by itself once the search is over
and its workers are gone, instead of polling every 20 seconds for workers
that may never come back.

Where things live: `hypermodel` (the search space), `config` (`TuneConfig` and the keras-tuner
environment of each role), `oracles` (keras-tuner's oracles and tuners, made reliable), `tables`
(the trials table, `TuneResult`, `summary.md`), `folder` (the run folder and its locks), `search`
(`run_search` and the best model) and `distributed` (the chief and its workers).
"""

# `name as name`: importable from here, as from the single module this package replaced, but not in `__all__`.
from recurrent_mnist.settings import parse_oracle_address
from recurrent_mnist.tuning.config import TuneConfig, default_run_name, keras_tuner_environment
from recurrent_mnist.tuning.hypermodel import DEFAULTS, OBJECTIVES, RANGES, RowSequenceHyperModel
from recurrent_mnist.tuning.hypermodel import SEARCH_SPACE as SEARCH_SPACE
from recurrent_mnist.tuning.search import run_search
from recurrent_mnist.tuning.tables import METRIC_COLUMNS as METRIC_COLUMNS
from recurrent_mnist.tuning.tables import TuneResult
from recurrent_mnist.tuning.tables import best_per_cell as best_per_cell
from recurrent_mnist.tuning.tables import ranked as ranked
from recurrent_mnist.tuning.tables import summary_markdown as summary_markdown
from recurrent_mnist.tuning.tables import trials_frame as trials_frame

__all__ = [
    "DEFAULTS",
    "OBJECTIVES",
    "RANGES",
    "RowSequenceHyperModel",
    "TuneConfig",
    "TuneResult",
    "default_run_name",
    "keras_tuner_environment",
    "parse_oracle_address",
    "run_search",
]
