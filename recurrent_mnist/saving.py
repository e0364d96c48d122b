"""Saving models atomically and loading them safely.

`load_model` only ever deserializes with Keras's `safe_mode=True` (no lambdas, no
classes outside Keras and registered packages), refuses legacy HDF5 files unless
the caller says it trusts them, and turns every failure into one `ModelFileError`
sentence that names the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras

import recurrent_mnist.model  # noqa: F401 - registers RowSequenceClassifier for deserialization
from recurrent_mnist.errors import ModelFileError
from recurrent_mnist.runs.atomic import atomic_path

__all__ = ["load_model", "save_model"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves `model` as a `.keras` file, atomically: the file is whole or absent."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: a model file name must end in .keras")
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def load_model(path: str | os.PathLike, *, trust_legacy_h5: bool = False, compile: bool = True) -> keras.Model:
    """Loads a saved model with `safe_mode=True`.

    Args:
        path: a `.keras` file (or a legacy `.h5` file when trusted).
        trust_legacy_h5: allow a legacy HDF5 model. HDF5 models are not covered
            by Keras's safe mode, so load one only from a source you trust.
        compile: restore the training configuration too.

    Raises:
        ModelFileError: the file is missing, not a model, truncated, a refused
            HDF5 file, or names code that safe mode does not allow.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"the model file {path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give the path of a .keras model file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelFileError(f"the model file {path} cannot be read: {exc.strerror or exc}") from None
    if head.startswith(_HDF5_SIGNATURE) or path.suffix in (".h5", ".hdf5"):
        if not trust_legacy_h5:
            raise ModelFileError(
                f"{path} is a legacy HDF5 model, which Keras's safe mode does not cover; "
                "load it only if you trust its source, with `trust_legacy_h5=True`"
            )
        return _load(path, compile)
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a .keras model file (not a zip archive: empty, truncated or another format)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path} is a damaged .keras file ({exc})") from None
    if bad is not None:
        raise ModelFileError(f"{path} is a damaged .keras file (member {bad} fails its checksum)")
    if "config.json" not in names:
        raise ModelFileError(f"{path} is a zip archive but not a .keras model (it has no config.json)")
    return _load(path, compile)


def _load(path: Path, compile: bool) -> keras.Model:
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        message = " ".join(str(exc).split())
        if "safe_mode" in message or "lambda" in message.lower():
            raise ModelFileError(
                f"{path} was refused by Keras's safe mode, because it holds code that could run on "
                f"loading: {message[:300]}"
            ) from None
        if "Could not locate" in message or "Unknown" in message or "not found" in message:
            raise ModelFileError(
                f"{path} names a class or function that is neither part of Keras nor registered "
                f"(import the package that defines it first): {message[:300]}"
            ) from None
        raise ModelFileError(f"{path} cannot be loaded as a Keras model: {message[:300]}") from None
