"""How a fast layer cuts its batch into parallel chains: plain arithmetic, no Keras and no TensorFlow.

A fast layer runs its batch as independent recurrences side by side, one per
TensorFlow inter-op thread (`driver.py`). This module says how many chains a
batch gets and where it is cut, so that a process without Keras (the PyTorch
peer of `benchmarks/vs_pytorch.py`) can cut a batch the same way.
"""

from __future__ import annotations

import itertools

__all__ = ["MAX_CHAINS", "MIN_CHAIN_ROWS", "batch_chains", "chain_count", "chain_cuts"]

# Chains are not cut thinner than this many rows when the batch size is static.
MIN_CHAIN_ROWS = 8
# The most chains a layer runs, whatever its setting.
MAX_CHAINS = 16


def chain_count(batch: int | None, chains: int) -> int:
    """How many of `chains` a batch of static size `batch` gets (None: unknown, all of them)."""
    if batch is None:
        return chains
    return max(1, min(chains, batch // MIN_CHAIN_ROWS))


def chain_cuts(batch, chains: int) -> list:
    """The `chains + 1` row offsets that cut a batch of `batch` rows (an int or a scalar tensor) evenly."""
    return [batch * i // chains for i in range(chains + 1)]


def batch_chains(batch: int, chains: int) -> list[int]:
    """The rows of each chain when a batch of static size `batch` is cut into at most `chains` chains.

    Args:
        batch: the batch size, known when the graph is traced.
        chains: the most chains, as `resolve_parallel_chains` gives it.

    Returns:
        One row count per chain, in batch order; no chain under
        `MIN_CHAIN_ROWS` rows unless the whole batch is.

    Example:

    >>> batch_chains(256, 3)
    [85, 85, 86]
    >>> batch_chains(12, 4)
    [12]
    """
    cuts = chain_cuts(batch, chain_count(batch, chains))
    return [high - low for low, high in itertools.pairwise(cuts)]
