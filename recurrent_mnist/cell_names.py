"""The names of the recurrent cells, without Keras: the built-in ones and those `register_cell` adds.

`recurrent_mnist.cells` keeps the layer factory of each name; this table is
what a configuration checks a cell name against (`settings.check_cells`), so
that checking one needs no Keras. Names are matched case-insensitively, with
`-` read as `_`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["BUILTIN_CELLS", "add", "canonical", "normalize", "registered"]

# The cells `recurrent_mnist.cells` builds itself, each with its aliases: the fast layers, the stock Keras ones,
# then the independently recurrent network (`recurrent_mnist.indrnn`), fast and on Keras's own RNN loop.
BUILTIN_CELLS = {
    "lstm": (),
    "gru": (),
    "simple_rnn": ("rnn", "simplernn"),
    "keras_lstm": (),
    "keras_gru": (),
    "keras_simple_rnn": ("keras_rnn", "keras_simplernn"),
    "indrnn": ("ind_rnn",),
    "keras_indrnn": (),
}

_NAMES = dict.fromkeys(BUILTIN_CELLS)  # in registration order
_ALIASES = {alias: name for name, aliases in BUILTIN_CELLS.items() for alias in aliases}


def normalize(name: str) -> str:
    """`name` as the table keeps it: stripped, lower case, `-` read as `_`."""
    return name.strip().lower().replace("-", "_")


def add(name: str, aliases: Iterable[str] = (), *, overwrite: bool = False) -> str:
    """Adds a cell name and its aliases; returns the name as kept (`normalize`).

    Raises:
        ValueError: the name or an alias is taken and `overwrite` is False.
    """
    key = normalize(name)
    names = [key, *(normalize(alias) for alias in aliases)]
    if not overwrite:
        taken = [n for n in names if n in _NAMES or n in _ALIASES]
        if taken:
            raise ValueError(f"cell name {taken[0]!r} is already registered; pass overwrite=True to replace it")
    _NAMES[key] = None
    _ALIASES.pop(key, None)
    for alias in names[1:]:
        _ALIASES[alias] = key
    return key


def canonical(name: str) -> str:
    """The registered name for `name` or one of its aliases.

    Raises:
        TypeError: `name` is not a string.
        ValueError: the name is unknown; the message lists the valid names.

    Example:

    >>> canonical("SimpleRNN")
    'simple_rnn'
    """
    if not isinstance(name, str):
        raise TypeError(f"a cell name must be a string; received {name!r}")
    key = normalize(name)
    key = _ALIASES.get(key, key)
    if key not in _NAMES:
        valid = ", ".join(registered())
        raise ValueError(f"Unknown cell {name!r}. Valid cells: {valid} (or a Keras RNN layer instance).")
    return key


def registered() -> tuple[str, ...]:
    """The registered cell names, without aliases, in registration order."""
    return tuple(_NAMES)
