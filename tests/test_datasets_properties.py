"""Property tests of the IDX and npz readers: any input gives valid arrays or a DatasetError."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from idx_files import idx_bytes

from recurrent_mnist.datasets import DatasetError, read_idx, read_npz

VALID = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for position, value, action in edits:
        if not out:
            out.append(value)
            continue
        position %= len(out) + 1
        if action == 0 and position < len(out):
            out[position] = value
        elif action == 1:
            out.insert(position, value)
        elif position < len(out):
            del out[position]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 2)), max_size=8)


def _check_idx(tmp_path, data: bytes):
    path = tmp_path / "file"
    path.write_bytes(data)
    try:
        array = read_idx(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    assert array.dtype == np.uint8
    assert array.size == len(data) - 4 - 4 * array.ndim  # whatever it returns, the header told the truth


@PROPERTY
@given(data=st.binary(max_size=200))
def test_idx_reader_on_random_bytes(tmp_path, data):
    _check_idx(tmp_path, data)


@PROPERTY
@given(edits=EDITS)
def test_idx_reader_on_mutated_valid_files(tmp_path, edits):
    _check_idx(tmp_path, _mutate(VALID, edits))


@PROPERTY
@given(edits=EDITS)
def test_idx_reader_on_mutated_gzip_files(tmp_path, edits):
    path = tmp_path / "file.gz"
    path.write_bytes(_mutate(gzip.compress(VALID), edits))
    try:
        array = read_idx(path)
    except DatasetError:
        return
    assert array.dtype == np.uint8


def _valid_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x_train=np.zeros((2, 3, 3), np.uint8), y_train=np.arange(2))
    return buffer.getvalue()


VALID_NPZ = _valid_npz()


def _check_npz(tmp_path, data: bytes):
    path = tmp_path / "file.npz"
    path.write_bytes(data)
    try:
        arrays = read_npz(path, keys=("x_train", "y_train"))
    except DatasetError:
        return
    assert set(arrays) == {"x_train", "y_train"}
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in arrays.values())


@PROPERTY
@given(data=st.binary(max_size=300))
def test_npz_reader_on_random_bytes(tmp_path, data):
    _check_npz(tmp_path, data)


@PROPERTY
@given(edits=EDITS)
def test_npz_reader_on_mutated_valid_files(tmp_path, edits):
    _check_npz(tmp_path, _mutate(VALID_NPZ, edits))


@PROPERTY
@given(header=st.binary(min_size=0, max_size=120), body=st.binary(max_size=64))
def test_npz_reader_on_random_members(tmp_path, header, body):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body)
        archive.writestr("y_train.npy", header + body)
    _check_npz(tmp_path, buffer.getvalue())
