"""Inference throughput of the fast layers at one thread: fused or per-gate recurrent matmuls, with or without XLA.

One process, one TensorFlow thread, 10,000 random uint8 images, `predict` at
batch 1024 through `recurrent_mnist.training.input_pipeline`, as `bench` and
`benchmarks/vs_pytorch.py` measure inference. The models are timed in
interleaved repetitions and the best of `--repeats` is printed:

- `fused`, `per_gate`: the fast layer made with that `gate_matmul` (the LSTM
  and GRU), the graph as `predict` runs it;
- `fast`: the fast SimpleRNN, which has one form;
- `... + XLA`: the same model compiled with `jit_compile=True` (its predict
  function compiled by XLA; `RowSequenceClassifier.predict` chooses this by
  itself on one thread up to `fast_rnn.thresholds.PREDICT_XLA_MAX_UNITS`
  units, so every row here calls Keras's own `predict`, which keeps the
  model's `jit_compile`);
- `plain Keras`: the stock layer of the same cell.

The figures set `PREDICT_XLA_MAX_UNITS` and `PER_GATE_MIN_UNITS`
(`recurrent_mnist/fast_rnn/thresholds.py`).

    taskset -c 1 python benchmarks/gate_matmul_inference.py gru
    taskset -c 1 python benchmarks/gate_matmul_inference.py simple_rnn --units 128
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from recurrent_mnist import RowSequenceClassifier
from recurrent_mnist.environment import limit_threads
from recurrent_mnist.fast_rnn import FastGRU, FastLSTM
from recurrent_mnist.training import INFERENCE_BATCH, input_pipeline

FAST_LAYERS = {"lstm": FastLSTM, "gru": FastGRU}


def make_model(cell: str, units: int, mode: str) -> RowSequenceClassifier:
    """The model of one row: the stock layer, the fast one with the row's `gate_matmul`, or the fast SimpleRNN."""
    if mode == "plain Keras":
        return RowSequenceClassifier(f"keras_{cell}", units=units)
    if cell == "simple_rnn":
        return RowSequenceClassifier(cell, units=units)
    return RowSequenceClassifier(FAST_LAYERS[cell](units, gate_matmul=mode.split(" ")[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell", choices=["lstm", "gru", "simple_rnn"])
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    limit_threads(1)  # before TensorFlow's first operation

    images = np.random.default_rng(0).integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
    data = input_pipeline(images, None, INFERENCE_BATCH)
    models = {}
    forms = ("fast",) if args.cell == "simple_rnn" else ("fused", "per_gate")
    modes = [*forms, *(f"{form} + XLA" for form in forms), "plain Keras"]
    for mode in modes:
        model = make_model(args.cell, args.units, mode)
        model.build((None, 28, 28))
        model.compile(jit_compile=mode.endswith("XLA"))
        predict(model, data)  # traces (and compiles) the predict function
        models[mode] = model
    seconds = {mode: [] for mode in models}
    for _ in range(args.repeats):
        for mode, model in models.items():
            start = time.perf_counter()
            predict(model, data)
            seconds[mode].append(time.perf_counter() - start)
    for mode, times in seconds.items():
        print(f"{args.cell} {args.units} units, {mode}: {len(images) / min(times):,.0f} images/s")


def predict(model, data):
    """Keras's `predict`, as the model is compiled: `RowSequenceClassifier.predict` would pick XLA itself."""
    return keras.Model.predict(model, data, verbose=0)


if __name__ == "__main__":
    main()
