"""What the original TensorFlow 1 tutorial would have printed, next to the same model trained correctly.

The tutorial (`../shared/seed/`) trained BasicLSTMCell(100) on MNIST rows with
Adam 1e-4, batch 50, 21 epochs, but fed softmax outputs to
`softmax_cross_entropy_with_logits` (softmax applied twice) and evaluated the
whole test set after every batch. This script trains, with the same seeds and
data:

- "as written": the same model with the softmax applied twice (a Softmax layer
  on the logits, then a loss that applies softmax again);
- "corrected": `RowSequenceClassifier` returning logits, loss on logits, as
  `recurrent-mnist bench --preset tutorial` does;

and records the test accuracy after each epoch (what the script printed). It
also times one evaluation of the whole test set and reports what evaluating it
after every batch, as the script did, would add to each epoch (projected from
that measured time: the evaluation itself is not repeated per batch here).

    python benchmarks/tutorial_replay.py                         # embedded sample, offline
    python benchmarks/tutorial_replay.py --dataset mnist --seeds 0 1 2

Writes `epochs.csv`, `summary.md` and `environment.json` under
`--results-dir/tutorial-replay-<dataset>/`, rebuilt from one record per (seed,
version) in `variants/`: a rerun trains only what is missing, and refuses to
train into a folder made by other code or with another number of epochs, as
`bench` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from recurrent_mnist import RowSequenceClassifier, datasets, reporting
from recurrent_mnist.bench import PRESETS
from recurrent_mnist.environment import code_identity, machine_environment
from recurrent_mnist.errors import RecurrentMnistError
from recurrent_mnist.runs import records
from recurrent_mnist.runs.atomic import atomic_write_json, atomic_write_text
from recurrent_mnist.runs.folder import RunFolder

TUTORIAL = PRESETS["tutorial"]


class TestAccuracyPerEpoch(keras.callbacks.Callback):
    """Evaluates the test set once at the end of each epoch (the corrected behaviour)."""

    def __init__(self, x, y, record):
        super().__init__()
        self.x, self.y, self.record = x, y, record

    def on_epoch_end(self, epoch, logs=None):
        outputs = self.model.predict(self.x, batch_size=1000, verbose=0)
        self.record.append(float((outputs.argmax(axis=1) == self.y).mean()))


class ScriptSoftmax(keras.layers.Layer):
    """The script's `tf.nn.softmax` on the logits, written out as exp(x - logsumexp(x)).

    Not `keras.layers.Softmax`: Keras's TensorFlow backend recognises a Softmax
    op (or a tensor it tagged) feeding a cross-entropy loss and computes the
    loss from the softmax's input instead, with only a warning, so the bug
    would not be reproduced.
    """

    def call(self, logits):
        return keras.ops.exp(logits - keras.ops.logsumexp(logits, axis=-1, keepdims=True))


def build(as_written: bool) -> keras.Model:
    classifier = RowSequenceClassifier("lstm", units=TUTORIAL["units"])
    if not as_written:
        return classifier
    inputs = keras.Input((28, 28))
    return keras.Model(inputs, ScriptSoftmax()(classifier(inputs)))


def train(data, seed: int, as_written: bool, epochs: int) -> tuple[list[float], list[float], keras.Model]:
    keras.utils.set_random_seed(seed)
    model = build(as_written)
    # The loss applies softmax itself; on the "as written" model's probabilities that is the second softmax.
    model.compile(
        optimizer=keras.optimizers.Adam(TUTORIAL["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    accuracies, times = [], []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=TUTORIAL["batch_size"],
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer, TestAccuracyPerEpoch(data.x_test, data.y_test, accuracies)],
    )
    return accuracies, times, model


def time_full_evaluation(model: keras.Model, x: np.ndarray, repeats: int = 5) -> float:
    model.predict(x, batch_size=len(x), verbose=0)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(x, batch_size=len(x), verbose=0)
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


VERSIONS = {True: "as written (softmax twice)", False: "corrected (logits)"}


class ReplayFolder(RunFolder):
    FOLDERS = ("variants",)


def replay(folder: ReplayFolder, data, seeds: list[int], epochs: int) -> list[dict]:
    """Trains each (seed, version) that has no record yet; returns every record of the folder."""
    code = code_identity()
    folder.check_config({"replay": "tutorial", "epochs": epochs}, data.sha256, code=code)
    for seed in seeds:
        for as_written, label in VERSIONS.items():
            path = folder.path / "variants" / f"{'as-written' if as_written else 'corrected'}-seed{seed}.json"
            if records.read_record(path) is not None:
                print(f"seed {seed} {label}: kept from an earlier run", flush=True)
                continue
            folder.check_code(code)  # never mix versions in one table
            accuracies, times, model = train(data, seed, as_written, epochs)
            row = {"version": label, "seed": seed, "test_accuracy": accuracies[-1]}
            if as_written:
                row["full_test_evaluation_s"] = time_full_evaluation(model, data.x_test)
            history = [
                {"epoch": epoch, "test_accuracy": accuracy, "epoch_time_s": seconds}
                for epoch, (accuracy, seconds) in enumerate(zip(accuracies, times, strict=True), start=1)
            ]
            environment = {**machine_environment(), "code": code}
            records.write_record(path, path.stem, {"seed": seed, "epochs": epochs}, row, history, environment, sys.argv)
            print(f"seed {seed} {label}: test accuracy after epoch {epochs}: {accuracies[-1]:.4f}", flush=True)
    return records.read_records(folder.path / "variants")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-sample", choices=list(datasets.DATASETS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=TUTORIAL["epochs"])
    parser.add_argument("--results-dir", type=Path, default=Path("results/reference"))
    args = parser.parse_args()

    data = datasets.load(args.dataset, args.data_dir)
    folder = ReplayFolder(args.results_dir / f"tutorial-replay-{args.dataset}")
    batches = int(np.ceil(len(data.x_train) / TUTORIAL["batch_size"]))
    try:
        folder.prepare()
        found = replay(folder, data, args.seeds, args.epochs)
    except RecurrentMnistError as exc:
        # The library names its own arguments; this script's are --results-dir and the folder itself.
        message = str(exc).replace("choose another `run_name`, or pass `fresh=True` to discard it", "")
        sys.exit(f"error: {message.rstrip('; ')}; give another --results-dir, or delete {folder.path} to start over")
    found = [r for r in found if r["row"]["seed"] in args.seeds]
    rows = [
        {"version": r["row"]["version"], "seed": r["row"]["seed"], **entry} for r in found for entry in r["history"]
    ]
    evaluation_s = [r["row"]["full_test_evaluation_s"] for r in found if "full_test_evaluation_s" in r["row"]]
    epochs = pd.DataFrame(rows).sort_values(["version", "seed", "epoch"], kind="stable").reset_index(drop=True)
    reporting.write_csv(epochs, folder.path / "epochs.csv")
    final = epochs[epochs["epoch"] == args.epochs].groupby("version")["test_accuracy"].agg(["mean", "std", "count"])
    marks = [e for e in (1, 2, 5, 10, args.epochs) if e <= args.epochs]
    per_epoch = epochs[epochs["epoch"].isin(marks)].pivot_table(
        index="epoch", columns="version", values="test_accuracy", aggfunc="mean"
    )
    # The first epoch of each training traces and compiles: never a steady-state time.
    steady = epochs[epochs["epoch"] > 1]["epoch_time_s"]
    training = (
        f"{steady.median():.1f} s of training" if len(steady) else "the training (one epoch: no steady-state time)"
    )
    full_eval_s = float(np.median(evaluation_s))
    text = f"# The tutorial replayed on {data.name}\n\n"
    text += (
        f"LSTM 100 units, Adam 1e-4, batch 50, {args.epochs} epochs, seeds {args.seeds}; "
        f"{len(data.x_train):,} training and {len(data.x_test):,} test images.\n\n"
    )
    text += "Test accuracy after the last epoch (mean ± standard deviation over seeds):\n\n"
    text += reporting.markdown_table(
        ["version", "test accuracy", "seeds"],
        [
            [v, f"{r['mean']:.4f} ± {r['std']:.4f}" if r["count"] > 1 else f"{r['mean']:.4f}", str(int(r["count"]))]
            for v, r in final.iterrows()
        ],
        ["l", "r", "r"],
    )
    text += "\nMean test accuracy by epoch:\n\n"
    text += reporting.markdown_table(
        ["epoch", *per_epoch.columns],
        [[str(epoch), *(f"{v:.4f}" for v in values)] for epoch, values in per_epoch.iterrows()],
        ["r"] * (1 + len(per_epoch.columns)),
    )
    text += (
        f"\nOne evaluation of the {len(data.x_test):,} test images took {full_eval_s:.3f} s (median of 5). "
        f"The script evaluated them after each of the {batches} batches of an epoch: about "
        f"{full_eval_s * batches:.0f} s per epoch on top of {training} "
        "(projected from the measured evaluation time). Evaluating once per epoch costs "
        f"{full_eval_s:.3f} s.\n"
    )
    atomic_write_text(folder.path / "summary.md", text)
    environments = {}
    for record in found:
        environments.setdefault(json.dumps(record["environment"], sort_keys=True), record["environment"])
    atomic_write_json(
        folder.path / "environment.json",
        {
            "dataset": data.describe(),
            "seeds": args.seeds,
            "epochs": args.epochs,
            "full_test_evaluation_s": full_eval_s,
            "batches_per_epoch": batches,
            "environments": list(environments.values()),
            "commands": sorted({" ".join(r["command"]) for r in found if r.get("command")}),
        },
    )
    print(text)
    print(f"Wrote {folder.path}/epochs.csv, summary.md, environment.json")


if __name__ == "__main__":
    main()
