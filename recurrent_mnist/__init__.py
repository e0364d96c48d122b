"""recurrent-mnist: compare recurrent cells on images read as sequences of rows.

Importing this package registers `RowSequenceClassifier` (and the layers it
uses) with Keras, so that saved `.keras` models load with `safe_mode=True`.

The command line imports the package with `RECURRENT_MNIST_DEFER_KERAS=1`: then
Keras is imported, and the classes registered, only when a Keras name is first
used (`recurrent_mnist.RowSequenceClassifier`, or any module that needs it), so
that `--help` and usage errors come without TensorFlow's start-up time.
`python -m recurrent_mnist` runs that command line (`__main__`) and defers alike. The
package's light modules (`settings`, `errors`, `runs.atomic`, `runs.process`)
never import Keras or TensorFlow themselves.
"""

import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from recurrent_mnist.errors import ConfigError, DatasetError, RecurrentMnistError, ResultsError
from recurrent_mnist.quiet import notices_filtered, probe_devices

try:
    __version__ = version("recurrent-mnist")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

# The public names that need Keras, and the module of each.
_KERAS_NAMES = {
    "RowSequenceClassifier": "recurrent_mnist.model",
    "available_cells": "recurrent_mnist.cells",
    "register_cell": "recurrent_mnist.cells",
}


def __getattr__(name: str):
    if name in _KERAS_NAMES:
        with notices_filtered():
            module = importlib.import_module(_KERAS_NAMES[name])
            probe_devices()
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recurrent_mnist' has no attribute {name!r}")


def _run_as_command_line() -> bool:
    # `python -m recurrent_mnist`: Python imports this package to find its `__main__` (with sys.argv[0]
    # set to "-m" meanwhile); the command line imports Keras itself when a command needs it.
    argv = getattr(sys, "orig_argv", [])
    return sys.argv[:1] == ["-m"] and "-m" in argv and argv[argv.index("-m") + 1 :][:1] == ["recurrent_mnist"]


if os.environ.get("RECURRENT_MNIST_DEFER_KERAS") != "1" and not _run_as_command_line():
    with notices_filtered():  # TensorFlow's start-up notices; anything else it prints still shows
        from recurrent_mnist.cells import available_cells, register_cell
        from recurrent_mnist.model import RowSequenceClassifier

        probe_devices()

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
