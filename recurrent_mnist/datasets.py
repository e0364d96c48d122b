"""Loading and validating the image data sets: MNIST, Fashion-MNIST and the embedded sample.

`load(name, data_dir=None)` returns a `Dataset` of uint8 images `(N, H, W)` and
integer labels, with where they came from and the SHA-256 of the files read.
Every file is validated before any training (IDX header, type, dimensions and
length; gzip integrity; npz keys, dtypes and shapes, never unpickled; image and
label counts; label range), and a bad one raises `DatasetError` naming the file
and the problem. This module needs only numpy: Keras is imported only to
download a missing data set.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from recurrent_mnist.errors import DatasetError

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "keras_cache_dirs", "load", "read_idx", "read_npz"]

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

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "mnist-sample"

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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])

    def describe(self) -> dict:
        """A JSON-ready summary: name, sizes, source and checksums."""
        return {
            "name": self.name,
            "train_size": len(self.x_train),
            "test_size": len(self.x_test),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "source": self.source,
            "sha256": self.sha256,
            "files": dict(self.files),
        }


# --------------------------------------------------------------------------- readers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


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


# --------------------------------------------------------------------------- validation


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


def _combined_digest(files: dict[str, str]) -> str:
    lines = "".join(f"{sha}  {name}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


# --------------------------------------------------------------------------- finding files


def _find_idx(directory: Path, base: str) -> Path | None:
    # The original distribution also used "train-images.idx3-ubyte" (a dot).
    dotted = base.replace("-idx", ".idx")
    for stem in (base, dotted):
        for suffix in ("", ".gz"):
            candidate = directory / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_dir(directory: str | os.PathLike, name: str = "mnist") -> Dataset:
    """Loads a data set from a folder: the four IDX files, or `<name>.npz`.

    Args:
        directory: the folder.
        name: the data set's name, which sets the classes and the npz file name.

    Raises:
        DatasetError: the folder is missing or incomplete, or a file is invalid.
    """
    info = _info(name)
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise DatasetError(f"the data folder {directory} does not exist")
    if not directory.is_dir():
        raise DatasetError(f"the data folder {directory} is not a folder")
    found = {key: _find_idx(directory, base) for key, base in IDX_FILES.items()}
    npz_names = ("mnist.npz",) if name == "mnist" else (f"{name}.npz", f"{name.replace('-', '_')}.npz")
    npz = next((directory / n for n in npz_names if (directory / n).is_file()), None)
    if all(path is None for path in found.values()) and npz is not None:
        arrays = read_npz(npz)
        origins = {key: f"{npz} [{key}]" for key in NPZ_KEYS}
        files = {npz.name: _sha256(npz)}
        source = str(npz)
    else:
        missing = [IDX_FILES[key] for key, path in found.items() if path is None]
        if len(missing) == len(IDX_FILES):
            raise DatasetError(
                f"no {name} files in {directory}: expected the four IDX files "
                f"({', '.join(IDX_FILES.values())}, gzipped or not) or {npz_names[0]}"
            )
        if missing:
            raise DatasetError(
                f"{directory} lacks {', '.join(m + '[.gz]' for m in missing)}; all four IDX files are needed"
            )
        arrays = {key: read_idx(path) for key, path in found.items()}
        origins = {key: str(path) for key, path in found.items()}
        files = {path.name: _sha256(path) for path in found.values()}
        source = str(directory)
    x_train, y_train, x_test, y_test = _validated(arrays, origins, info.num_classes)
    return Dataset(name, x_train, y_train, x_test, y_test, source, files, _combined_digest(files), info.class_names)


def keras_cache_dirs() -> list[Path]:
    """Where Keras keeps downloaded data sets: `$KERAS_HOME/datasets` (default `~/.keras`),
    and `/tmp/.keras/datasets`, which Keras uses when the first is not writable."""
    home = Path(os.environ.get("KERAS_HOME") or Path("~").expanduser() / ".keras")
    return [home / "datasets", Path("/tmp/.keras/datasets")]


def _cache_candidates(name: str) -> list[Path]:
    folders = []
    for cache in keras_cache_dirs():
        folder = cache if name == "mnist" else cache / name
        if (folder / "mnist.npz").is_file() if name == "mnist" else _find_idx(folder, IDX_FILES["x_train"]):
            folders.append(folder)
    if name == "fashion-mnist" and _find_idx(DEBIAN_FASHION_MNIST, IDX_FILES["x_train"]):
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _download(name: str) -> None:
    try:
        import keras  # imported here: the rest of this module needs no Keras

        loader = {"mnist": keras.datasets.mnist, "fashion-mnist": keras.datasets.fashion_mnist}[name]
        loader.load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure gets the remedies below
        raise DatasetError(_not_found_message(name, f"the download failed ({type(exc).__name__}: {exc})")) from None


def _not_found_message(name: str, why: str) -> str:
    cache = keras_cache_dirs()[0] / ("mnist.npz" if name == "mnist" else name)
    extra = f", or Debian's dataset-{name} package ({DEBIAN_FASHION_MNIST})" if name == "fashion-mnist" else ""
    return (
        f"{name} is not available: {why}. Pass --data-dir with the four IDX files or "
        f"mnist.npz, put them in the Keras cache ({cache}){extra}, or use the embedded "
        "--dataset mnist-sample, which needs no network"
    )


def _load_sample() -> Dataset:
    manifest = json.loads((_SAMPLE_DIR / "manifest.json").read_text())
    dataset = load_dir(_SAMPLE_DIR, "mnist")
    for file_name, expected in manifest["files"].items():
        if dataset.files.get(file_name) != expected:
            raise DatasetError(
                f"the embedded sample file {_SAMPLE_DIR / file_name} does not match its "
                "manifest (SHA-256 differs); reinstall recurrent-mnist"
            )
    return dataclasses.replace(dataset, name="mnist-sample", source=f"embedded sample ({_SAMPLE_DIR})")


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}") from None


def load(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Loads a named data set, validated, with its provenance.

    Args:
        name: `"mnist"`, `"fashion-mnist"` or `"mnist-sample"`.
        data_dir: a folder with the four IDX files (gzipped or not) or
            `mnist.npz`. When omitted: the Keras cache, then (Fashion-MNIST)
            Debian's `/usr/share/datasets/fashion-mnist`, then Keras's download.
        download: whether Keras may download a missing set.

    Returns:
        A `Dataset`.

    Raises:
        DatasetError: the set is unknown, cannot be found or downloaded, or a
            file is invalid; the message names the file and the remedies.

    Example:

    >>> data = load("mnist-sample")
    >>> data.x_train.shape, data.x_test.shape
    ((4000, 28, 28), (1000, 28, 28))
    """
    info = _info(name)
    if name == "mnist-sample":
        if data_dir is not None:
            raise DatasetError("--data-dir does not apply to mnist-sample, which is embedded in the package")
        return _load_sample()
    if data_dir is not None:
        return load_dir(data_dir, name)
    candidates = _cache_candidates(name)
    if not candidates:
        if not download:
            raise DatasetError(_not_found_message(name, "no local copy was found and downloading is off"))
        _download(name)
        candidates = _cache_candidates(name)
        if not candidates:
            raise DatasetError(_not_found_message(name, "the download left no files in the Keras cache"))
    dataset = load_dir(candidates[0], info.name)
    return dataset
