"""Writers of valid and deliberately broken data files for the reader tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from recurrent_mnist.datasets import IDX_FILES


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def small_arrays(n_train: int = 20, n_test: int = 10, size: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_idx_set(folder: Path, arrays: dict[str, np.ndarray] | None = None, gz: bool = True) -> dict[str, Path]:
    """Writes the four IDX files; returns their paths by array name."""
    arrays = arrays if arrays is not None else small_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, base in IDX_FILES.items():
        data = idx_bytes(arrays[key])
        path = folder / (base + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
        paths[key] = path
    return paths
