"""Where a training step's time goes: matrix products, element-wise work, data movement, and the gaps between ops.

For each cell and shape, this script trains the model as `recurrent-mnist bench`
does (`TrainConfig`, `RowSequenceClassifier`, `compile_model`, `--threads N`:
N inter-op threads of one intra-op thread, N batch chains), on random uint8
images (the arithmetic does not depend on the pixels), warms it up, times
`--steps` training steps, then traces the same steps with TensorFlow's profiler
and reads the trace (`*.xplane.pb`) itself:

- every TensorFlow op the executor ran on the host, by op type, put in one of
  the categories below, with its count and time per training step;
- `busy`: the op time summed over the executor's threads, against the threads'
  time available (threads x wall time of a step); the rest is the executor's
  dispatch between ops and the threads waiting for each other (idle);
- the matrix products' achieved GFLOP/s (their FLOPs, counted from the shape
  as `benchmarks/peer_speed/flops.py` counts them, over their measured time)
  against the peak of one thread measured here with a large product (one
  intra-op thread, as the training runs).

The profiler itself adds time to each op, so the per-category split is read
from the trace and the wall time per step from the untraced run; both are
printed. Outputs, under `--results-dir` (default `results/speed`):
`<name>.json` (every figure, the op table, the environment and command) and
`<name>.md`.

    python benchmarks/profile_step.py --cells lstm gru simple_rnn --shapes 100x50 128x256 --threads 2 \\
        --name profile_2threads
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import script_support  # noqa: E402
from peer_speed.cli import shape_arg  # noqa: E402
from peer_speed.flops import train_flops_per_step  # noqa: E402

CATEGORIES = {
    "matrix product": {"MatMul", "_MklMatMul", "_FusedMatMul", "_MklFusedMatMul", "BatchMatMulV2", "Einsum"},
    "data movement": {
        "ConcatV2", "Split", "SplitV", "Slice", "StridedSlice", "StridedSliceGrad", "Transpose", "Reshape",
        "Pack", "Unpack", "Identity", "Fill", "ZerosLike", "OnesLike", "Cast", "GatherV2", "Tile", "Shape",
        "ExpandDims", "Squeeze", "BroadcastTo", "_MklTranspose", "ConjugateTranspose",
    },
    "optimizer and variables": {
        "ResourceApplyAdam", "AssignVariableOp", "ReadVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
        "VarHandleOp", "ResourceGather",
    },
    "input pipeline": {"IteratorGetNext", "OptionalGetValue", "OptionalHasValue", "IteratorGetNextAsOptional"},
}  # fmt: skip
ELEMENTWISE = "element-wise and reductions"


def category(op_type: str) -> str:
    if "MatMul" in op_type:  # oneDNN's variants: _MklMatMul, _MklNativeFusedMatMul, ...
        return "matrix product"
    for name, types in CATEGORIES.items():
        if op_type in types:
            return name
    return ELEMENTWISE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "simple_rnn"])
    parser.add_argument("--shapes", nargs="+", type=shape_arg, default=[(100, 50), (128, 256)], metavar="UNITSxBATCH")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="training steps timed and traced (default: 200)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results" / "speed")
    parser.add_argument("--name", default="profile")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # CELL:UNITS:BATCH, one profile in this process
    return parser.parse_args(argv)


def _events(xspace):
    """(thread line id, start ps, duration ps, op name, op type) of every TF op on the host."""
    for plane in xspace.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TF ops are named `op_name:OpType`; the executor's own events (`ExecutorState::Process`,
                # `Run`, ...) and function calls are not ops.
                if ":" not in name or "::" in name or name.startswith("__inference"):
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if not op_type or not (op_type[0].isupper() or op_type.startswith("_")):
                    continue
                start = line.timestamp_ns * 1000 + event.offset_ps
                yield line.id, start, event.duration_ps, op_name, op_type


def read_trace(logdir: Path) -> list[tuple]:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    found = []
    for path in logdir.rglob("*.xplane.pb"):
        xspace = xplane_pb2.XSpace()
        xspace.ParseFromString(path.read_bytes())
        found += list(_events(xspace))
    return found


def matmul_peak(repeats: int = 5) -> float:
    """GFLOP/s of one thread on a 1024^3 float32 product, the best of `repeats`."""
    import tensorflow as tf

    a = tf.random.normal((1024, 1024))
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(4):
            out = f(a)
        out.numpy()
        best = min(best, (time.perf_counter() - started) / 4)
    return 2 * 1024**3 / best / 1e9


def profile_one(cell: str, units: int, batch: int, threads: int, steps: int) -> dict:
    from recurrent_mnist.environment import limit_threads

    limit_threads(threads)
    import numpy as np
    import tensorflow as tf

    from recurrent_mnist.model import RowSequenceClassifier
    from recurrent_mnist.training.config import TrainConfig
    from recurrent_mnist.training.pipeline import compile_model, input_pipeline

    config = TrainConfig(cell=cell, units=units, batch_size=batch, threads=threads, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(steps * batch, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=steps * batch).astype(np.int64)
    data = input_pipeline(x, y, batch)
    keras_model = RowSequenceClassifier(**config.model_kwargs())
    compile_model(keras_model, config.learning_rate, config.effective_steps_per_execution(), config.uses_xla())
    keras_model.fit(data, epochs=1, verbose=0)  # tracing and compilation
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        keras_model.fit(data, epochs=1, verbose=0)
        walls.append((time.perf_counter() - started) / steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        keras_model.fit(data, epochs=1, verbose=0)
        traced_wall = (time.perf_counter() - started) / steps
        tf.profiler.experimental.stop()
        ops = read_trace(Path(logdir))
    if not ops:
        raise SystemExit("error: the profiler's trace holds no TensorFlow op on the host; nothing to report")
    by_type: dict[str, list[float]] = {}
    for _, _, duration, _, op_type in ops:
        by_type.setdefault(op_type, []).append(duration / 1e6)  # microseconds
    op_time = sum(sum(times) for times in by_type.values()) / steps
    matmul_us = sum(sum(t) for k, t in by_type.items() if category(k) == "matrix product") / steps
    flops = train_flops_per_step(cell, units, batch)
    peak = matmul_peak()
    table = sorted(
        (
            {
                "op": op_type,
                "category": category(op_type),
                "calls_per_step": len(times) / steps,
                "us_per_step": sum(times) / steps,
                "us_per_call": statistics.fmean(times),
            }
            for op_type, times in by_type.items()
        ),
        key=lambda row: -row["us_per_step"],
    )
    categories = {}
    for row in table:
        entry = categories.setdefault(row["category"], {"calls_per_step": 0.0, "us_per_step": 0.0})
        entry["calls_per_step"] += row["calls_per_step"]
        entry["us_per_step"] += row["us_per_step"]
    traced_capacity = traced_wall * 1e6 * threads
    return {
        "cell": cell,
        "units": units,
        "batch": batch,
        "threads": threads,
        "steps": steps,
        "xla": config.uses_xla(),
        "wall_us_per_step": statistics.median(walls) * 1e6,
        "traced_wall_us_per_step": traced_wall * 1e6,
        "op_us_per_step": op_time,
        "ops_per_step": len(ops) / steps,
        "busy_fraction": op_time / traced_capacity,
        "gaps_us_per_step": traced_capacity - op_time,
        "categories": categories,
        "matmul_gflops": flops / (matmul_us * 1e3) if matmul_us else None,
        "one_thread_peak_gflops": peak,
        "step_gflops": flops / (statistics.median(walls) * 1e9),
        "ops": table,
    }


def markdown(results: list[dict], header: dict) -> str:
    lines = [
        f"# Where a training step's time goes ({header['name']})",
        "",
        f"- command: `{header['command']}`",
        f"- code: {header['code']}",
        f"- CPU: {header['cpu']}; threads: {results[0]['threads']} (inter-op, one intra-op thread each, "
        f"as many batch chains); random uint8 images, {results[0]['steps']} steps timed and traced",
        "- time per training step in microseconds; op time is summed over the executor's threads; "
        "`gaps` = threads x traced wall time - op time (dispatch between ops, and threads waiting)",
        "",
    ]
    names = [*CATEGORIES, ELEMENTWISE]
    lines.append(
        "| cell | units / batch | wall (untraced) | wall (traced) | ops per step | "
        + " | ".join(names)
        + " | gaps | busy | matmul GFLOP/s (one thread's peak) |"
    )
    lines.append("| --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: |")
    for r in results:
        parts = []
        for name in names:
            entry = r["categories"].get(name, {"us_per_step": 0.0})
            parts.append(f"{entry['us_per_step']:,.0f} ({entry['us_per_step'] / r['op_us_per_step']:.0%})")
        gflops = f"{r['matmul_gflops']:.1f}" if r["matmul_gflops"] else "–"
        lines.append(
            f"| {r['cell']} | {r['units']} / {r['batch']} | {r['wall_us_per_step']:,.0f} | "
            f"{r['traced_wall_us_per_step']:,.0f} | {r['ops_per_step']:,.0f} | " + " | ".join(parts) + " | "
            f"{r['gaps_us_per_step']:,.0f} | {r['busy_fraction']:.0%} | {gflops} ({r['one_thread_peak_gflops']:.0f}) |"
        )
    for r in results:
        lines += ["", f"## {r['cell']} {r['units']} / {r['batch']}: the ten op types that take longest", ""]
        lines.append("| op | category | calls per step | µs per step | µs per call |")
        lines.append("| --- | --- | ---: | ---: | ---: |")
        for row in r["ops"][:10]:
            lines.append(
                f"| {row['op']} | {row['category']} | {row['calls_per_step']:,.0f} | {row['us_per_step']:,.0f} | "
                f"{row['us_per_call']:,.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        cell, units, batch = args.worker.split(":")
        print(json.dumps(profile_one(cell, int(units), int(batch), args.threads, args.steps)))
        return 0

    results = []
    for cell in args.cells:
        for units, batch in args.shapes:
            print(f"profiling {cell} {units} / {batch} at {args.threads} thread(s) ...", flush=True)
            command = [__file__, "--worker", f"{cell}:{units}:{batch}"]
            command += ["--threads", str(args.threads), "--steps", str(args.steps)]
            results.append(script_support.measure_in_child(command))
    made_by, code = script_support.provenance("benchmarks/profile_step.py", sys.argv[1:])
    header = {"name": args.name, **made_by}
    record = {**header, "code_identity": code, "results": results}
    script_support.write(args.results_dir, args.name, record, markdown(results, header))
    print(markdown(results, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
