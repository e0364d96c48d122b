"""The exceptions this package raises for mistakes a user can fix.

Each carries one sentence that names the file, option or value at fault; the CLI
prints it and exits non-zero without a traceback.
"""

from __future__ import annotations


class RecurrentMnistError(Exception):
    """Base class: a problem the user can fix, described in one sentence."""


class DatasetError(RecurrentMnistError, ValueError):
    """A data set cannot be found, read or validated."""


class ConfigError(RecurrentMnistError, ValueError):
    """A configuration value is out of range or inconsistent."""


class ResultsError(RecurrentMnistError):
    """A results folder cannot be used (wrong configuration, not writable)."""


class ModelFileError(RecurrentMnistError):
    """A saved model cannot be loaded safely."""
