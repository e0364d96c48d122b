"""Where each named data set comes from, and `load`, which finds and reads it.

In order: a folder the caller names (`data_dir`, read by `load_dir`), the
Keras cache, Debian's Fashion-MNIST package, then Keras's download; the
embedded `mnist-sample` comes from the package itself. When none has the
set, the error names every remedy. Every set read is checked against the
published data (`published.check`): verified, refused as another set, or
loaded unverified.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from recurrent_mnist.datasets.catalog import Dataset, _info
from recurrent_mnist.datasets.formats import IDX_FILES, NPZ_KEYS, _combined_digest, _sha256, read_idx, read_npz
from recurrent_mnist.datasets.published import check, content_digests
from recurrent_mnist.datasets.validation import _validated
from recurrent_mnist.errors import DatasetError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# Package data of `recurrent_mnist`, one level above this package.
_SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "mnist-sample"


# --------------------------------------------------------------------------- a folder


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
    """Loads a data set from a folder: the four IDX files, or `<name>.npz`, checked against the published data.

    Args:
        directory: the folder.
        name: the data set's name, which sets the classes, the npz file name
            and the published data it is checked against.

    Returns:
        A `Dataset`, `verified` when its arrays are the published `name`.

    Raises:
        DatasetError: the folder is missing or incomplete, a file is invalid,
            or the files are another published data set (the sentence names it).
    """
    return _read_dir(directory, name, check_as=name)


def _read_dir(directory: str | os.PathLike, name: str, check_as: str) -> Dataset:
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
    validated = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    digests = content_digests(validated)
    verified = check(check_as, validated, digests, files, source)
    return Dataset(
        name,
        x_train,
        y_train,
        x_test,
        y_test,
        source,
        files,
        _combined_digest(files),
        info.class_names,
        verified=verified,
        content_sha256=digests,
    )


# --------------------------------------------------------------------------- the named sets


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
        f"{name} is not available: {why}. Pass `data_dir` (a folder with the four IDX files or "
        f"mnist.npz), put those files in the Keras cache ({cache}){extra}, or use the embedded "
        "`name='mnist-sample'`, which needs no network"
    )


def _load_sample() -> Dataset:
    manifest = json.loads((_SAMPLE_DIR / "manifest.json").read_text())
    dataset = _read_dir(_SAMPLE_DIR, "mnist", check_as="mnist-sample")
    for file_name, expected in manifest["files"].items():
        if dataset.files.get(file_name) != expected:
            raise DatasetError(
                f"the embedded sample file {_SAMPLE_DIR / file_name} does not match its "
                "manifest (SHA-256 differs); reinstall recurrent-mnist"
            )
    if not dataset.verified:  # the files match their manifest, so only the recorded digests can be wrong
        raise DatasetError(
            f"the embedded sample in {_SAMPLE_DIR} does not match its digests in datasets.published; "
            "reinstall recurrent-mnist"
        )
    return dataclasses.replace(dataset, name="mnist-sample", source=f"embedded sample ({_SAMPLE_DIR})")


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
            raise DatasetError("`data_dir` does not apply to mnist-sample, which is embedded in the package")
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


@dataclasses.dataclass(frozen=True)
class Availability:
    """Whether a named set is on this machine: where `load` would read it, and whether it verified.

    `where` is None when no copy was found (`load` would download it); `verified`
    is None then, and `problem` names what failed when a copy does not load.
    """

    name: str
    where: Path | None
    verified: bool | None
    problem: str | None = None


def availability(name: str) -> Availability:
    """Where `load(name)` finds the set here without downloading, loaded and checked (a few seconds a set)."""
    if name == "mnist-sample":
        where = _SAMPLE_DIR
    else:
        _info(name)
        candidates = _cache_candidates(name)
        if not candidates:
            return Availability(name, None, None)
        where = candidates[0]
    try:
        dataset = load(name, download=False)
    except DatasetError as exc:
        return Availability(name, where, False, str(exc))
    return Availability(name, where, dataset.verified)
