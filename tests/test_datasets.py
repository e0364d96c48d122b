"""The data set readers: valid files load, every kind of broken file gets one clear DatasetError."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from idx_files import idx_bytes, small_arrays, write_idx_set

from recurrent_mnist.datasets import (
    DATASETS,
    PUBLISHED,
    PUBLISHED_FILES,
    DatasetError,
    PublishedSet,
    array_digest,
    load,
    load_dir,
    published,
    read_idx,
    read_npz,
    sources,
)

# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_set_loads_gzipped_or_not(tmp_path, gz):
    arrays = small_arrays()
    write_idx_set(tmp_path, arrays, gz=gz)
    data = load("mnist", tmp_path)
    np.testing.assert_array_equal(data.x_train, arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert data.x_train.dtype == np.uint8 and data.image_shape == (28, 28)
    assert len(data.files) == 4 and len(data.sha256) == 64
    assert load("mnist", tmp_path).sha256 == data.sha256


def test_the_original_dotted_file_names_are_found(tmp_path):
    for path in write_idx_set(tmp_path / "src").values():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert load_dir(tmp_path).x_train.shape == (20, 28, 28)


def test_other_image_sizes_load(tmp_path):
    write_idx_set(tmp_path, small_arrays(size=16))
    assert load("fashion-mnist", tmp_path).image_shape == (16, 16)


def _write(tmp_path, data: bytes, name="train-images-idx3-ubyte"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


VALID_IMAGES = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"\x00\x00", "too short"),
        (b"\x12\x34\x08\x03" + VALID_IMAGES[4:], "not an IDX file"),
        (VALID_IMAGES[:2] + b"\x0d" + VALID_IMAGES[3:], r"type 0x0d \(float32\)"),
        (VALID_IMAGES[:3] + b"\x00" + VALID_IMAGES[4:], "declares 0 dimensions"),
        (VALID_IMAGES[:10], "truncated inside its IDX header"),
        (VALID_IMAGES[:-1], "shorter than its header says"),
        (VALID_IMAGES + b"\x00", "longer than its header says"),
        (b"\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "more than the"),
    ],
)
def test_broken_idx_files_get_one_clear_error(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(DatasetError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_and_corrupt_gzip(tmp_path):
    compressed = gzip.compress(VALID_IMAGES)
    truncated = _write(tmp_path, compressed[:-10], "a.gz")
    with pytest.raises(DatasetError, match="not a valid gzip file"):
        read_idx(truncated)
    corrupt = bytearray(compressed)
    corrupt[-6] ^= 0xFF  # the CRC no longer matches
    with pytest.raises(DatasetError, match="not a valid gzip file"):
        read_idx(_write(tmp_path, bytes(corrupt), "b.gz"))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DatasetError, match="is a folder"):
        read_idx(tmp_path)


def test_a_missing_file_of_the_four_is_named(tmp_path):
    paths = write_idx_set(tmp_path)
    paths["y_test"].unlink()
    with pytest.raises(DatasetError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]"):
        load("mnist", tmp_path)


def test_an_empty_or_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="no mnist files in"):
        load("mnist", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load("mnist", tmp_path / "absent")


def test_image_and_label_counts_must_agree(tmp_path):
    arrays = small_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    write_idx_set(tmp_path, arrays)
    with pytest.raises(DatasetError, match=r"holds 20 images but .*train-labels.* holds 19 labels"):
        load("mnist", tmp_path)


def test_labels_outside_the_classes(tmp_path):
    arrays = small_arrays()
    arrays["y_test"][3] = 10
    write_idx_set(tmp_path, arrays)
    with pytest.raises(DatasetError, match=r"t10k-labels.*the label 10, outside 0..9"):
        load("mnist", tmp_path)


def test_images_of_the_wrong_rank(tmp_path):
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"].reshape(20, 784)
    write_idx_set(tmp_path, arrays)
    with pytest.raises(DatasetError, match=r"images of shape \(20, 784\)"):
        load("mnist", tmp_path)


def test_train_and_test_sizes_must_match(tmp_path):
    arrays = small_arrays()
    arrays["x_test"] = np.zeros((10, 20, 20), dtype=np.uint8)
    write_idx_set(tmp_path, arrays)
    with pytest.raises(DatasetError, match="one image size"):
        load("mnist", tmp_path)


# --------------------------------------------------------------------------- npz


def _npz(path, arrays, **extra):
    np.savez_compressed(path, **arrays, **extra)
    return path


def test_npz_loads(tmp_path):
    arrays = small_arrays()
    _npz(tmp_path / "mnist.npz", arrays)
    data = load("mnist", tmp_path)
    np.testing.assert_array_equal(data.x_test, arrays["x_test"])
    assert list(data.files) == ["mnist.npz"]


def test_npz_that_is_not_a_zip(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a valid npz"):
        load("mnist", tmp_path)


def test_npz_missing_a_key(tmp_path):
    arrays = small_arrays()
    del arrays["y_test"]
    _npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(DatasetError, match="lacks the array\\(s\\) y_test"):
        load("mnist", tmp_path)


def test_npz_with_wrong_shapes(tmp_path):
    arrays = small_arrays()
    arrays["y_train"] = arrays["y_train"].reshape(2, 10)
    _npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(DatasetError, match=r"labels of shape \(2, 10\)"):
        load("mnist", tmp_path)


def test_npz_with_float_images(tmp_path):
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"] / 255.0
    _npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(DatasetError, match="float64 images; expected uint8"):
        load("mnist", tmp_path)


def test_npz_with_pickled_objects_is_never_unpickled(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = small_arrays()
    arrays["y_train"] = np.array([Payload()] * 20, dtype=object)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DatasetError, match="pickled Python objects"):
        load("mnist", tmp_path)
    assert not marker.exists()


def test_npz_whose_header_lies_about_its_size(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 4), dtype=np.uint8))
    data = buffer.getvalue().replace(b"(4, 4)", b"(9, 9)")
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", data)
    with pytest.raises(DatasetError, match=r"declares shape \(9, 9\)"):
        read_npz(path, keys=("x_train",))


# --------------------------------------------------------------------------- named sets


def test_embedded_sample_is_real_balanced_mnist(sample):
    assert sample.name == "mnist-sample"
    assert sample.x_train.shape == (4000, 28, 28) and sample.x_test.shape == (1000, 28, 28)
    assert np.bincount(sample.y_train).tolist() == [400] * 10
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    assert sample.x_train.dtype == np.uint8 and sample.x_train.max() == 255
    manifest = json.loads((sources._SAMPLE_DIR / "manifest.json").read_text())
    assert sample.files == manifest["files"]
    assert "CC BY-SA 3.0" in (sources._SAMPLE_DIR / "PROVENANCE.md").read_text()


def test_sample_takes_no_data_dir(tmp_path):
    with pytest.raises(DatasetError, match="`data_dir` does not apply to mnist-sample"):
        load("mnist-sample", tmp_path)


def test_offline_mnist_names_the_remedies(keras_home):
    with pytest.raises(DatasetError) as info:
        load("mnist", download=False)
    message = str(info.value)
    for remedy in ("`data_dir`", "`name='mnist-sample'`", str(keras_home / "datasets")):
        assert remedy in message


def test_a_failed_download_names_the_remedies(keras_home, monkeypatch):
    def offline(name):
        raise DatasetError(sources._not_found_message(name, "the download failed (URL fetch failure)"))

    monkeypatch.setattr(sources, "_download", offline)
    with pytest.raises(DatasetError, match=r"download failed.*`data_dir`"):
        load("mnist")


def test_mnist_is_found_in_the_keras_cache(keras_home):
    (keras_home / "datasets").mkdir(parents=True)
    np.savez(keras_home / "datasets" / "mnist.npz", **small_arrays())
    data = load("mnist", download=False)
    assert data.source.endswith("mnist.npz")


def test_unknown_data_set():
    with pytest.raises(DatasetError, match="unknown data set 'cifar'"):
        load("cifar")


@pytest.mark.fashion
@pytest.mark.skipif(not sources.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian(keras_home):
    data = load("fashion-mnist", download=False)
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.class_names[0] == "T-shirt/top"
    assert str(sources.DEBIAN_FASHION_MNIST) in data.source


# --------------------------------------------------------------------------- checked against the published data


def _write_npz(folder, name, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / name, **arrays)


def _arrays(data) -> dict:
    return {key: getattr(data, key) for key in ("x_train", "y_train", "x_test", "y_test")}


def test_the_embedded_sample_is_verified_against_its_recorded_digests(sample):
    assert sample.verified and sample.describe()["verified"] is True
    assert sample.content_sha256 == {key: digest for key, (_, digest) in PUBLISHED["mnist-sample"].arrays.items()}


@pytest.mark.parametrize("form", ["idx", "idx.gz", "npz"])
def test_the_digests_are_of_the_decoded_arrays_whatever_the_file_format(tmp_path, sample, form):
    if form == "npz":
        _write_npz(tmp_path, "mnist_sample.npz", _arrays(sample))
    else:
        write_idx_set(tmp_path, _arrays(sample), gz=form == "idx.gz")
    data = load_dir(tmp_path, "mnist-sample")
    assert data.verified and data.content_sha256 == sample.content_sha256
    assert data.sha256 != sample.sha256 or form == "idx.gz"  # the files differ; the data does not


def test_a_set_of_ones_own_loads_unverified(tmp_path):
    write_idx_set(tmp_path)
    data = load("fashion-mnist", tmp_path)
    assert data.verified is False and data.describe()["verified"] is False
    assert set(data.content_sha256) == {"x_train", "y_train", "x_test", "y_test"}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_files_of_another_published_set_are_refused_naming_it(tmp_path, sample, name):
    write_idx_set(tmp_path, _arrays(sample), gz=False)
    with pytest.raises(DatasetError) as info:
        load(name, tmp_path)
    assert str(info.value) == (
        f"{tmp_path} holds the embedded mnist-sample (MNIST digits), not {name}; "
        "use `name='mnist-sample'`, which needs no `data_dir`"
    )


def test_a_part_of_another_published_set_is_refused_naming_the_part(tmp_path, sample):
    arrays = {**small_arrays(), "x_train": sample.x_train, "y_train": sample.y_train}
    write_idx_set(tmp_path, arrays, gz=False)
    with pytest.raises(DatasetError, match=r"holds the training images and training labels of the embedded"):
        load("fashion-mnist", tmp_path)


def test_mnist_files_passed_as_fashion_mnist_are_refused_naming_mnist(tmp_path, tiny, tiny_data_dir, monkeypatch):
    # Stand-in for the full MNIST (whose files CI does not have): the tiny digits, recorded as MNIST.
    digests = {key: (array.shape, array_digest(array)) for key, array in _arrays(tiny).items()}
    monkeypatch.setitem(published.PUBLISHED, "mnist", PublishedSet("mnist", "MNIST", digests, "test"))
    with pytest.raises(DatasetError, match=r"holds MNIST, not fashion-mnist; load it as `name='mnist'`"):
        load("fashion-mnist", tiny_data_dir)
    assert load("mnist", tiny_data_dir).verified


def test_a_file_with_a_published_digest_verifies_it(tmp_path, monkeypatch):
    _write_npz(tmp_path, "mnist.npz", small_arrays())
    assert not load("mnist", tmp_path).verified
    file_digest = hashlib.sha256((tmp_path / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setitem(published.PUBLISHED_FILES, file_digest, ("mnist", "test"))
    assert load("mnist", tmp_path).verified


def test_the_published_table_is_complete_and_says_where_each_digest_comes_from():
    for name, entry in PUBLISHED.items():
        assert name == entry.name and name in DATASETS
        assert set(entry.arrays) == {"x_train", "y_train", "x_test", "y_test"}
        assert all(len(digest) == 64 for _, digest in entry.arrays.values())
        assert len(entry.provenance) > 50
    assert {name for name, _ in PUBLISHED_FILES.values()} <= set(PUBLISHED)


# Zalando's README lists the MD5 of each gzip file; Debian's copies carry the same compressed data under
# another gzip header (no file name, another time). With Zalando's header put back they have that MD5.
ZALANDO_MD5 = {
    "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 1504176606),
    "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", 1504176606),
    "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", 1504176627),
    "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", 1504176627),
}


@pytest.mark.fashion
@pytest.mark.skipif(not sources.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_debians_fashion_mnist_is_zalandos_and_its_digests_are_the_table(keras_home):
    for name, (md5, mtime) in ZALANDO_MD5.items():
        debian = (sources.DEBIAN_FASHION_MNIST / name).read_bytes()
        assert debian[3] == 0, "Debian's header has no file name"  # gzip FLG
        zalando_header = debian[:3] + b"\x08" + mtime.to_bytes(4, "little") + debian[8:10] + name[:-3].encode() + b"\0"
        assert hashlib.md5(zalando_header + debian[10:]).hexdigest() == md5, name
    data = load("fashion-mnist", download=False)
    assert data.verified
    assert data.content_sha256 == {key: digest for key, (_, digest) in PUBLISHED["fashion-mnist"].arrays.items()}


@pytest.mark.fashion
@pytest.mark.skipif(not sources.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_files_passed_as_mnist_are_refused_naming_fashion_mnist():
    with pytest.raises(DatasetError, match=r"holds Fashion-MNIST, not mnist; load it as `name='fashion-mnist'`"):
        load("mnist", sources.DEBIAN_FASHION_MNIST)


@pytest.mark.skipif(
    not any((cache / "mnist.npz").is_file() for cache in sources.keras_cache_dirs()), reason="no mnist.npz in the cache"
)
def test_a_full_mnist_in_the_keras_cache_is_verified():
    # Keras's mnist.npz, where a download left one: verified by its file digest and by its decoded arrays.
    data = load("mnist", download=False)
    assert data.verified
    assert data.content_sha256 == {key: digest for key, (_, digest) in PUBLISHED["mnist"].arrays.items()}


def test_availability_says_whether_a_set_is_here_where_and_whether_it_verified(keras_home, monkeypatch):
    from idx_files import write_idx_set

    from recurrent_mnist.datasets import Availability, availability

    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", keras_home / "no-debian-package")
    assert availability("mnist") == Availability("mnist", None, None)  # nothing here: load would download it
    sample = availability("mnist-sample")
    assert sample.verified is True and (sample.where / "manifest.json").is_file() and sample.problem is None
    folder = keras_home / "datasets" / "fashion-mnist"
    paths = write_idx_set(folder)
    assert availability("fashion-mnist") == Availability("fashion-mnist", folder, False)  # a set of one's own
    paths["y_test"].write_bytes(b"not gzip")
    broken = availability("fashion-mnist")
    assert broken.where == folder and broken.verified is False and str(paths["y_test"]) in broken.problem
