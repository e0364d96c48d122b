"""Every tuned threshold of the fast path, in one place: plain numbers, no Keras and no TensorFlow.

Each was set from what a committed benchmark command printed on this project's
CPU machines; the comment above it names the command to run again when the
hardware or the library versions change. The figures are in docs/speed.md and
results/speed/, never here.
"""

from __future__ import annotations

__all__ = [
    "AUTO_XLA_MAX_BATCH",
    "PER_GATE_MIN_BATCH",
    "PER_GATE_MIN_UNITS",
    "PREDICT_XLA_MAX_UNITS",
    "SERVE_STOCK_MAX_BATCH",
    "UNROLL_MAX_STEPS",
]

# Training with `jit_compile=None` compiles the fast LSTM's step with XLA up to this batch size, on one thread
# (XLA fuses each unrolled step's element-wise work; at larger batches the products dominate and it stops paying).
# Measured by: benchmarks/reference.sh speed-lstm (vs_pytorch.py at one thread, --impls keras keras-graph keras-xla)
AUTO_XLA_MAX_BATCH = 64

# `RowSequenceClassifier.predict` compiles with XLA on one thread for fast layers of at most this many units
# (above it, XLA's code for the wider products gains nothing for every cell).
# Measured by: taskset -c 1 python benchmarks/gate_matmul_inference.py lstm|gru|simple_rnn [--units 128]
PREDICT_XLA_MAX_UNITS = 127

# Without XLA, the LSTM and the reset-after GRU multiply per gate from this many units (the strided split and
# concatenate copies of the fused product then cost more than the extra products).
# Measured by: taskset -c 1 python benchmarks/gate_matmul_inference.py lstm|gru [--units 128]
PER_GATE_MIN_UNITS = 128

# ... and only for batches of at least this many rows, or of unknown size (for a few images, the extra calls cost
# more than the copies they save).
# Measured by: benchmarks/reference.sh speed-serve (benchmarks/latency.py, its predict_on_batch rows)
PER_GATE_MIN_BATCH = 16

# `RowSequenceClassifier.serve` (under XLA) hands batches of at most this many rows to the stock Keras loop,
# which XLA compiles to faster code there than the unrolled fast path.
# Measured by: benchmarks/reference.sh speed-serve (benchmarks/latency.py --impls serve serve-fast serve-stock)
SERVE_STOCK_MAX_BATCH = 16

# The fast path unrolls the time loop into the graph, so tracing and compiling grow with the number of steps;
# longer sequences (the pixel readings' 784 steps) run the stock Keras loop, which traces one step.
# Measured by: benchmarks/reference.sh speed-long (benchmarks/long_sequences.py)
UNROLL_MAX_STEPS = 100
