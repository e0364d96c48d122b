"""Single-image latency: the calls a user would make, Keras against PyTorch, measured side by side.

For each cell and size, one image (uint8, 28 x 28) at a time, logits back as
numpy, p50 and p95 of `--calls` calls after a warm-up, through:

- `predict_on_batch`: `RowSequenceClassifier.predict_on_batch`, Keras's own call
  for one batch (what `bench`'s `latency_ms_*` columns measure);
- `serve`: `RowSequenceClassifier.serve`, the model called in a `tf.function`
  compiled with XLA, none of Keras's per-call machinery;
- `serve-fast`: `serve` with its small-batch refusal lifted, so the project's
  fast recurrent layer runs under XLA at batch 1 (to show why `serve` hands
  small batches to the stock loop);
- `serve-stock`: `serve` on the plain Keras layer of the same cell (the registered
  `keras_lstm`, `keras_gru`, `keras_simple_rnn`): the same weights and function,
  without the fast path, as XLA compiles it;
- `tflite`: the model exported with `recurrent_mnist.export.export_tflite` and
  called through `TFLiteClassifier` (TensorFlow Lite's interpreter, `--threads`
  threads): the exported artifact;
- `floor`: no model: one image through a compiled XLA function that only sums
  its rows into 10 numbers, called as `serve` calls the model (a concrete
  function, numpy back): what any call into compiled TensorFlow costs;
- `torch`: the PyTorch peer (`recurrent_mnist.torch_peer.PeerClassifier`) called
  eagerly under `torch.inference_mode()`, as `bench --frameworks torch` measures it.

Each implementation runs in a process of its own with `--threads` threads
(TensorFlow as `bench --threads` sets it; PyTorch `set_num_threads`), in
interleaved rounds with the order rotated each round; a round's figure is the
p50 of its calls, the table's the median over rounds. Untrained weights: the
arithmetic of one call does not depend on them. Writes `<name>.json` and
`<name>.md` under `--results-dir` (default `results/speed`).

    python benchmarks/latency.py --threads 1 --rounds 3 --name latency_1thread
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import script_support

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ("predict_on_batch", "serve", "serve-fast", "serve-stock", "tflite", "floor", "torch")
DEFAULT_IMPLS = ("predict_on_batch", "serve", "torch")
CELLS = ("lstm", "gru", "simple_rnn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--units", nargs="+", type=int, default=[100, 128])
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(DEFAULT_IMPLS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results" / "speed")
    parser.add_argument("--name", default="latency")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _percentiles(call, images, calls: int) -> tuple[float, float]:
    for i in range(10):
        call(images[i : i + 1])
    times = []
    for i in range(calls):
        image = images[i % len(images) : i % len(images) + 1]
        started = time.perf_counter()
        call(image)
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)]


def _floor_call():
    """`floor`'s call: one image into a compiled function that holds no model, and numpy back."""
    import tensorflow as tf

    rows_summed = tf.function(
        lambda x: tf.reduce_sum(tf.cast(x, tf.float32), axis=1)[:, :10], jit_compile=True, autograph=False
    ).get_concrete_function(tf.TensorSpec((1, 28, 28), tf.uint8))
    return lambda image: rows_summed(tf.convert_to_tensor(image)).numpy()


