"""Prints the SHA-256 of the decoded arrays of a data set folder, as `recurrent_mnist.datasets.published` records them.

The folder holds the four IDX files (gzipped or not) or an npz; the digests are
the same whatever the format. This is how the table's digests were computed,
and how anyone with another copy of MNIST or Fashion-MNIST can compare theirs.

    python scripts/dataset_digests.py /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RECURRENT_MNIST_DEFER_KERAS", "1")  # numpy only: no TensorFlow needed

from recurrent_mnist.datasets import IDX_FILES, NPZ_KEYS, PUBLISHED, DatasetError, array_digest
from recurrent_mnist.datasets.formats import read_idx, read_npz
from recurrent_mnist.datasets.sources import _find_idx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder with the four IDX files, or an .npz file")
    args = parser.parse_args()
    try:
        if args.folder.endswith(".npz"):
            arrays = read_npz(args.folder, NPZ_KEYS)
        else:
            paths = {key: _find_idx(Path(args.folder), base) for key, base in IDX_FILES.items()}
            missing = [IDX_FILES[key] for key, path in paths.items() if path is None]
            if missing:
                raise DatasetError(f"{args.folder} lacks {', '.join(missing)}")
            arrays = {key: read_idx(path) for key, path in paths.items()}
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    digests = {key: (tuple(array.shape), array_digest(array)) for key, array in arrays.items()}
    for key, (shape, digest) in digests.items():
        print(f"{key:8} {json.dumps(list(shape)):16} {digest}")
    for published in PUBLISHED.values():
        known = published.arrays
        same = [key for key in NPZ_KEYS if known[key] == digests[key]]
        if same:
            print(f"matches {published.title}: {', '.join(same)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
