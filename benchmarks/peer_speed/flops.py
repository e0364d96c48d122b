"""The FLOP model of a training step, the machine's fp32 matmul peak, and the products floor.

The floor is one training step's matrix products alone, in the forms and batch
chains of the fast layers, timed with torch on one thread per chain: a lower
bound for the fast layers' step. docs/speed.md ("Methods") says what is counted.
Everything here that times runs in the peak worker, which loads torch and no Keras.
"""

from __future__ import annotations

import math
import time

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
TIME_STEPS = 28
FEATURES = 28
PEAK_SIZES = ((2048, 5), (4096, 2))  # (n, timed repeats) of an n x n x n fp32 matmul
FLOOR_MIN_REPEAT_S = 0.05  # each timed repeat of the products floor runs at least this long
FLOOR_REPEATS = 5  # the floor is the best of this many timed repeats


def train_flops_per_step(cell: str, units: int, batch: int) -> int:
    """Matmul FLOPs of one training step of one recurrent layer.

    Forward, backward through the recurrence and the recurrent-kernel gradient
    each cost one recurrent product per step; the input projection and the
    kernel gradient each one input product per step. The input gradient of the
    first layer, the dense head and element-wise work are not counted.
    """
    gates = GATES[cell]
    recurrent = TIME_STEPS * 2 * batch * units * gates * units
    projection = TIME_STEPS * 2 * batch * FEATURES * gates * units
    return 3 * recurrent + 2 * projection


def train_flops_per_epoch(cell: str, units: int, batch: int, n_train: int) -> int:
    return math.ceil(n_train / batch) * train_flops_per_step(cell, units, batch)


def matmul_peak(torch) -> dict[str, float]:
    """GFLOP/s of the best timed n x n x n fp32 `torch.matmul` for each n of `PEAK_SIZES`, at torch's threads."""
    by_size = {}
    for n, repeats in PEAK_SIZES:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=generator)
        b = torch.randn(n, n, generator=generator)
        c = torch.empty(n, n)
        torch.matmul(a, b, out=c)  # warm-up
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - start)
        by_size[str(n)] = 2.0 * n**3 / best / 1e9
    return by_size


def step_products(torch, cell: str, units: int, batch: int):
    """A callable doing the matrix products of one training step of one chain (`train_flops_per_step`'s FLOPs).

    The forms are the fast layers': the input projection of all steps as one
    product, one recurrent product per step forward and one backward (all gates
    in one), the kernel and recurrent-kernel gradients each one product over all steps.
    """
    width = GATES[cell] * units
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape):
        return torch.randn(*shape, generator=generator)

    inputs, kernel = tensor(TIME_STEPS * batch, FEATURES), tensor(FEATURES, width)
    state, recurrent, recurrent_t = tensor(batch, units), tensor(units, width), tensor(width, units)
    gates, gates_all = tensor(batch, width), tensor(TIME_STEPS * batch, width)
    states_t, inputs_t = tensor(units, TIME_STEPS * batch), tensor(FEATURES, TIME_STEPS * batch)
    out_gates, out_state = torch.empty(batch, width), torch.empty(batch, units)
    out_recurrent, out_kernel = torch.empty(units, width), torch.empty(FEATURES, width)
    projected = torch.empty(TIME_STEPS * batch, width)

    def step():
        torch.mm(inputs, kernel, out=projected)  # the input projection of all steps
        for _ in range(TIME_STEPS):
            torch.mm(state, recurrent, out=out_gates)  # forward
        for _ in range(TIME_STEPS):
            torch.mm(gates, recurrent_t, out=out_state)  # backward through the recurrence
        torch.mm(states_t, gates_all, out=out_recurrent)  # recurrent-kernel gradient over all steps
        torch.mm(inputs_t, gates_all, out=out_kernel)  # kernel gradient over all steps

    return step


def best_time_s(call) -> float:
    """The best of `FLOOR_REPEATS` timings of `call`, each repeated often enough to last `FLOOR_MIN_REPEAT_S`."""
    call()  # warm-up
    start = time.perf_counter()
    call()
    once = time.perf_counter() - start
    repeat = max(1, math.ceil(FLOOR_MIN_REPEAT_S / max(once, 1e-9)))
    best = math.inf
    for _ in range(FLOOR_REPEATS):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def products_floor(torch, cell: str, units: int, batch: int, threads: int) -> dict:
    """One training step's matrix products alone, cut into batch chains as the fast layers cut them at `threads`.

    Each chain size is timed with torch on one thread. The chains of a step run
    side by side, one per thread (there are never more chains than threads), so
    `step_s` is the slowest chain's step, each timed alone on its core: a lower
    bound for the fast layers' step.
    """
    chains = fast_layer_chains(batch, threads)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        chain_s = {rows: best_time_s(step_products(torch, cell, units, rows)) for rows in sorted(set(chains))}
    finally:
        torch.set_num_threads(saved)
    return {"chains": chains, "chain_step_s": {str(k): v for k, v in chain_s.items()}, "step_s": max(chain_s.values())}


def fast_layer_chains(batch: int, threads: int) -> list[int]:
    """The rows of each batch chain the fast layers run at `threads` threads, as bench sets them."""
    # Imported here: a worker decides how `recurrent_mnist` loads (without Keras for torch) before it imports it.
    from recurrent_mnist.fast_rnn.chains import MAX_CHAINS, batch_chains

    return batch_chains(batch, min(threads, MAX_CHAINS))


def epoch_floor_s(step_s: float, train_size: int, batch: int) -> float:
    """The floor of one epoch: images / batch steps, the last, partial batch counted by its share (still a bound)."""
    return train_size / batch * step_s