def _tflite_call(model, images, threads: int):
    """`tflite`'s call: `model` exported to a TensorFlow Lite file and read back by its interpreter."""
    import atexit
    import shutil
    import tempfile

    from recurrent_mnist.export import TFLiteClassifier, export_tflite

    model(images[:1])
    # The folder lives as long as the worker, which reads the file through the interpreter.
    folder = Path(tempfile.mkdtemp(prefix="latency-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return TFLiteClassifier(export_tflite(model, folder / "model.tflite"), threads=threads)


def _serve_fast(serve):
    """`serve` with its small-batch rule lifted: the fast layers take served batches of every size."""
    from recurrent_mnist.fast_rnn.fallback import serve_stock_up_to

    def call(images):
        with serve_stock_up_to(0):
            return serve(images)

    return call


def worker(args: argparse.Namespace) -> list[dict]:
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    found = []
    if args.worker == "torch":
        import torch

        from recurrent_mnist.torch_peer.model import PeerClassifier
        from recurrent_mnist.torch_peer.train import set_threads

        set_threads(args.threads)
        for cell in args.cells:
            for units in args.units:
                model = PeerClassifier(cell, features=28, units=units).eval()

                def call(image, model=model):
                    with torch.inference_mode():
                        return model(torch.from_numpy(image)).numpy()

                found.append(
                    {
                        "cell": cell,
                        "units": units,
                        **dict(zip(("p50", "p95"), _percentiles(call, images, args.calls), strict=True)),
                    }
                )
        return found
    from recurrent_mnist.environment import limit_threads

    limit_threads(args.threads)
    from recurrent_mnist.model import RowSequenceClassifier

    for cell in args.cells:
        for units in args.units:
            if args.worker == "floor":
                call = _floor_call()
            elif args.worker == "tflite":
                call = _tflite_call(RowSequenceClassifier(cell, units=units), images, args.threads)
            else:
                name = f"keras_{cell}" if args.worker == "serve-stock" else cell
                model = RowSequenceClassifier(name, units=units, parallel_chains=args.threads)
                model(images[:1])
                call = model.predict_on_batch if args.worker == "predict_on_batch" else model.serve
                if args.worker == "serve-fast":
                    call = _serve_fast(call)
            found.append(
                {
                    "cell": cell,
                    "units": units,
                    **dict(zip(("p50", "p95"), _percentiles(call, images, args.calls), strict=True)),
                }
            )
    return found


def markdown(rows: list[dict], header: dict) -> str:
    # Each way of serving one image, against PyTorch's eager call (where both were measured).
    ratios = [impl for impl in ("serve", "tflite") if impl in header["impls"] and "torch" in header["impls"]]
    lines = [
        f"# Single-image latency ({header['name']})",
        "",
        f"- command: `{header['command']}`",
        f"- code: {header['code']}; CPU: {header['cpu']}; threads: {header['threads']} per implementation"
        + (f", on {header['cpus_allowed']} allowed cores" if "cpus_allowed" in header else ""),
        f"- p50 of {header['calls']} calls per round, median over {header['rounds']} interleaved rounds "
        "(p95 likewise), in milliseconds; one uint8 image in, logits out as numpy",
        "",
        "| cell | units | "
        + " | ".join(f"{impl} p50 (p95)" for impl in header["impls"])
        + "".join(f" | {impl} / torch" for impl in ratios)
        + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in [*header["impls"], *ratios]) + " |",
    ]
    for row in rows:
        cells = [f"{row[impl]['p50']:.3f} ({row[impl]['p95']:.3f})" if impl in row else "–" for impl in header["impls"]]
        cells += [f"{row[impl]['p50'] / row['torch']['p50']:.2f}" for impl in ratios]
        lines.append(f"| {row['cell']} | {row['units']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    runs: dict[str, list[list[dict]]] = {impl: [] for impl in args.impls}
    for round_index in range(args.rounds):
        order = args.impls[round_index % len(args.impls) :] + args.impls[: round_index % len(args.impls)]
        for impl in order:
            print(f"round {round_index + 1}/{args.rounds}: {impl} ...", flush=True)
            command = [__file__, "--worker", impl, "--threads", str(args.threads), "--calls", str(args.calls)]
            command += ["--cells", *args.cells, "--units", *map(str, args.units)]
            runs[impl].append(script_support.measure_in_child(command))
    rows = []
    for index, first in enumerate(runs[args.impls[0]][0]):
        row = {"cell": first["cell"], "units": first["units"]}
        for impl, rounds in runs.items():
            row[impl] = {q: statistics.median(r[index][q] for r in rounds) for q in ("p50", "p95")}
            row[impl]["rounds_p50"] = [r[index]["p50"] for r in rounds]
        rows.append(row)
    made_by, code = script_support.provenance("benchmarks/latency.py", argv if argv is not None else sys.argv[1:])
    header = {
        "name": args.name,
        **made_by,
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "threads": args.threads,
        "calls": args.calls,
        "rounds": args.rounds,
        "impls": list(args.impls),
    }
    table = markdown(rows, header)
    script_support.write(args.results_dir, args.name, {**header, "code_identity": code, "rows": rows}, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
