"""Cells at equal size: the units that give each cell the parameter count of another.

At equal units the cells differ several-fold in size (an LSTM has four gates'
weights, a GRU three, a SimpleRNN one). The classic empirical comparisons of
gated cells (Chung et al. 2014; Jozefowicz et al. 2015) compare them at roughly
equal parameter counts instead: `matched_units` finds, for each cell, the units
whose whole model (stacking, bidirectional layers and the head included) comes
closest to a reference cell's.

Counts come from building the model (`RowSequenceClassifier.count_params()`),
so they are exact for any registered cell, including custom ones.
"""

from __future__ import annotations

import functools

from recurrent_mnist import settings
from recurrent_mnist.errors import ConfigError

__all__ = ["budget_units", "matched_units", "parameter_count"]


@functools.lru_cache(maxsize=1024)
def parameter_count(
    cell: str,
    units: int,
    *,
    layers: int,
    bidirectional: bool,
    image_shape: tuple[int, int],
    num_classes: int,
    reading: str = settings.READING.default,
) -> int:
    """The parameters of a `RowSequenceClassifier` of `cell` with `units`, for images of `image_shape` read so."""
    from recurrent_mnist.model import RowSequenceClassifier

    model = RowSequenceClassifier(
        cell, units=units, num_layers=layers, bidirectional=bidirectional, num_classes=num_classes, reading=reading
    )
    model.build((None, *image_shape))
    return int(model.count_params())


def closest_units(cell: str, target: int, **shape) -> int:
    """The units whose model comes closest to `target` parameters (the smaller units on a tie)."""
    low, high = settings.UNITS.minimum, 16
    while parameter_count(cell, high, **shape) < target and high < 2**16:
        low, high = high, high * 2
    while high - low > 1:  # the count grows with the units: the target lies between low and high
        middle = (low + high) // 2
        if parameter_count(cell, middle, **shape) < target:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda u: (abs(parameter_count(cell, u, **shape) - target), u))


def matched_units(cells: tuple[str, ...], units: int, layers_per_cell: dict | None = None, **shape) -> dict[str, int]:
    """Units per cell: the first cell keeps `units`; every other cell gets the units that bring
    its parameter count closest to the first's (the smaller units on a tie). `shape`: the
    keywords of `parameter_count` (`image_shape` a tuple); `layers_per_cell` as for `budget_units`.

    Example: a 64-unit LSTM on 28 x 28 images with 10 classes has 24,458
    parameters; a GRU comes closest at 75 units (24,385), a SimpleRNN at 138
    (24,436).
    """
    shapes = {cell: {**shape, "layers": (layers_per_cell or {}).get(cell, shape["layers"])} for cell in cells}
    target = parameter_count(cells[0], units, **shapes[cells[0]])
    return {cells[0]: units, **{cell: closest_units(cell, target, **shapes[cell]) for cell in cells[1:]}}


def budget_units(cells: tuple[str, ...], params: int, layers_per_cell: dict | None = None, **shape) -> dict[str, int]:
    """Units per cell whose model comes closest to `params` parameters (`bench --params`, the papers' setting).

    Args:
        cells: the cells to size.
        params: the parameter budget of each whole model (head included).
        layers_per_cell: `{cell: layers}` for cells stacked otherwise than `shape["layers"]`
            (IndRNN is published with several thin layers).
        **shape: `layers`, `bidirectional`, `image_shape` (a tuple), `num_classes`, `reading`, as for
            `parameter_count`.

    Raises:
        ConfigError: the budget is smaller than some cell's model at one unit.
    """
    shapes = {cell: {**shape, "layers": (layers_per_cell or {}).get(cell, shape["layers"])} for cell in cells}
    for cell in cells:
        smallest = parameter_count(cell, settings.UNITS.minimum, **shapes[cell])
        if smallest > params:
            raise ConfigError(
                f"`params` is too small for {cell}: its model has {smallest:,} parameters at one unit. "
                f"Received: params={params}",
                argument="params",
            )
    return {cell: closest_units(cell, params, **shapes[cell]) for cell in cells}
