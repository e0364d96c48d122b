"""The command line of `benchmarks/vs_pytorch.py`: the comparison's options and the hidden worker mode."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from peer_speed.impls import CELLS, DEFAULT_IMPLS, IMPLS, WORKERS
from peer_speed.orchestrate import orchestrate
from peer_speed.workers import worker_main

EPILOG = "How it measures, what it writes and the products floor: docs/speed.md, section Methods."


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args)
    return orchestrate(args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.shapes = [shape_arg(s) if isinstance(s, str) else s for s in args.shapes]
    if args.epochs < 2 and args.worker is None:
        parser.error("--epochs must be at least 2: epoch 1 is the compile epoch, the steady state comes after it")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train recurrent-mnist and a PyTorch model of the same shape side by side; compare epoch times.",
        epilog=EPILOG,
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
    add_worker_arguments(parser)
    return parser


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden worker mode: one run, one JSON line on stdout (the orchestrator spawns it)."""
    parser.add_argument("--worker", choices=WORKERS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cell", choices=CELLS, default="lstm", help=argparse.SUPPRESS)
    parser.add_argument("--units", type=positive_int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=positive_int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--data-file", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--check-cells", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--floors", nargs="*", default=[], help=argparse.SUPPRESS)  # CELL:UNITSxBATCH, peak worker


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
