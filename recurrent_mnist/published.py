"""What the literature reports on the test set for each task this tool runs, to set a run's figures beside.

A task is a data set read one way (`recurrent_mnist.readings`). Each entry names the
cell as the paper does, its test accuracy, the setting it was reached in and the
source; `cells` lists the registered cell names it stands for. The published budgets
(epochs, schedules, layers) are larger than a small machine runs, so these are anchors
to aim at, not the figures a short run should reach.
"""

from __future__ import annotations

import dataclasses

__all__ = ["PUBLISHED", "Anchor", "anchors"]


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One published figure: a cell's test accuracy on one task."""

    cell: str
    accuracy: str
    setting: str
    source: str
    cells: tuple[str, ...] = ()


_BAI = "Bai, Kolter and Koltun (2018), Table 1"
_BAI_SETTING = "about 70 K parameters"
_LI = "Li, Li, Cook, Zhu and Gao (2018)"

PUBLISHED: dict[tuple[str, str], tuple[Anchor, ...]] = {
    ("mnist", "rows"): (
        Anchor("LSTM", "98.5-98.9 %", "one layer, a few epochs", "public reproductions", ("lstm", "keras_lstm")),
        Anchor("GRU", "about 98.9 %", "one layer, a few epochs", "public reproductions", ("gru", "keras_gru")),
    ),
    ("mnist", "pixels"): (
        Anchor("LSTM", "87.2 %", _BAI_SETTING, _BAI, ("lstm", "keras_lstm")),
        Anchor("GRU", "96.2 %", _BAI_SETTING, _BAI, ("gru", "keras_gru")),
        Anchor("plain RNN", "21.5 %", _BAI_SETTING, _BAI, ("simple_rnn", "keras_simple_rnn")),
        Anchor("IndRNN", "99.0 %", "6 layers of 128 units", _LI, ("indrnn", "keras_indrnn")),
    ),
    ("mnist", "permuted-pixels"): (
        Anchor("LSTM", "85.7 %", _BAI_SETTING, _BAI, ("lstm", "keras_lstm")),
        Anchor("GRU", "87.3 %", _BAI_SETTING, _BAI, ("gru", "keras_gru")),
        Anchor("plain RNN", "25.3 %", _BAI_SETTING, _BAI, ("simple_rnn", "keras_simple_rnn")),
        Anchor("IndRNN", "96.0 %", "6 layers of 128 units", _LI, ("indrnn", "keras_indrnn")),
        Anchor("LMU", "97.15 %", "one layer", "Voelker, Kajić and Eliasmith (2019)"),
        Anchor("coRNN", "97.34 %", "one layer", "Rusch and Mishra (2021)"),
    ),
}


def anchors(dataset: str, reading: str) -> tuple[Anchor, ...]:
    """The published figures of a data set read so; empty where none are kept (Fashion-MNIST, the sample)."""
    return PUBLISHED.get((dataset, reading), ())
