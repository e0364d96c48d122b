"""Importing `recurrent_mnist` in the orchestrator without TensorFlow's start-up notices in its terminal."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import tempfile


@functools.cache
def quiet_import(name: str):
    """A module of `recurrent_mnist`, imported quietly: the package imports TensorFlow, whose start-up
    notices ignore TF_CPP_MIN_LOG_LEVEL in the orchestrator's terminal (they are shown if the import fails)."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            module = importlib.import_module(name)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return module
