"""Epoch time of recurrent-mnist against a PyTorch model of the same shape, measured side by side in one run.

For every cell (LSTM, GRU, SimpleRNN) and shape (units x batch size), this
script trains

- `keras`: the project's own training path (`recurrent_mnist.training.train_variant`
  with the default cell, e.g. `TrainConfig(cell="lstm")`), so the figure measured
  IS the one `recurrent-mnist bench` reports in its `epoch_time_s` column;
- `torch`: the PyTorch peer that `recurrent-mnist bench --frameworks torch` trains
  (`recurrent_mnist.torch_peer.train_peer`): `nn.LSTM`/`nn.GRU`/`nn.RNN(28, units,
  batch_first=True)` with Keras's parameters and initial weight scheme, the last
  hidden state, `nn.Linear(units, 10)`, Adam 1e-3 (Keras's epsilon),
  cross-entropy, the same images, batch size and seed, shuffled every epoch;
- `keras-stock`: the plain Keras layer (registered cells `keras_lstm`,
  `keras_gru`, `keras_simple_rnn`) through the same training path;
- `keras-xla` (not run by default): `keras` with `jit_compile=True` (XLA), a
  lever measured against the default;
- `keras-graph` (not run by default): `keras` with `jit_compile=False` (no
  XLA), to measure the automatic XLA choice where it turns XLA on;

and writes, per cell, shape and implementation, the median steady-state epoch
time over the rounds, the first (compile) epoch, throughput, test accuracy,
inference speed, single-image latency, the fraction of the machine's fp32
matmul peak, and the ratios `keras / torch` and `keras / keras-stock`.

How it measures:

- every run is a fresh process of this script (hidden `--worker` mode), so the
  two frameworks never share a process; the worker prints one JSON line last;
- rounds are interleaved: in each round, for each (cell, shape), every
  implementation runs once, its order rotated by one each round, so that the
  machine's drift hits every implementation alike;
- both frameworks get the same thread count, each used the way it trains
  fastest: the project's model as `recurrent-mnist bench --threads N` sets it
  (`environment.limit_threads`: inter-op = `--threads`, intra-op = 1, and the
  fast recurrent layers run that many batch chains side by side); the plain
  Keras layer with TensorFlow's default pool shape (intra-op = inter-op =
  `--threads`); torch `set_num_threads(--threads)` (intra-op) and
  `set_num_interop_threads(1)`;
- epoch 1 (tracing, compilation; PyTorch's warm-up) is reported apart; the
  steady-state epoch time of a run is the median of its later epochs, as in
  `train_variant` and `train_peer`;
- inference throughput (batch 1024 over the test set, median of 3 after a
  warm-up) and latency (one uint8 image per call, p50/p95 of 100 calls after 5
  warm-up calls) are measured the same way on both sides: raw uint8 images in,
  logits out as numpy;
- the fp32 matmul peak (torch, 2048^3 and 4096^3, best of several) is measured
  once per run in its own worker with the same thread count. Training FLOPs per
  step, with G = 4 (LSTM), 3 (GRU), 1 (SimpleRNN), T = 28 steps, F = 28
  features, B = batch, U = units: recurrent forward T*2*B*U*G*U, input
  projection T*2*B*F*G*U, recurrent backward and recurrent-kernel gradient as
  much as the recurrent forward, kernel gradient as much as the input
  projection (the input gradient of the first layer is not needed; the dense
  head and element-wise work are not counted); times ceil(N / B) steps per
  epoch. `peak_fraction` = FLOPs per epoch / epoch time / peak.
- the products floor of each shape, measured in the peak worker: the matrix
  products of one training step, exactly the FLOPs counted above, in the forms
  the fast layers use (the input projection of all steps as one product, one
  recurrent product per step forward and one backward, all gates in one: the
  fast layers split it per gate from 128 units without XLA, where that
  measured faster in TensorFlow; the kernel and
  recurrent-kernel gradients each one product over all steps), timed with
  torch on one thread for one batch chain (the batch cut as the fast layers
  cut it at `--threads`), best of 5; an epoch's floor is the step time of the
  busiest thread (the chains it runs, one after another) times images / batch,
  the last partial batch counted by its share. It is a lower bound for the
  fast layers' epoch (element-wise work, the optimizer and the input are not
  in it, and each chain is timed alone on its core), so `floor / torch` says
  how close to PyTorch any implementation of this design could come, and the
  ratios table says whether `keras / torch` meets the goal `TRAIN_GOAL`.

Outputs under `--results-dir` (default `results/speed`), named by `--name`:
`<name>.jsonl` (every raw run, appended as it finishes), `<name>.csv`,
`<name>.md` (both rewritten after every run) and `<name>.environment.json`
(one per name, so that several runs share a folder).

Examples::

    # the full comparison: all cells, units 100 / batch 50 and units 128 / batch 256, Fashion-MNIST
    python benchmarks/vs_pytorch.py

    # one cell, one shape, more rounds, pinned to one core
    taskset -c 1 python benchmarks/vs_pytorch.py --cells lstm --shapes 100x50 --rounds 3 --threads 1

    # a smoke run on the embedded sample
    python benchmarks/vs_pytorch.py --dataset mnist-sample --n-train 600 --n-test 200 --epochs 2 \\
        --rounds 1 --cells simple_rnn --shapes 16x50 --results-dir /tmp/vs

    # one worker by hand (what the orchestrator spawns); prints one JSON line
    python benchmarks/vs_pytorch.py --worker keras --cell lstm --units 100 --batch 50 --epochs 2

Needs PyTorch: `pip install -e ".[torch]"`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import importlib.util
import itertools
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the orchestrator imports TensorFlow with recurrent_mnist

CELLS = ("lstm", "gru", "simple_rnn")
IMPLS = ("keras", "torch", "keras-stock", "keras-xla", "keras-graph")
DEFAULT_IMPLS = ("keras", "torch", "keras-stock")
KERAS_IMPLS = ("keras", "keras-stock", "keras-xla", "keras-graph")
# Options of each Keras implementation beyond the defaults (a lever to measure).
KERAS_OPTIONS = {"keras-xla": {"jit_compile": True}, "keras-graph": {"jit_compile": False}}
WORKERS = ("prepare", "peak", *IMPLS)
TORCH_WORKERS = ("peak", "torch")  # they load PyTorch and must not load TensorFlow
# The registered cell names each Keras implementation trains.
KERAS_CELL_NAMES = {
    "keras": {cell: cell for cell in CELLS},
    "keras-stock": {cell: f"keras_{cell}" for cell in CELLS},
    "keras-xla": {cell: cell for cell in CELLS},
    "keras-graph": {cell: cell for cell in CELLS},
}
GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
TORCH_LAYERS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}
TIME_STEPS = 28
FEATURES = 28
LEARNING_RATE = 1e-3
PEAK_SIZES = ((2048, 5), (4096, 2))  # (n, timed repeats) of an n x n x n fp32 matmul
# The training goal of the second speed round (issue 16): recurrent-mnist at most this share of PyTorch's epoch time.
TRAIN_GOAL = 0.75
# As the fast layers cut a batch (recurrent_mnist/fast_rnn/driver.py; not imported: the peak worker loads no Keras).
MIN_CHAIN_ROWS = 8
FLOOR_MIN_REPEAT_S = 0.05  # each timed repeat of the products floor runs at least this long
STDERR_TAIL = 3000
OTHER_LOAD_WARNING = 0.05  # share of all CPUs used by other processes during a run
TORCH_MISSING = 'PyTorch is not installed; install the benchmark extra with `pip install -e ".[torch]"`.'


# --------------------------------------------------------------------------- arguments


def shape_arg(text: str) -> tuple[int, int]:
    """Parses `UNITSxBATCH`, e.g. `100x50`."""
    try:
        units, batch = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is UNITSxBATCH, e.g. 100x50; received {text!r}") from None
    if units < 1 or batch < 1:
        raise argparse.ArgumentTypeError(f"units and batch must be positive; received {text!r}")
    return units, batch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train recurrent-mnist and a PyTorch model of the same shape side by side; compare epoch times.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS), help="recurrent cells")
    parser.add_argument(
        "--shapes", nargs="+", type=shape_arg, default=["100x50", "128x256"], help="UNITSxBATCH, e.g. 100x50"
    )
    parser.add_argument(
        "--impls",
        nargs="+",
        choices=IMPLS,
        default=list(DEFAULT_IMPLS),
        help="keras: the project's default cell; torch: the PyTorch peer; keras-stock: the plain Keras layer; "
        "keras-xla: keras with jit_compile=True; keras-graph: keras with jit_compile=False "
        "(default: keras torch keras-stock)",
    )
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs per run (epoch 1 reported apart)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="threads for both frameworks (TensorFlow: inter-op, as bench --threads; torch: intra-op)",
    )
    parser.add_argument("--dataset", default="fashion-mnist", help="mnist, fashion-mnist or mnist-sample")
    parser.add_argument("--data-dir", default=None, help="folder with the data set's files (see datasets.load)")
    parser.add_argument("--n-train", type=positive_int, default=None, help="train on the first N images only")
    parser.add_argument("--n-test", type=positive_int, default=None, help="test on the first N images only")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling")
    parser.add_argument("--results-dir", type=Path, default=Path("results/speed"))
    parser.add_argument("--name", default="vs_pytorch", help="base name of the result files")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a run is killed as failed")
    # The hidden worker mode: one run, one JSON line on stdout.
    parser.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cell", choices=CELLS, default="lstm", help=argparse.SUPPRESS)
    parser.add_argument("--units", type=positive_int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=positive_int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--data-file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check-cells", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--floors", nargs="*", default=[], help=argparse.SUPPRESS)  # CELL:UNITSxBATCH, peak worker
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.shapes = [shape_arg(s) if isinstance(s, str) else s for s in args.shapes]
    if args.epochs < 2 and args.worker is None:
        parser.error("--epochs must be at least 2: epoch 1 is the compile epoch, the steady state comes after it")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    return args


# --------------------------------------------------------------------------- shared helpers


def train_flops_per_step(cell: str, units: int, batch: int) -> int:
    """Matmul FLOPs of one training step of one recurrent layer (see the module docstring)."""
    gates = GATES[cell]
    recurrent = TIME_STEPS * 2 * batch * units * gates * units
    projection = TIME_STEPS * 2 * batch * FEATURES * gates * units
    # forward, backward through the recurrence, recurrent-kernel gradient; projection and kernel gradient
    return 3 * recurrent + 2 * projection


def train_flops_per_epoch(cell: str, units: int, batch: int, n_train: int) -> int:
    return math.ceil(n_train / batch) * train_flops_per_step(cell, units, batch)


def batch_chains(batch: int, threads: int) -> list[int]:
    """The rows of each batch chain the fast layers run at `threads` threads, as bench sets them."""
    chains = max(1, min(threads, batch // MIN_CHAIN_ROWS))
    cuts = [batch * i // chains for i in range(chains + 1)]
    return [end - start for start, end in itertools.pairwise(cuts)]


def step_products(torch, cell: str, units: int, batch: int):
    """A callable doing the matrix products of one training step of one chain (`train_flops_per_step`'s FLOPs)."""
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


def products_floor(torch, cell: str, units: int, batch: int, threads: int) -> dict:
    """One training step's matrix products alone, as the fast layers cut them, at torch's one-thread speed.

    `step_s` is a lower bound for the fast layers' step: the chains of a step
    run side by side, one per thread, each timed alone on its core.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        chains = batch_chains(batch, threads)
        chain_s = {}
        for rows in sorted(set(chains)):
            step = step_products(torch, cell, units, rows)
            step()  # warm-up
            start = time.perf_counter()
            step()
            once = time.perf_counter() - start
            repeat = max(1, math.ceil(FLOOR_MIN_REPEAT_S / max(once, 1e-9)))
            best = math.inf
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(repeat):
                    step()
                best = min(best, (time.perf_counter() - start) / repeat)
            chain_s[rows] = best
    finally:
        torch.set_num_threads(saved)
    # `threads` chains run side by side, each on its own thread; a thread with several chains runs them in turn.
    per_thread = [sum(chain_s[rows] for rows in chains[i::threads]) for i in range(min(threads, len(chains)))]
    return {"chains": chains, "chain_step_s": {str(k): v for k, v in chain_s.items()}, "step_s": max(per_thread)}


def data_digest(x_train, y_train, x_test, y_test) -> str:
    """SHA-256 of the arrays a run trained and tested on, so both sides can be shown to see the same data."""
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- workers


def configure_tensorflow(threads: int, impl: str = "keras") -> dict:
    """Sets TensorFlow's thread pools; must run before any TensorFlow op.

    The project's model runs as bench sets it (`environment.limit_threads`);
    the plain Keras layer as TensorFlow sizes its pools by default (intra-op
    and inter-op both one thread per core), here `threads` each.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from recurrent_mnist.environment import limit_threads, set_thread_pools

    if impl == "keras-stock":
        set_thread_pools(intra_op=threads, inter_op=threads)
    else:
        limit_threads(threads)
    return tensorflow_threads()


def tensorflow_threads() -> dict:
    import tensorflow as tf

    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def import_torch(threads: int):
    """Imports torch with `threads` intra-op threads and one inter-op thread."""
    try:
        import torch
    except ImportError:
        raise SystemExit(TORCH_MISSING) from None
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    return torch


def torch_info(torch) -> dict:
    return {
        "version": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "mkl": bool(torch.backends.mkl.is_available()),
        "parallel_info": torch.__config__.parallel_info().strip().splitlines(),
    }


def load_subset(args: argparse.Namespace):
    """The data set as `recurrent_mnist.datasets.load` returns it, cut to the first --n-train / --n-test images."""
    from recurrent_mnist import datasets

    data = datasets.load(args.dataset, args.data_dir) if args.data_dir else datasets.load(args.dataset)
    for flag, count, have in (
        ("--n-train", args.n_train, len(data.x_train)),
        ("--n-test", args.n_test, len(data.x_test)),
    ):
        if count is not None and count > have:
            raise ValueError(f"{flag} {count} exceeds the {have} images of {data.name}")
    n_train, n_test = args.n_train or len(data.x_train), args.n_test or len(data.x_test)
    return dataclasses.replace(
        data,
        x_train=data.x_train[:n_train],
        y_train=data.y_train[:n_train],
        x_test=data.x_test[:n_test],
        y_test=data.y_test[:n_test],
    )


def prepare_worker(args: argparse.Namespace) -> dict:
    """Checks the Keras cell names, loads the data once for the torch workers, and describes the environment."""
    threads = configure_tensorflow(args.threads)
    from recurrent_mnist.cells import canonical_cell_name
    from recurrent_mnist.environment import environment_info

    cell_errors = []
    for name in args.check_cells:
        try:
            canonical_cell_name(name)
        except ValueError as exc:
            cell_errors.append(f"{name}: {exc}")
    data = load_subset(args)
    if args.data_file is not None:
        np.savez(args.data_file, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    return {
        "kind": "prepare",
        "status": "ok",
        "cell_errors": cell_errors,
        "dataset": data.describe(),
        "data_digest": data_digest(data.x_train, data.y_train, data.x_test, data.y_test),
        "tensorflow_threads": threads,
        "environment": environment_info(),
    }


def peak_worker(args: argparse.Namespace) -> dict:
    """The best fp32 matmul rate of this machine at `--threads` threads, in GFLOP/s (torch)."""
    torch = import_torch(args.threads)
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
    floors = {}
    for floor in args.floors:
        cell, shape = floor.split(":")
        units, batch = shape_arg(shape)
        floors[floor] = products_floor(torch, cell, units, batch, args.threads)
    return {
        "kind": "peak",
        "status": "ok",
        "peak_gflops": max(by_size.values()),
        "floors": floors,
        "gflops_by_size": by_size,
        "method": "torch.matmul fp32 n x n x n, best of " + ", ".join(f"{r} at n={n}" for n, r in PEAK_SIZES),
        "torch": torch_info(torch),
    }


def run_record(args: argparse.Namespace, impl: str) -> dict:
    return {
        "kind": "train",
        "impl": impl,
        "cell": args.cell,
        "units": args.units,
        "batch_size": args.batch,
        "epochs_requested": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
    }


def train_config(args: argparse.Namespace, cell: str, **options):
    """The training configuration of one run of this script: the same for every framework but the cell."""
    from recurrent_mnist.training.config import TrainConfig  # no Keras: the PyTorch worker uses it too

    return TrainConfig(
        cell=cell,
        units=args.units,
        batch_size=args.batch,
        epochs=args.epochs,
        learning_rate=LEARNING_RATE,
        validation_split=0.0,
        seed=args.seed,
        threads=args.threads,
        **options,
    )


def keras_worker(args: argparse.Namespace, impl: str) -> dict:
    """Trains through `recurrent_mnist.training.train_variant`: the figure the bench reports."""
    configure_tensorflow(args.threads, impl)
    import keras

    from recurrent_mnist.training import train_variant

    data = load_subset(args)
    config = train_config(args, KERAS_CELL_NAMES[impl][args.cell], **KERAS_OPTIONS.get(impl, {}))
    result = train_variant(data, config, measure=True, keep_model=True)
    row = result.row
    epoch_times = [float(entry["epoch_time_s"]) for entry in result.history]
    layer = result.model.recurrent_layers[0] if result.model is not None else None
    return {
        **run_record(args, impl),
        "status": row.get("status", "ok"),
        "error": row.get("error") or "",
        "framework": f"keras {keras.__version__} ({keras.backend.backend()})",
        "layer": f"{type(layer).__module__}.{type(layer).__name__}" if layer is not None else None,
        "train_config": config.to_dict(),
        "params": row.get("params"),
        "train_samples": row.get("train_samples", len(data.x_train)),
        "test_samples": len(data.x_test),
        "data_digest": data_digest(data.x_train, data.y_train, data.x_test, data.y_test),
        "epoch_times": epoch_times,
        "epoch_time_s": row.get("epoch_time_s"),
        "first_epoch_s": row.get("first_epoch_s"),
        "train_samples_per_s": row.get("train_samples_per_s"),
        "test_accuracy": row.get("test_accuracy"),
        "final_train_loss": result.history[-1].get("loss") if result.history else None,
        "infer_samples_per_s": row.get("infer_samples_per_s"),
        "infer_xla": _predicts_with_xla(result.model),
        "latency_ms_p50": row.get("latency_ms_p50"),
        "latency_ms_p95": row.get("latency_ms_p95"),
        "peak_rss_mb": row.get("process_peak_rss_mb"),  # the process peak, as for PyTorch
        "thread_settings": tensorflow_threads(),
    }


def _predicts_with_xla(model) -> bool | None:
    """Whether `model.predict`, the inference figure, ran under XLA (the model's own choice, or its one-thread rule)."""
    if model is None:
        return None
    from recurrent_mnist.fast_rnn.layers import predicts_faster_with_xla

    return bool(model.jit_compile or predicts_faster_with_xla(getattr(model, "recurrent_layers", [])))


def torch_worker(args: argparse.Namespace) -> dict:
    """The PyTorch peer that `bench --frameworks torch` trains (`recurrent_mnist.torch_peer`): same shape,
    data, batch size, initial weight scheme, optimizer, loss and measurements."""
    if args.data_file is None:
        raise ValueError("the torch worker needs --data-file (an .npz the prepare worker wrote)")
    torch = import_torch(args.threads)
    from recurrent_mnist.datasets import Dataset
    from recurrent_mnist.torch_peer.train import train_peer

    with np.load(args.data_file) as arrays:
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    data = Dataset(
        name=args.dataset,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        source=str(args.data_file),
        files={},
        sha256="",
        class_names=tuple(str(label) for label in range(num_classes)),
    )
    config = train_config(args, args.cell)
    row, history = train_peer(data, config, measure=True)
    return {
        **run_record(args, "torch"),
        "status": row["status"],
        "error": row["error"],
        "framework": row["framework"],
        "layer": f"torch.nn.{ {'lstm': 'LSTM', 'gru': 'GRU', 'simple_rnn': 'RNN'}[args.cell] }",
        "train_config": config.to_dict(),
        "params": row["params"],
        "train_samples": row["train_samples"],
        "test_samples": len(x_test),
        "data_digest": data_digest(x_train, y_train, x_test, y_test),
        "epoch_times": [float(entry["epoch_time_s"]) for entry in history],
        "epoch_time_s": row["epoch_time_s"],
        "first_epoch_s": row["first_epoch_s"],
        "train_samples_per_s": row["train_samples_per_s"],
        "test_accuracy": row["test_accuracy"],
        "final_train_loss": history[-1].get("loss") if history else None,
        "infer_samples_per_s": row["infer_samples_per_s"],
        "latency_ms_p50": row["latency_ms_p50"],
        "latency_ms_p95": row["latency_ms_p95"],
        "peak_rss_mb": row["process_peak_rss_mb"],
        "thread_settings": {
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
        },
    }


def worker_main(args: argparse.Namespace) -> int:
    """Runs one worker; its JSON record is the last line on stdout, everything else goes to stderr.

    A PyTorch worker never loads TensorFlow: `recurrent_mnist` then defers Keras
    (its light modules import none), and Keras, if anything imported it, would
    run on torch.
    """
    if args.worker in TORCH_WORKERS:
        os.environ["RECURRENT_MNIST_DEFER_KERAS"] = "1"
        os.environ["KERAS_BACKEND"] = "torch"
    from recurrent_mnist.runs.atomic import json_value
    from recurrent_mnist.runs.process import die_with_parent

    die_with_parent()  # no worker outlives the orchestrator
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints (TensorFlow, Keras) land on stderr, not in the record
    code = 0
    try:
        if args.worker == "prepare":
            record = prepare_worker(args)
        elif args.worker == "peak":
            record = peak_worker(args)
        elif args.worker == "torch":
            record = torch_worker(args)
        else:
            record = keras_worker(args, args.worker)
    except Exception as exc:  # noqa: BLE001 - any failure becomes this run's failed record
        import traceback

        traceback.print_exc(file=sys.stderr)
        record = {"kind": args.worker, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    if args.worker in TORCH_WORKERS:
        record["tensorflow_loaded"] = "tensorflow" in sys.modules  # False: torch was measured alone
    out.write(json.dumps(json_value(record)) + "\n")
    out.flush()
    return code


# --------------------------------------------------------------------------- orchestrator


def worker_command(args: argparse.Namespace, worker: str, **extra: Any) -> list[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        worker,
        "--threads",
        str(args.threads),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--dataset",
        args.dataset,
    ]
    for flag, value in (("--data-dir", args.data_dir), ("--n-train", args.n_train), ("--n-test", args.n_test)):
        if value is not None:
            command += [flag, str(value)]
    for key, value in extra.items():
        flag = "--" + key.replace("_", "-")
        command += [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    return command


def _cpu_seconds() -> tuple[float | None, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and its finished children)."""
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        user, nice, system, _idle, _iowait, irq, softirq = fields
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"), mine
    except (OSError, ValueError):
        return None, mine


def run_worker(command: list[str], timeout: float | None) -> dict:
    """Runs one worker process; a crash, a timeout or unreadable output becomes a failed record.

    The record also says how much CPU time other processes took while it ran
    (`foreign_cpu_s`, and `foreign_cpu_share` of all CPUs): a disturbed run shows.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    busy_before, mine_before = _cpu_seconds()
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return {"status": "failed", "error": f"timed out after {timeout:g} s", "stderr_tail": stderr[-STDERR_TAIL:]}
    wall = time.perf_counter() - started
    busy_after, mine_after = _cpu_seconds()
    foreign = None
    if busy_before is not None and busy_after is not None:
        foreign = max(0.0, (busy_after - busy_before) - (mine_after - mine_before))
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        record = json.loads(lines[-1])
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (IndexError, ValueError):
        record = {"status": "failed", "error": f"the worker exited with {proc.returncode} and no result"}
    record["worker_wall_s"] = wall
    record["worker_cpu_s"] = mine_after - mine_before
    record["foreign_cpu_s"] = foreign
    record["foreign_cpu_share"] = None if foreign is None else foreign / (wall * (os.cpu_count() or 1))
    if record.get("status") != "ok" or proc.returncode != 0:
        record["status"] = "failed"
        record.setdefault("error", f"the worker exited with {proc.returncode}")
        record["stderr_tail"] = proc.stderr[-STDERR_TAIL:]
    return record


@functools.cache
def quiet_import(name: str):
    """A module of `recurrent_mnist`, imported quietly: the package imports TensorFlow, whose start-up
    notices ignore TF_CPP_MIN_LOG_LEVEL in the orchestrator's terminal (they are shown if the import fails)."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            module = importlib.import_module(name)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return module


class Results:
    """The raw runs of this invocation and the files made from them."""

    def __init__(self, args: argparse.Namespace, folder: Path, run_id: str):
        self.args, self.folder, self.run_id = args, folder, run_id
        self.jsonl = folder / f"{args.name}.jsonl"
        self.records: list[dict] = []
        self.peak_gflops: float | None = None
        self.floors: dict[str, float] = {}  # "cell:UNITSxBATCH" -> the epoch's products floor, seconds
        self.dataset: dict = {}
        self.header: list[str] = []

    def append(self, record: dict) -> None:
        """Appends one raw record to the JSONL file at once, so an interrupted run keeps what it measured."""
        record = quiet_import("recurrent_mnist.runs.atomic").json_value({"run_id": self.run_id, **record})
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if record.get("kind") == "train":
            self.records.append(record)

    def summary(self):
        """One row per (cell, shape, impl): medians over the rounds, peak fraction and ratios."""
        import pandas as pd

        rows = []
        for cell in self.args.cells:
            for units, batch in self.args.shapes:
                medians: dict[str, float] = {}
                group_rows = []
                for impl in self.args.impls:
                    runs = [
                        r
                        for r in self.records
                        if (r.get("cell"), r.get("units"), r.get("batch_size"), r.get("impl"))
                        == (cell, units, batch, impl)
                    ]
                    if not runs:
                        continue
                    group_rows.append(self._row(cell, units, batch, impl, runs))
                    if group_rows[-1]["epoch_time_s"] is not None:
                        medians[impl] = group_rows[-1]["epoch_time_s"]
                keras_le_torch = self._paired_rounds(cell, units, batch)
                floor = self.floors.get(f"{cell}:{units}x{batch}")
                for row in group_rows:
                    row["products_floor_s"] = floor
                    row["floor_over_torch"] = _ratio(floor, medians.get("torch"))
                    row["vs_torch"] = _ratio(medians.get(row["impl"]), medians.get("torch"))
                    row["keras_over_torch"] = _ratio(medians.get("keras"), medians.get("torch"))
                    row["keras_over_keras_stock"] = _ratio(medians.get("keras"), medians.get("keras-stock"))
                    row["keras_le_torch_rounds"] = keras_le_torch
                rows += group_rows
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def _row(self, cell: str, units: int, batch: int, impl: str, runs: list[dict]) -> dict:
        ok = [r for r in runs if r.get("status") == "ok" and r.get("epoch_time_s")]

        def median(key: str) -> float | None:
            values = [r[key] for r in ok if r.get(key) is not None]
            return float(statistics.median(values)) if values else None

        steady = [r["epoch_time_s"] for r in ok]
        epoch_time = float(statistics.median(steady)) if steady else None
        n_train = ok[0]["train_samples"] if ok else self.args.n_train or self.dataset.get("train_size")
        flops = train_flops_per_epoch(cell, units, batch, n_train) if n_train else None
        peak_fraction = (
            flops / epoch_time / (self.peak_gflops * 1e9) if flops and epoch_time and self.peak_gflops else None
        )
        failures = [r for r in runs if r.get("status") != "ok"]
        loads = [r["foreign_cpu_share"] for r in runs if r.get("foreign_cpu_share") is not None]
        return {
            "cell": cell,
            "units": units,
            "batch_size": batch,
            "impl": impl,
            "layer": ok[0].get("layer") if ok else (runs[0].get("layer")),
            "runs": len(ok),
            "failed": len(failures),
            "epoch_time_s": epoch_time,
            "epoch_time_min_s": min(steady) if steady else None,
            "first_epoch_s": median("first_epoch_s"),
            "train_samples_per_s": n_train / epoch_time if n_train and epoch_time else None,
            "test_accuracy": median("test_accuracy"),
            "infer_samples_per_s": median("infer_samples_per_s"),
            "latency_ms_p50": median("latency_ms_p50"),
            "latency_ms_p95": median("latency_ms_p95"),
            "params": ok[0].get("params") if ok else None,
            "flops_per_epoch": flops,
            "peak_fraction": peak_fraction,
            "train_samples": n_train,
            "threads": self.args.threads,
            "other_load_max": max(loads) if loads else None,
            "error": " ".join(str(failures[0].get("error") or "failed").split())[:300] if failures else "",
        }

    def _paired_rounds(self, cell: str, units: int, batch: int) -> str | None:
        """In how many rounds keras's steady epoch was at most torch's (both ok), as `k/n`."""
        by_round: dict[int, dict[str, float]] = {}
        for r in self.records:
            if (r.get("cell"), r.get("units"), r.get("batch_size")) == (cell, units, batch) and r.get("status") == "ok":
                by_round.setdefault(r["round"], {})[r["impl"]] = r["epoch_time_s"]
        pairs = [times for times in by_round.values() if "keras" in times and "torch" in times]
        if not pairs:
            return None
        return f"{sum(t['keras'] <= t['torch'] for t in pairs)}/{len(pairs)}"

    def markdown(self, summary) -> str:
        markdown_table = quiet_import("recurrent_mnist.reporting").markdown_table

        headers = [
            "cell",
            "units",
            "batch",
            "impl",
            "epoch s (median)",
            "min",
            "first epoch s",
            "train samples/s",
            "test acc.",
            "infer samples/s",
            "latency p50 ms",
            "p95 ms",
            "peak %",
            "vs torch",
            "other load %",
            "runs",
        ]
        rows = []
        for r in summary.to_dict("records"):
            runs = str(r["runs"]) + (f" ({r['failed']} failed)" if r["failed"] else "")
            rows.append(
                [
                    r["cell"],
                    str(r["units"]),
                    str(r["batch_size"]),
                    r["impl"],
                    _fmt(r["epoch_time_s"], 3),
                    _fmt(r["epoch_time_min_s"], 3),
                    _fmt(r["first_epoch_s"], 2),
                    _fmt(r["train_samples_per_s"], 0),
                    _fmt(r["test_accuracy"], 4),
                    _fmt(r["infer_samples_per_s"], 0),
                    _fmt(r["latency_ms_p50"], 2),
                    _fmt(r["latency_ms_p95"], 2),
                    _fmt(None if r["peak_fraction"] is None else 100 * r["peak_fraction"], 1),
                    _fmt(r["vs_torch"], 2),
                    _fmt(None if _none(r["other_load_max"]) is None else 100 * r["other_load_max"], 0),
                    runs,
                ]
            )
        text = "\n".join(self.header) + "\n"
        loads = [v for v in summary["other_load_max"] if _none(v) is not None]
        if loads and max(loads) > OTHER_LOAD_WARNING:
            text += (
                f"- **warning**: other processes used up to {100 * max(loads):.0f} % of the CPUs during some runs "
                "(column other load %); their times are disturbed. Rerun on an idle machine.\n"
            )
        text += "\n"
        text += markdown_table(headers, rows, ["l", "r", "r", "l"] + ["r"] * (len(headers) - 4))
        ratio_rows = []
        for (cell, units, batch), group in summary.groupby(["cell", "units", "batch_size"], sort=False):
            first = group.iloc[0]
            keras_over_torch = _none(first["keras_over_torch"])
            verdict = "–" if keras_over_torch is None else ("yes" if keras_over_torch <= 1.0 else "no")
            goal = "–" if keras_over_torch is None else ("met" if keras_over_torch <= TRAIN_GOAL else "**missed**")
            ratio_rows.append(
                [
                    cell,
                    str(units),
                    str(batch),
                    _fmt(keras_over_torch, 3),
                    _fmt(_none(first["keras_over_keras_stock"]), 3),
                    verdict,
                    _none(first["keras_le_torch_rounds"]) or "–",
                    goal,
                    _fmt(_none(first["products_floor_s"]), 2),
                    _fmt(_none(first["floor_over_torch"]), 3),
                ]
            )
        text += "\n## Ratios of median steady-state epoch times\n\n"
        text += markdown_table(
            [
                "cell",
                "units",
                "batch",
                "keras / torch",
                "keras / keras-stock",
                "keras ≤ torch",
                "rounds keras ≤ torch",
                f"keras / torch ≤ {TRAIN_GOAL}",
                "products floor s",
                "floor / torch",
            ],
            ratio_rows,
            ["l", "r", "r", "r", "r", "l", "r", "l", "r", "r"],
        )
        failed = summary[summary["failed"] > 0]
        if len(failed):
            text += "\n## Failed runs\n\n" + markdown_table(
                ["cell", "units", "batch", "impl", "failed", "first error"],
                [
                    [r["cell"], str(r["units"]), str(r["batch_size"]), r["impl"], str(r["failed"]), r["error"]]
                    for r in failed.to_dict("records")
                ],
                ["l", "r", "r", "l", "r", "l"],
            )
            text += f"\nThe raw records, with each failed worker's stderr, are in {self.jsonl.name}.\n"
        text += (
            "\nEpoch s: median over the rounds of each run's steady-state epoch time (the median of its epochs "
            "after the first); min: the fastest run's. First epoch: tracing and compilation included. "
            "Peak %: training matmul FLOPs per epoch / epoch time / the fp32 matmul peak. "
            "Vs torch: this row's epoch time / torch's. Other load: the largest share of all CPUs "
            "that other processes used during one of the row's runs. Rounds keras ≤ torch: rounds in which keras's run "
            "was at most torch's run of the same round. "
            f"Keras / torch ≤ {TRAIN_GOAL}: the training goal of the second speed round (issue 16). "
            "Products floor: the epoch's matrix products alone, in the forms and batch chains of the fast layers "
            "at these threads, timed with torch on one thread per chain; a lower bound for the fast layers' epoch, "
            "without their element-wise work, optimizer and input. "
            f"Floor / torch: that bound as a share of torch's epoch time; the goal leaves {TRAIN_GOAL} minus it "
            "for everything else.\n"
        )
        return text

    def write(self) -> str:
        summary = self.summary()
        text = self.markdown(summary)
        quiet_import("recurrent_mnist.reporting").write_csv(summary, self.folder / f"{self.args.name}.csv")
        quiet_import("recurrent_mnist.runs.atomic").atomic_write_text(self.folder / f"{self.args.name}.md", text)
        return text


SUMMARY_COLUMNS = [
    "cell",
    "units",
    "batch_size",
    "impl",
    "layer",
    "runs",
    "failed",
    "epoch_time_s",
    "epoch_time_min_s",
    "first_epoch_s",
    "train_samples_per_s",
    "test_accuracy",
    "infer_samples_per_s",
    "latency_ms_p50",
    "latency_ms_p95",
    "params",
    "flops_per_epoch",
    "peak_fraction",
    "vs_torch",
    "keras_over_torch",
    "keras_over_keras_stock",
    "keras_le_torch_rounds",
    "products_floor_s",
    "floor_over_torch",
    "train_samples",
    "threads",
    "other_load_max",
    "error",
]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _none(value: Any) -> Any:
    """pandas' missing values (NaN, None) as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _fmt(value: Any, digits: int) -> str:
    value = _none(value)
    return "–" if value is None else f"{value:,.{digits}f}"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fail(message: str, record: dict | None = None, code: int = 1) -> int:
    progress(f"error: {message}")
    if record and record.get("stderr_tail"):
        progress(record["stderr_tail"])
    return code


def rotated(items: Iterable[str], by: int) -> list[str]:
    items = list(items)
    by %= len(items)
    return items[by:] + items[:by]


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it here (the orchestrator measures nothing)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def orchestrate(args: argparse.Namespace) -> int:
    if not torch_installed():
        return fail(TORCH_MISSING, code=2)
    run_id = time.strftime("%Y%m%dT%H%M%S")
    command = ["python", *sys.argv]
    folder = args.results_dir
    results = Results(args, folder, run_id)
    check_cells = sorted(
        {KERAS_CELL_NAMES[impl][cell] for impl in args.impls if impl in KERAS_IMPLS for cell in args.cells}
    )

    with tempfile.TemporaryDirectory(prefix="vs_pytorch-") as tmp:
        data_file = Path(tmp) / "data.npz"
        progress(f"preparing: {args.dataset}, checking cells {', '.join(check_cells) or '(none)'}")
        prepared = run_worker(
            worker_command(args, "prepare", data_file=data_file, check_cells=check_cells), args.timeout
        )
        if prepared.get("status") != "ok":
            return fail(f"preparing the data failed: {prepared.get('error')}", prepared)
        if prepared["cell_errors"]:
            return fail(
                "the Keras cells this comparison needs are not registered in recurrent_mnist ("
                + "; ".join(prepared["cell_errors"])
                + "); keras-stock needs keras_lstm, keras_gru and keras_simple_rnn: update recurrent_mnist "
                "or leave keras-stock out of --impls",
                code=2,
            )
        results.dataset = prepared["dataset"]
        digest = prepared["data_digest"]

        progress(f"measuring the fp32 matmul peak at {args.threads} threads")
        floors = [f"{cell}:{units}x{batch}" for cell in args.cells for units, batch in args.shapes]
        peak = run_worker(worker_command(args, "peak", floors=floors), args.timeout)
        results.append({"kind": "peak", **peak})
        if peak.get("status") == "ok":
            results.peak_gflops = peak["peak_gflops"]
            results.floors = {
                # images / batch steps: the last, partial batch counted by its share, so the floor stays a bound
                key: results.dataset["train_size"] / shape_arg(key.split(":")[1])[1] * value["step_s"]
                for key, value in peak["floors"].items()
            }
            progress(
                f"peak: {results.peak_gflops:.1f} GFLOP/s; products floor per epoch: "
                + ", ".join(f"{key} {value:.2f} s" for key, value in results.floors.items())
            )
        else:
            progress(f"the peak measurement failed ({peak.get('error')}); peak_fraction stays empty")

        dataset = results.dataset
        settings = {
            "name": args.name,
            "run_id": run_id,
            "cells": args.cells,
            "shapes": [f"{u}x{b}" for u, b in args.shapes],
            "impls": args.impls,
            "keras_cells": {
                impl: {cell: KERAS_CELL_NAMES[impl][cell] for cell in args.cells}
                for impl in args.impls
                if impl in KERAS_IMPLS
            },
            "epochs": args.epochs,
            "rounds": args.rounds,
            "threads": args.threads,
            "tensorflow_threads": prepared["tensorflow_threads"],
            "torch_threads": {"num_threads": args.threads, "num_interop_threads": 1},
            "seed": args.seed,
            "n_train": dataset["train_size"],
            "n_test": dataset["test_size"],
            "data_digest": digest,
            "learning_rate": LEARNING_RATE,
            "peak_gflops": results.peak_gflops,
            "peak": {k: peak.get(k) for k in ("gflops_by_size", "method", "status", "error")},
        }
        environment = {
            **prepared["environment"],
            "command": command,
            "dataset": dataset,
            "torch": peak.get("torch"),
            "benchmark": settings,
        }
        atomic_write_json = quiet_import("recurrent_mnist.runs.atomic").atomic_write_json
        atomic_write_json(folder / f"{args.name}.environment.json", environment)
        subset = f" (first {args.n_train or 'all'} / {args.n_test or 'all'})" if args.n_train or args.n_test else ""
        peak_text = "failed" if results.peak_gflops is None else f"{results.peak_gflops:,.1f} GFLOP/s"
        results.header = [
            "# recurrent-mnist vs PyTorch: steady-state epoch time, side by side",
            "",
            f"- dataset: {dataset['name']}, {dataset['train_size']:,} train / {dataset['test_size']:,} test images"
            f"{subset}; files sha256 {dataset['sha256'][:16]}…, arrays sha256 {digest[:16]}…",
            f"- threads: {args.threads} in both frameworks (keras: as bench sets it, inter-op {args.threads}, "
            f"intra-op 1, {args.threads} parallel batch chains; keras-stock: intra-op and inter-op {args.threads}; "
            f"torch: set_num_threads({args.threads}), set_num_interop_threads(1))",
            f"- rounds: {args.rounds} (interleaved; implementation order rotated each round), epochs per run: "
            f"{args.epochs} (epoch 1 reported apart, steady state = median of epochs 2..{args.epochs})",
            f"- fp32 matmul peak: {peak_text} (torch matmul, same threads)",
            f"- run {run_id}, commit {environment.get('git_commit')}, CPU {environment.get('cpu', {}).get('model')}",
            f"- command: `{shlex.join(command)}`",
        ]

        failed, text = 0, ""
        for round_index in range(args.rounds):
            for cell in args.cells:
                for units, batch in args.shapes:
                    for impl in rotated(args.impls, round_index):
                        extra: dict[str, Any] = {"cell": cell, "units": units, "batch": batch}
                        if impl == "torch":
                            extra["data_file"] = data_file
                        record = run_worker(worker_command(args, impl, **extra), args.timeout)
                        record = {
                            "kind": "train",
                            "impl": impl,
                            "cell": cell,
                            "units": units,
                            "batch_size": batch,
                            **record,
                            "round": round_index + 1,
                        }
                        if record.get("status") == "ok" and record.get("data_digest") != digest:
                            record.update(status="failed", error="the run saw other data than the prepared set")
                        results.append(record)
                        label = f"round {round_index + 1}/{args.rounds} {cell:<10} {units}x{batch:<5} {impl:<11}"
                        if record["status"] == "ok":
                            progress(
                                f"{label} steady {record['epoch_time_s']:.3f} s  first {record['first_epoch_s']:.2f} s"
                                f"  acc {record['test_accuracy']:.4f}  epochs "
                                + " ".join(f"{t:.3f}" for t in record["epoch_times"])
                            )
                        else:
                            failed += 1
                            progress(f"{label} FAILED: {record.get('error')}")
                            if record.get("stderr_tail"):
                                progress("  " + record["stderr_tail"][-800:].replace("\n", "\n  "))
                        text = results.write()

    environment["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    environment["benchmark"]["failed_runs"] = failed
    atomic_write_json(folder / f"{args.name}.environment.json", environment)
    print(text, end="")
    progress(f"wrote {results.jsonl}, {folder / (args.name + '.csv')}, {folder / (args.name + '.md')}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
