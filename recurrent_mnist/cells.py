"""The registry of named recurrent cells that `RowSequenceClassifier(cell=...)` accepts.

A cell name maps to a factory that builds one Keras RNN layer:
`factory(units, *, return_sequences, dropout, recurrent_dropout, name)`.
`"lstm"`, `"gru"` and `"simple_rnn"` are built in; `register_cell` adds more.
Names are matched case-insensitively, with `-` read as `_`; the names
themselves are kept without Keras in `recurrent_mnist.cell_names`, which a
configuration checks a name against.

The built-in names build `recurrent_mnist.fast_rnn` layers: the stock Keras
layers (same weights, config and behaviour) with a faster TensorFlow CPU path.
`"keras_lstm"`, `"keras_gru"` and `"keras_simple_rnn"` build the plain Keras
layers, so that a comparison can show what the fast path buys. `"indrnn"` builds
`recurrent_mnist.fast_rnn.FastIndRNN`: the independently recurrent network of
`recurrent_mnist.indrnn.IndRNN` with the same fast path; `"keras_indrnn"` builds
`IndRNN` itself, on Keras's own RNN loop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import keras

from recurrent_mnist import cell_names, environment
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.fast_rnn import FastGRU, FastIndRNN, FastLSTM, FastSimpleRNN
from recurrent_mnist.indrnn import IndRNN

__all__ = [
    "available_cells",
    "canonical_cell_name",
    "get_cell_factory",
    "import_cell_modules",
    "register_cell",
    "resolve_imports",
]

CellFactory = Callable[..., keras.layers.Layer]


def register_cell(name: str, factory: CellFactory, *, aliases: Iterable[str] = (), overwrite: bool = False) -> None:
    """Registers a named recurrent cell.

    Args:
        name: the cell's name, e.g. `"indrnn"`.
        factory: a callable `factory(units, *, return_sequences, dropout,
            recurrent_dropout, name)` returning a Keras RNN layer (a
            `keras.layers.RNN` subclass or any layer mapping `(N, T, F)` to
            `(N, units)`, or `(N, T, units)` with `return_sequences=True`).
            Models that use a registered name can be saved; loading them needs
            the same registration in the loading process.
        aliases: other names for the same cell.
        overwrite: whether to replace an existing registration.

    Raises:
        ValueError: the name or an alias is taken and `overwrite` is False.

    Example:

    >>> import keras
    >>> def wide_gru(units, **kwargs):
    ...     return keras.layers.GRU(units * 2, **kwargs)
    >>> register_cell("wide_gru", wide_gru)
    >>> "wide_gru" in available_cells()
    True
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable; received {factory!r}")
    _FACTORIES[cell_names.add(name, aliases, overwrite=overwrite)] = factory


def canonical_cell_name(name: str) -> str:
    """Returns the registered name for `name` or one of its aliases.

    Raises:
        ValueError: the name is unknown; the message lists the valid names.
    """
    return cell_names.canonical(name)


def get_cell_factory(name: str) -> CellFactory:
    """Returns the factory registered under `name` (or an alias)."""
    return _FACTORIES[canonical_cell_name(name)]


def available_cells() -> tuple[str, ...]:
    """The registered cell names, without aliases, in registration order."""
    return cell_names.registered()


def resolve_imports(entries: Iterable[str]) -> tuple[str, ...]:
    """`--import` entries as every process can import them: module names as given, paths made absolute
    (a training process may start elsewhere)."""
    return tuple(
        entry if (path := environment.import_path(entry)) is None else str(path.resolve()) for entry in entries
    )


def import_cell_modules(modules: Iterable[str]) -> None:
    """Imports modules that register cells (`register_cell`) as a side effect.

    Each entry is a module name (looked for on Python's path, then in the
    current folder), a `.py` file, or a folder whose `.py` files are imported
    in name order. The CLI's `--import` option uses this, in the main process
    and in every isolated training process, so that named custom cells
    resolve everywhere; a file already imported from the same place is not
    imported again.

    Raises:
        ConfigError: a module cannot be found or its import fails.
    """
    for entry in modules:
        path = environment.import_path(entry)
        if path is None:
            _import_name(entry)
        elif path.is_file():
            _import_file(entry, path)
        elif path.is_dir():
            for file in sorted(path.glob("*.py")):
                _import_file(entry, file)
        else:
            raise ConfigError(
                f"`imports`: {entry} is not a file or folder (looked at {path.resolve()})", argument="imports"
            )


def _import_name(name: str) -> None:
    import importlib

    try:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            here = os.getcwd()
            if exc.name != name.split(".")[0] or here in sys.path:
                raise
            sys.path.append(here)  # `python -m` finds modules in the current folder; so does --import
            importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0]:
            raise _failed(name, exc) from None
        raise ConfigError(
            f"`imports`: no module named {name} on Python's path or in the current folder ({os.getcwd()}); "
            f"give the file instead (--import path/to/{name.split('.')[-1]}.py) or add its folder to PYTHONPATH",
            argument="imports",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one sentence
        raise _failed(name, exc) from None


def _import_file(entry: str, path: Path) -> None:
    import importlib.util

    path = path.resolve()
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"`imports`: {entry} cannot be imported as Python source ({path})", argument="imports")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one sentence
        sys.modules.pop(name, None)
        raise _failed(str(path), exc) from None


def _failed(what: str, exc: Exception) -> ConfigError:
    return ConfigError(f"`imports`: importing {what} failed: {type(exc).__name__}: {exc}", argument="imports")


def _keras_layer(layer_class: type[keras.layers.Layer]) -> CellFactory:
    def factory(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
        return layer_class(
            units,
            return_sequences=return_sequences,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=name,
        )

    factory.__name__ = f"make_{layer_class.__name__}"
    factory.__doc__ = f"Builds a `{layer_class.__module__}.{layer_class.__name__}` layer."
    return factory


# The built-in names (`cell_names.BUILTIN_CELLS`, registered there with their aliases).
_FACTORIES: dict[str, CellFactory] = {
    "lstm": _keras_layer(FastLSTM),
    "gru": _keras_layer(FastGRU),
    "simple_rnn": _keras_layer(FastSimpleRNN),
    "keras_lstm": _keras_layer(keras.layers.LSTM),
    "keras_gru": _keras_layer(keras.layers.GRU),
    "keras_simple_rnn": _keras_layer(keras.layers.SimpleRNN),
    "indrnn": _keras_layer(FastIndRNN),
    "keras_indrnn": _keras_layer(IndRNN),
}
