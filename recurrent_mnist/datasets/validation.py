"""Checks that a data set's four arrays are images and labels that agree.

`_validated` turns the arrays read from files into read-only uint8 images
`(N, H, W)` and int64 labels `(N,)`, or raises `DatasetError` naming the file
an array came from: wrong rank or dtype, pixels outside 0..255, labels outside
the classes, image and label counts that differ, or two image sizes.
"""

from __future__ import annotations

import numpy as np

from recurrent_mnist.errors import DatasetError


def _as_images(array: np.ndarray, origin: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DatasetError(f"{origin} holds images of shape {array.shape}; expected (N, height, width)")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer):
            raise DatasetError(f"{origin} holds {array.dtype} images; expected uint8 pixel values 0..255")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f"{origin} holds pixel values outside 0..255")
        array = array.astype(np.uint8)
    if 0 in array.shape:
        raise DatasetError(f"{origin} holds no images (shape {array.shape})")
    return array


def _as_labels(array: np.ndarray, origin: str, num_classes: int) -> np.ndarray:
    if array.ndim == 2 and array.shape[-1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(f"{origin} holds labels of shape {array.shape}; expected (N,)")
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{origin} holds {array.dtype} labels; expected integers")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= num_classes:
            bad = high if high >= num_classes else low
            raise DatasetError(f"{origin} holds the label {bad}, outside 0..{num_classes - 1}")
    return array.astype(np.int64)


def _validated(arrays: dict[str, np.ndarray], origins: dict[str, str], num_classes: int):
    x_train = _as_images(arrays["x_train"], origins["x_train"])
    x_test = _as_images(arrays["x_test"], origins["x_test"])
    y_train = _as_labels(arrays["y_train"], origins["y_train"], num_classes)
    y_test = _as_labels(arrays["y_test"], origins["y_test"], num_classes)
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(images) != len(labels):
            raise DatasetError(
                f"{origins['x_' + split]} holds {len(images):,} images but "
                f"{origins['y_' + split]} holds {len(labels):,} labels"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"train images are {x_train.shape[1:]} but test images are {x_test.shape[1:]}; "
            "both splits must have one image size"
        )
    for array in (x_train, y_train, x_test, y_test):
        array.flags.writeable = False
    return x_train, y_train, x_test, y_test
