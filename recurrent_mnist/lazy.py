"""A package's public names imported on first use, so that importing the package stays light.

A package lists its names and the submodule of each, and sets `__getattr__ = lazy_names(__name__, NAMES)`:
Python calls it (PEP 562) the first time a name is read, and the name is then kept on the package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that imports `package.<names[name]>` when `name` is first read."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
