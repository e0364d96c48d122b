"""The two file formats the data sets come in, IDX and npz, read with bounds and checked.

`read_idx` reads one IDX file of unsigned bytes, gzipped or not; `read_npz`
reads the arrays of an `.npz` archive without ever unpickling. Reads are
bounded (`MAX_ARRAY_BYTES`, in chunks), so a forged header cannot ask for an
absurd allocation, and every defect raises `DatasetError` naming the file.
The SHA-256 helpers that name the files read live here too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recurrent_mnist.errors import DatasetError

# The four standard IDX files, by the array each one holds.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = tuple(IDX_FILES)
_IDX_UNSIGNED_BYTE = 0x08
_IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
# Far above the largest file of these data sets (MNIST's training images: 47 MB);
# it keeps a forged header from asking for an absurd allocation.
MAX_ARRAY_BYTES = 1 << 31
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- checksums


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _combined_digest(files: dict[str, str]) -> str:
    lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


# --------------------------------------------------------------------------- readers


def _read_up_to(stream, size: int) -> bytes:
    """Reads at most `size` bytes in chunks, so a forged size never allocates at once."""
    parts, remaining = [], size
    while remaining > 0:
        block = stream.read(min(_CHUNK, remaining))
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def _os_error_message(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path} does not exist"
    if isinstance(exc, IsADirectoryError):
        return f"{path} is a folder, not a data file"
    if isinstance(exc, PermissionError):
        return f"{path} cannot be read: permission denied"
    return f"{path} cannot be read: {exc.strerror or exc}"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file of unsigned bytes, gzipped or not, and validates it.

    Args:
        path: the file. Gzip is detected from its first bytes, not its name.

    Returns:
        A uint8 array with the shape the header declares.

    Raises:
        DatasetError: the file is missing, unreadable, not IDX, of another
            element type, a corrupt gzip, or shorter or longer than its header says.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            try:
                return _parse_idx(stream, path)
            except (OSError, EOFError, zlib.error) as exc:
                if gzipped:
                    raise DatasetError(f"{path} is not a valid gzip file (truncated or corrupt: {exc})") from None
                raise
    except DatasetError:
        raise
    except OSError as exc:
        raise DatasetError(_os_error_message(path, exc)) from None


def _parse_idx(stream, path: Path) -> np.ndarray:
    magic = _read_up_to(stream, 4)
    if not magic:
        raise DatasetError(f"{path} is empty")
    if len(magic) < 4:
        raise DatasetError(f"{path} is too short to hold an IDX header ({len(magic)} bytes)")
    zero_a, zero_b, type_code, ndim = magic
    if zero_a or zero_b:
        raise DatasetError(
            f"{path} is not an IDX file: its magic number is 0x{magic.hex()}, an IDX file starts with two zero bytes"
        )
    if type_code != _IDX_UNSIGNED_BYTE:
        kind = _IDX_TYPE_NAMES.get(type_code, "an unknown type")
        raise DatasetError(
            f"{path} holds IDX type 0x{type_code:02x} ({kind}); image and label files must hold unsigned bytes (0x08)"
        )
    if not 1 <= ndim <= 4:
        raise DatasetError(f"{path} declares {ndim} dimensions in its IDX header; expected 1 to 4")
    header = _read_up_to(stream, 4 * ndim)
    if len(header) < 4 * ndim:
        raise DatasetError(f"{path} is truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", header)
    expected = math.prod(shape)
    if expected > MAX_ARRAY_BYTES:
        raise DatasetError(
            f"{path} declares dimensions {shape} ({expected:,} bytes), more than the "
            f"{MAX_ARRAY_BYTES:,} bytes this reader accepts"
        )
    body = _read_up_to(stream, expected + 1)
    if len(body) < expected:
        raise DatasetError(
            f"{path} is shorter than its header says: {len(body):,} bytes of data, "
            f"the header declares {shape} = {expected:,}"
        )
    if len(body) > expected:
        raise DatasetError(
            f"{path} is longer than its header says: more than the {expected:,} bytes "
            f"of data that dimensions {shape} declare"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_npz(path: str | os.PathLike, keys: Iterable[str] = NPZ_KEYS) -> dict[str, np.ndarray]:
    """Reads arrays from an `.npz` archive without ever unpickling.

    Each member's `.npy` header is checked before its data is read: an object
    dtype (pickled Python objects) is refused, and the declared size must match
    the bytes present.

    Args:
        path: the archive, e.g. Keras's `mnist.npz`.
        keys: the arrays to read; all must be present.

    Returns:
        The arrays by key.

    Raises:
        DatasetError: the file is missing, not a zip archive, lacks a key, or
            holds a corrupt or pickled array.
    """
    path = Path(path)
    keys = tuple(keys)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = [key for key in keys if key not in members]
            if missing:
                raise DatasetError(
                    f"{path} lacks the array(s) {', '.join(missing)}; an npz data set holds {', '.join(keys)}"
                )
            return {key: _read_npy_member(archive, members[key], path, key) for key in keys}
    except DatasetError:
        raise
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path} is not a valid npz (zip) archive: {exc}") from None
    except OSError as exc:
        raise DatasetError(_os_error_message(path, exc)) from None
    except (EOFError, zlib.error, ValueError, NotImplementedError, RuntimeError, struct.error) as exc:
        raise DatasetError(f"{path} is a corrupt npz archive: {exc}") from None


def _read_npy_member(archive: zipfile.ZipFile, member: str, path: Path, key: str) -> np.ndarray:
    info = archive.getinfo(member)
    if info.file_size > MAX_ARRAY_BYTES + 4096:
        raise DatasetError(f"{path}: array {key} is {info.file_size:,} bytes, more than this reader accepts")
    with archive.open(info) as f:
        data = f.read()
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(buffer)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(buffer)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises many kinds on bad bytes
        raise DatasetError(f"{path}: array {key} has an invalid .npy header ({type(exc).__name__})") from None
    if dtype.hasobject:
        raise DatasetError(
            f"{path}: array {key} holds pickled Python objects, which are never loaded "
            "(they can run code); store plain numeric arrays"
        )
    declared = math.prod(shape) * dtype.itemsize
    present = len(data) - buffer.tell()
    if declared != present:
        raise DatasetError(
            f"{path}: array {key} declares shape {shape} of {dtype} ({declared:,} bytes) but holds {present:,} bytes"
        )
    return np.load(io.BytesIO(data), allow_pickle=False)
