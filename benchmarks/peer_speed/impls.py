"""What `benchmarks/vs_pytorch.py` compares: the cells, the implementations and the worker kinds."""

from __future__ import annotations

CELLS = ("lstm", "gru", "simple_rnn")
IMPLS = ("keras", "torch", "keras-stock", "keras-xla", "keras-graph")
DEFAULT_IMPLS = ("keras", "torch", "keras-stock")
KERAS_IMPLS = ("keras", "keras-stock", "keras-xla", "keras-graph")
# Options of each Keras implementation beyond the defaults (a lever to measure).
KERAS_OPTIONS = {"keras-xla": {"jit_compile": True}, "keras-graph": {"jit_compile": False}}
# The registered cell names each Keras implementation trains.
KERAS_CELL_NAMES = {
    "keras": {cell: cell for cell in CELLS},
    "keras-stock": {cell: f"keras_{cell}" for cell in CELLS},
    "keras-xla": {cell: cell for cell in CELLS},
    "keras-graph": {cell: cell for cell in CELLS},
}
TORCH_LAYERS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}
WORKERS = ("prepare", "peak", *IMPLS)
TORCH_WORKERS = ("peak", "torch")  # they load PyTorch and must not load TensorFlow
LEARNING_RATE = 1e-3
TORCH_MISSING = 'PyTorch is not installed; install the benchmark extra with `pip install -e ".[torch]"`.'


def keras_cells(impls: list[str], cells: list[str]) -> dict[str, dict[str, str]]:
    """The registered cell name of each Keras implementation in `impls` and cell in `cells`."""
    return {impl: {cell: KERAS_CELL_NAMES[impl][cell] for cell in cells} for impl in impls if impl in KERAS_IMPLS}
