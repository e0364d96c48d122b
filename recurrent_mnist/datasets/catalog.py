"""The named data sets and what loading one gives back.

`DATASETS` maps each name to its `DatasetInfo` (description, class names,
licence); `Dataset` holds a set's validated train and test arrays with their
provenance.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recurrent_mnist.errors import DatasetError

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the package knows about a named data set."""

    name: str
    description: str
    class_names: tuple[str, ...]
    licence: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        "MNIST handwritten digits, 60,000 train + 10,000 test, 28x28",
        DIGITS,
        "Yann LeCun and Corinna Cortes, CC BY-SA 3.0",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST (Zalando), 60,000 train + 10,000 test, 28x28",
        FASHION_CLASSES,
        "Zalando SE, MIT licence",
    ),
    "mnist-sample": DatasetInfo(
        "mnist-sample",
        "5,000 real MNIST digits embedded in the package, 4,000 train + 1,000 test",
        DIGITS,
        "Yann LeCun and Corinna Cortes, CC BY-SA 3.0 (see data/mnist-sample/PROVENANCE.md)",
    ),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images of one data set, validated, with their provenance.

    Attributes:
        name: the data set's name, e.g. `"mnist"`.
        x_train, x_test: uint8 images `(N, H, W)`, pixel values 0..255.
        y_train, y_test: integer labels `(N,)` in `0..num_classes - 1`.
        source: where the arrays were read from (a folder or file).
        files: SHA-256 of each file read, by file name.
        sha256: one digest over `files`, naming the exact data a result came from.
        class_names: one name per label.
        verified: whether the arrays are the published data set `name` (see
            `datasets.published`); False for a set of one's own, or one built in code.
        content_sha256: the SHA-256 of each decoded array, by key (`x_train`, ...):
            the same whatever the files' format or compression.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    files: dict[str, str]
    sha256: str
    class_names: tuple[str, ...]
    verified: bool = False
    content_sha256: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict:
        """A JSON-ready summary: name, sizes, source, checksums and whether the data is the published set."""
        return {
            "name": self.name,
            "train_size": len(self.x_train),
            "test_size": len(self.x_test),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "source": self.source,
            "sha256": self.sha256,
            "files": dict(self.files),
            "verified": self.verified,
            "content_sha256": dict(self.content_sha256),
        }


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}") from None
