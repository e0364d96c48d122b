"""The PyTorch peer: `RowSequenceClassifier`'s model in PyTorch, trained and measured as bench trains Keras's.

`bench --frameworks keras torch` trains, next to each Keras variant, a PyTorch
model of the same shape on the same arrays (`model.PeerClassifier`, trained by
`train.train_peer`, each variant in a process of its own that never loads
TensorFlow: `worker`). What is the same in both frameworks:

- the model: one `torch.nn.LSTM` / `GRU` / `RNN` per stacked layer (bidirectional
  where asked), the last hidden state, a linear head; pixels scaled by 1/255
  inside the model; the same parameter count (see `model`);
- the initial weight scheme of Keras: Glorot-uniform input kernels and head,
  orthogonal recurrent kernels, zero biases, LSTM forget-gate bias 1;
- dropout: Keras's input dropout of every recurrent layer, one mask per sequence
  for all time steps;
- Adam with the same learning rate and Keras's epsilon (1e-7), cross-entropy on
  logits; the same validation split (`training.split_validation`), batch size,
  seed, early stopping on validation accuracy with the best weights restored;
- the measurements of `train_variant`: steady-state epoch time (the median of the
  epochs after the first, validation excluded), first epoch, training and
  inference throughput (batch 1024), single-image latency, memory, accuracy.

What is not: the random draws. Both frameworks take the variant's seed, but
TensorFlow's and PyTorch's generators differ, so the initial weights and the
dropout masks are other draws from the same distributions; and the batch order
is a seeded permutation per epoch (`numpy.random.default_rng(seed)`), not
`tf.data`'s shuffle, which cannot be reproduced without TensorFlow. Keras adds
Adam's epsilon before the bias correction and PyTorch after it, so the same
1e-7 counts for less in PyTorch's early steps (by a factor sqrt(1 - 0.999^t));
beside the gradients' size either is negligible. With dropout on a
bidirectional layer both directions share one mask (Keras draws one per
direction). The peer trains on the CPU. PyTorch has no recurrent dropout that
matches Keras's, so `recurrent_dropout` > 0 is refused (`refusal`).

This module imports neither PyTorch nor Keras: bench checks configurations here
in any process.
"""

from __future__ import annotations

import importlib.util

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError

__all__ = ["CELLS", "FRAMEWORKS", "TORCH_MISSING", "check_trainable", "refusal", "torch_installed"]

# The frameworks bench trains with; the first is the default.
FRAMEWORKS = ("keras", "torch")
# The cells the peer has: the built-in ones (custom cells are Keras layers).
CELLS = settings.DEFAULT_CELLS
TORCH_MISSING = 'PyTorch is not installed; install the extra with `pip install "recurrent-mnist[torch]"`'


def torch_installed() -> bool:
    """Whether torch can be imported, found without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def refusal(cell: str, *, recurrent_dropout: float = 0.0, strategy: str = "default") -> str | None:
    """Why the peer cannot train this configuration as Keras does, in one sentence; None when it can."""
    if cell not in CELLS:
        return f"the PyTorch peer has the cells {', '.join(CELLS)} only, not {cell}"
    if recurrent_dropout:
        return (
            f"the PyTorch peer has no recurrent dropout (torch.nn recurrent layers drop nothing inside the "
            f"recurrence), so recurrent_dropout={recurrent_dropout} cannot be matched"
        )
    if strategy != "default":
        return f"the PyTorch peer trains on one device; strategy={strategy} is a TensorFlow distribution strategy"
    return None


def check_trainable(configs, argument: str = "frameworks") -> None:
    """Raises `ConfigError` (one sentence naming `argument`) unless torch is installed and the peer can
    train every configuration in `configs` (`TrainConfig`s)."""
    if not torch_installed():
        raise ConfigError(f"`{argument}` names torch, but {TORCH_MISSING}", argument=argument)
    for config in configs:
        reason = refusal(config.cell, recurrent_dropout=config.recurrent_dropout, strategy=config.strategy)
        if reason:
            raise ConfigError(f"`{argument}` names torch, but {reason}", argument=argument)
