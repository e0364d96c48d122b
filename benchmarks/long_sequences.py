"""Long sequences: tracing, steady training steps and memory of the unrolled fast path against the stock loop.

For each cell, sequence length and implementation, one training process of its own
(`--threads` threads, as `bench` sets them) trains a `--units` layer with a dense
head on random `(batch, steps, 1)` sequences, one feature a step as the `pixels`
reading feeds them, and reports:

- `first step s`: the first `train_on_batch`, tracing and compiling included;
- `steady step s`: the median of the next `--steps` calls;
- `rss growth MB`: the process's peak resident memory after training, less before
  the model was built (what the graph and what it keeps for backpropagation add).

Implementations: `fast` is the project's fast layer with its length limit lifted
(`fast_rnn.fallback.unroll_up_to(None)`: every step unrolled into the graph);
`stock` is the plain Keras layer (`keras.layers.LSTM`, ...; for IndRNN the
project's `IndRNN` on Keras's RNN loop), whose loop is traced once. Untrained
weights on random data: the work of a step does not depend on them. Writes
`<name>.json` and `<name>.md` under `--results-dir`.

    python benchmarks/long_sequences.py --threads 2 --name long_sequences
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

CELLS = ("lstm", "gru", "simple_rnn", "indrnn")
IMPLS = ("fast", "stock")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    parser.add_argument("--lengths", nargs="+", type=int, default=[28, 112, 196, 392, 784])
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="steady steps timed after the first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="long_sequences")
    parser.add_argument("--results-dir", type=Path, default=Path("results/speed"))
    parser.add_argument("--worker", nargs=3, metavar=("CELL", "LENGTH", "IMPL"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args: argparse.Namespace) -> dict:
    """One measurement in this process: the first step, the steady steps and the memory they added."""
    cell, length, impl = args.worker[0], int(args.worker[1]), args.worker[2]
    from recurrent_mnist.environment import limit_threads

    limit_threads(args.threads)
    import keras
    import numpy as np

    from recurrent_mnist.cells import get_cell_factory
    from recurrent_mnist.fast_rnn.fallback import unroll_up_to
    from recurrent_mnist.training.measure import process_peak_rss_mb

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batches = [
        (rng.random((args.batch, length, 1), dtype="float32"), rng.integers(0, 10, args.batch))
        for _ in range(args.steps + 1)
    ]
    before_mb = process_peak_rss_mb()
    with unroll_up_to(None):
        name = cell if impl == "fast" else f"keras_{cell}"
        inputs = keras.Input((length, 1), batch_size=args.batch)
        model = keras.Model(inputs, keras.layers.Dense(10)(get_cell_factory(name)(args.units)(inputs)))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        times = []
        for x, y in batches:
            started = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - started)
    return {
        "cell": cell,
        "length": length,
        "impl": impl,
        "first_step_s": times[0],
        "steady_step_s": statistics.median(times[1:]),
        "rss_growth_mb": process_peak_rss_mb() - before_mb,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    rows = []
    for cell in args.cells:
        for length in args.lengths:
            for impl in args.impls:
                print(f"{cell} at {length} steps, {impl} ...", flush=True)
                command = [__file__, "--worker", cell, str(length), impl, "--units", str(args.units)]
                command += ["--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)]
                rows.append(script_support.measure_in_child(command))
    arguments = argv if argv is not None else sys.argv[1:]
    made_by, code = script_support.provenance("benchmarks/long_sequences.py", arguments)
    header = {
        "name": args.name,
        **made_by,
        **{key: getattr(args, key) for key in ("threads", "units", "batch", "steps")},
    }
    table = markdown(rows, header)
    script_support.write(args.results_dir, args.name, {**header, "code_identity": code, "rows": rows}, table)
    print(table)
    return 0


def markdown(rows: list[dict], header: dict) -> str:
    lines = [
        f"# Long sequences: the unrolled fast path against the stock loop ({header['name']})",
        "",
        *script_support.provenance_lines(header),
        f"- {header['threads']} threads, {header['units']} units, batch {header['batch']}, one feature a step, "
        "random data; first step: the first `train_on_batch` (tracing and compiling included); steady step: "
        f"median of the next {header['steps']}",
        "",
        "| cell | steps | impl | first step s | steady step s | rss growth MB |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['cell']} | {row['length']} | {row['impl']} | {row['first_step_s']:.2f} | "
            f"{row['steady_step_s']:.3f} | {row['rss_growth_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
