"""What runs inside one worker process: prepare the data, measure the peak and floors, or train one run.

A worker prints its record as one JSON line, last on stdout (`worker_main`).
PyTorch workers (`TORCH_WORKERS`) never load TensorFlow: they set
`RECURRENT_MNIST_DEFER_KERAS` before importing `recurrent_mnist`, whose light
modules then import no Keras. Nothing is imported from `recurrent_mnist` at
module level, so that the choice is made in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys

import numpy as np

from peer_speed.flops import PEAK_SIZES, matmul_peak, products_floor
from peer_speed.impls import (
    KERAS_CELL_NAMES,
    KERAS_OPTIONS,
    LEARNING_RATE,
    TORCH_LAYERS,
    TORCH_MISSING,
    TORCH_WORKERS,
)


def worker_main(args: argparse.Namespace) -> int:
    """Runs one worker; its JSON record is the last line on stdout, everything else goes to stderr."""
    if args.worker in TORCH_WORKERS:
        os.environ["RECURRENT_MNIST_DEFER_KERAS"] = "1"
        os.environ["KERAS_BACKEND"] = "torch"  # Keras, if anything imported it, would run on torch
    from recurrent_mnist.runs.atomic import json_value
    from recurrent_mnist.runs.process import die_with_parent

    die_with_parent()  # no worker outlives the orchestrator
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints (TensorFlow, Keras) land on stderr, not in the record
    code = 0
    try:
        record = run(args)
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


def run(args: argparse.Namespace) -> dict:
    """The record of the worker `args.worker` names."""
    if args.worker == "prepare":
        return prepare_worker(args)
    if args.worker == "peak":
        return peak_worker(args)
    if args.worker == "torch":
        return torch_worker(args)
    return keras_worker(args, args.worker)


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
    """The machine's fp32 matmul peak at `--threads` threads, and the products floor of each `--floors` entry."""
    torch = import_torch(args.threads)
    by_size = matmul_peak(torch)
    floors = {}
    for key in args.floors:
        cell, shape = key.split(":")
        units, batch = (int(part) for part in shape.split("x"))
        floors[key] = products_floor(torch, cell, units, batch, args.threads)
    return {
        "kind": "peak",
        "status": "ok",
        "peak_gflops": max(by_size.values()),
        "floors": floors,
        "gflops_by_size": by_size,
        "method": "torch.matmul fp32 n x n x n, best of " + ", ".join(f"{r} at n={n}" for n, r in PEAK_SIZES),
        "torch": torch_info(torch),
    }


def keras_worker(args: argparse.Namespace, impl: str) -> dict:
    """Trains through `recurrent_mnist.training.train_variant`: the figure the bench reports."""
    configure_tensorflow(args.threads, impl)
    import keras

    from recurrent_mnist.training import train_variant

    data = load_subset(args)
    config = train_config(args, KERAS_CELL_NAMES[impl][args.cell], **KERAS_OPTIONS.get(impl, {}))
    result = train_variant(data, config, measure=True, keep_model=True)
    layer = result.model.recurrent_layers[0] if result.model is not None else None
    return {
        **run_record(args, impl),
        **measured(result.row, result.history),
        "framework": f"keras {keras.__version__} ({keras.backend.backend()})",
        "layer": f"{type(layer).__module__}.{type(layer).__name__}" if layer is not None else None,
        "train_config": config.to_dict(),
        "train_samples": result.row.get("train_samples", len(data.x_train)),
        "test_samples": len(data.x_test),
        "data_digest": data_digest(data.x_train, data.y_train, data.x_test, data.y_test),
        "infer_xla": predicts_with_xla(result.model),
        "thread_settings": tensorflow_threads(),
    }


def torch_worker(args: argparse.Namespace) -> dict:
    """The PyTorch peer that `bench --frameworks torch` trains (`recurrent_mnist.torch_peer`): same shape,
    data, batch size, initial weight scheme, optimizer, loss and measurements."""
    if args.data_file is None:
        raise ValueError("the torch worker needs --data-file (an .npz the prepare worker wrote)")
    torch = import_torch(args.threads)
    from recurrent_mnist.torch_peer.train import train_peer

    data = load_prepared(args)
    config = train_config(args, args.cell)
    row, history = train_peer(data, config, measure=True)
    return {
        **run_record(args, "torch"),
        **measured(row, history),
        "framework": row["framework"],
        "layer": f"torch.nn.{TORCH_LAYERS[args.cell]}",
        "train_config": config.to_dict(),
        "train_samples": row["train_samples"],
        "test_samples": len(data.x_test),
        "data_digest": data_digest(data.x_train, data.y_train, data.x_test, data.y_test),
        "thread_settings": {
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
        },
    }


def run_record(args: argparse.Namespace, impl: str) -> dict:
    """What identifies a training run: the implementation, the cell and shape, and the shared settings."""
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


def measured(row: dict, history: list[dict]) -> dict:
    """The figures of one training run, from the row and history that `train_variant` and `train_peer` return."""
    return {
        "status": row.get("status", "ok"),
        "error": row.get("error") or "",
        "params": row.get("params"),
        "epoch_times": [float(entry["epoch_time_s"]) for entry in history],
        "epoch_time_s": row.get("epoch_time_s"),
        "first_epoch_s": row.get("first_epoch_s"),
        "train_samples_per_s": row.get("train_samples_per_s"),
        "test_accuracy": row.get("test_accuracy"),
        "final_train_loss": history[-1].get("loss") if history else None,
        "infer_samples_per_s": row.get("infer_samples_per_s"),
        "latency_ms_p50": row.get("latency_ms_p50"),
        "latency_ms_p95": row.get("latency_ms_p95"),
        "peak_rss_mb": row.get("process_peak_rss_mb"),  # the process peak, in both frameworks
    }


def train_config(args: argparse.Namespace, cell: str, **options):
    """The training configuration of one run: the same for every framework but the cell."""
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


def predicts_with_xla(model) -> bool | None:
    """Whether `model.predict`, the inference figure, ran under XLA (the model's own choice, or its one-thread rule)."""
    if model is None:
        return None
    from recurrent_mnist.fast_rnn.layers import predicts_faster_with_xla

    return bool(model.jit_compile or predicts_faster_with_xla(getattr(model, "recurrent_layers", [])))


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


def load_prepared(args: argparse.Namespace):
    """The arrays the prepare worker saved in `--data-file`, as a `Dataset` (the torch worker loads no data set)."""
    from recurrent_mnist.datasets import Dataset

    with np.load(args.data_file) as arrays:
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(
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


def data_digest(x_train, y_train, x_test, y_test) -> str:
    """SHA-256 of the arrays a run trained and tested on, so both sides can be shown to see the same data."""
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_test, y_test):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
