"""The exceptions this package raises for mistakes a user can fix.

Each carries one sentence that names the file, argument or value at fault, in the
library's terms: an argument is named in backticks as Python callers write it
(`units`, `run_name`, `fresh=True`). The command line maps those names to its
flags (`--units`, `--run-name`, `--fresh`), prints the sentence and exits
non-zero without a traceback.
"""

from __future__ import annotations


class RecurrentMnistError(Exception):
    """Base class: a problem the user can fix, described in one sentence.

    Args:
        message: the sentence.
        argument: the argument at fault, where one is (`"units"`); the command
            line reports such an error as a usage error of the matching option.
    """

    def __init__(self, message: str, *, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class DatasetError(RecurrentMnistError, ValueError):
    """A data set cannot be found, read or validated."""


class ConfigError(RecurrentMnistError, ValueError):
    """A configuration value is out of range or inconsistent."""


class ResultsError(RecurrentMnistError):
    """A results folder cannot be used (wrong configuration, not writable)."""


class ModelFileError(RecurrentMnistError):
    """A saved model cannot be loaded safely."""
