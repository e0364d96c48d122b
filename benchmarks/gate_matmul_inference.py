"""Inference throughput of the fast layers at one thread: fused or per-gate recurrent matmuls, with or without XLA.

One process, one TensorFlow thread, 10,000 random uint8 images, `predict` at
batch 1024 through `recurrent_mnist.training.input_pipeline`, as `bench` and
`benchmarks/vs_pytorch.py` measure inference. The models are timed in
interleaved repetitions and the best of `--repeats` is printed:

- `fused`, `per_gate`: the fast layer with that form of the recurrent products
  (the LSTM and GRU; `driver.GATE_MATMUL`), the graph as `predict` runs it;
- `fast`: the fast SimpleRNN, which has one form;
- `... + XLA`: the same model compiled with `jit_compile=True` (its predict
  function compiled by XLA; `RowSequenceClassifier.predict` chooses this by
  itself on one thread up to `fast_rnn.layers.PREDICT_XLA_MAX_UNITS` units,
  a choice this script turns off for the other rows);
- `plain Keras`: the stock layer of the same cell.

    taskset -c 1 python benchmarks/gate_matmul_inference.py gru
    taskset -c 1 python benchmarks/gate_matmul_inference.py simple_rnn --units 128
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.environment import limit_threads
from recurrent_mnist.fast_rnn import driver, layers
from recurrent_mnist.training import INFERENCE_BATCH, input_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", choices=["lstm", "gru", "simple_rnn"])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    limit_threads(1)  # before TensorFlow's first operation
    layers.PREDICT_XLA_MAX_UNITS = 0  # `predict` would compile with XLA on one thread: the graph rows stay graphs

    images = np.random.default_rng(0).integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
    data = input_pipeline(images, None, INFERENCE_BATCH)
    models = {}
    forms = ("fast",) if args.cell == "simple_rnn" else ("fused", "per_gate")
    modes = [*forms, *(f"{form} + XLA" for form in forms), "plain Keras"]
    for mode in modes:
        # The choice is read when the predict function is traced, on its first call.
        driver.GATE_MATMUL = "fused" if mode == "plain Keras" else mode.split(" ")[0].replace("fast", "fused")
        name = f"keras_{args.cell}" if mode == "plain Keras" else args.cell
        model = RowSequenceClassifier(name, units=args.units)
        model.build((None, 28, 28))
        model.compile(jit_compile=mode.endswith("XLA"))
        model.predict(data, verbose=0)
        models[mode] = model
    seconds = {mode: [] for mode in models}
    for _ in range(args.repeats):
        for mode, model in models.items():
            start = time.perf_counter()
            model.predict(data, verbose=0)
            seconds[mode].append(time.perf_counter() - start)
    for mode, times in seconds.items():
        print(f"{args.cell} {args.units} units, {mode}: {len(images) / min(times):,.0f} images/s")


if __name__ == "__main__":
    main()
