"""recurrent-mnist: compare recurrent cells on images read as sequences of rows.

Importing this package registers `RowSequenceClassifier` (and the layers it
uses) with Keras, so that saved `.keras` models load with `safe_mode=True`.
"""

from importlib.metadata import PackageNotFoundError, version

from recurrent_mnist.cells import available_cells, register_cell
from recurrent_mnist.errors import ConfigError, DatasetError, RecurrentMnistError, ResultsError
from recurrent_mnist.model import RowSequenceClassifier

try:
    __version__ = version("recurrent-mnist")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError",
    "DatasetError",
    "RecurrentMnistError",
    "ResultsError",
    "RowSequenceClassifier",
    "__version__",
    "available_cells",
    "register_cell",
]
