"""Loading and validating the image data sets: MNIST, Fashion-MNIST and the embedded sample.

`load(name, data_dir=None)` returns a `Dataset` of uint8 images `(N, H, W)` and
integer labels, with where they came from and the SHA-256 of the files read.
Every file is validated before any training (IDX header, type, dimensions and
length; gzip integrity; npz keys, dtypes and shapes, never unpickled; image and
label counts; label range), and a bad one raises `DatasetError` naming the file
and the problem. This package needs only numpy: Keras is imported only to
download a missing data set.

The modules, in the order they build on each other:

- `catalog`: the names (`DATASETS`, `DatasetInfo`, class names) and `Dataset`.
- `formats`: the IDX and npz readers (`read_idx`, `read_npz`), bounded and checked.
- `validation`: the checks that four arrays are images and labels that agree.
- `published`: the published sets by the SHA-256 of their decoded arrays
  (`PUBLISHED`, with provenance), and the check that says which set was read.
- `sources`: where each set comes from (`data_dir`, the Keras cache, Debian's
  Fashion-MNIST, the embedded sample, a download) and `load` itself. The
  lookups tests replace (`keras_cache_dirs`, `_download`) live there.
"""

from recurrent_mnist.datasets.catalog import DATASETS, DIGITS, FASHION_CLASSES, Dataset, DatasetInfo
from recurrent_mnist.datasets.formats import IDX_FILES, MAX_ARRAY_BYTES, NPZ_KEYS, read_idx, read_npz
from recurrent_mnist.datasets.published import PUBLISHED, PUBLISHED_FILES, PublishedSet, array_digest
from recurrent_mnist.datasets.sources import (
    DEBIAN_FASHION_MNIST,
    Availability,
    availability,
    keras_cache_dirs,
    load,
    load_dir,
)
from recurrent_mnist.errors import DatasetError

# The names other code imports from `recurrent_mnist.datasets`, wherever they now live.
__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DIGITS",
    "FASHION_CLASSES",
    "IDX_FILES",
    "MAX_ARRAY_BYTES",
    "NPZ_KEYS",
    "PUBLISHED",
    "PUBLISHED_FILES",
    "Availability",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "PublishedSet",
    "array_digest",
    "availability",
    "keras_cache_dirs",
    "load",
    "load_dir",
    "read_idx",
    "read_npz",
]
