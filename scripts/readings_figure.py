"""Draws one digit of the embedded sample as each reading sees it: docs/images/readings.png.

    python scripts/readings_figure.py [--index 0] [--out docs/images/readings.png]

`rows` feeds 28 steps of 28 values; `pixels` feeds the same 784 values one at a
time, row after row; `permuted-pixels` feeds them in the model's fixed order
(permutation seed 0). The two pixel readings are drawn as the value at each step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from recurrent_mnist.datasets import load
from recurrent_mnist.readings import draw_permutation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0, help="which test image of the sample")
    parser.add_argument("--out", type=Path, default=Path("docs/images/readings.png"))
    args = parser.parse_args()

    image = load("mnist-sample").x_test[args.index]
    pixels = image.reshape(-1)
    permuted = pixels[np.asarray(draw_permutation(pixels.size, 0))]
    figure = plt.figure(figsize=(10, 3.6))
    grid = figure.add_gridspec(2, 2, width_ratios=[1, 3])
    rows = figure.add_subplot(grid[:, 0])
    rows.imshow(image, cmap="gray_r", interpolation="nearest")
    rows.set_title("rows: 28 steps of 28 pixels", fontsize=9)
    rows.set_xticks([])
    rows.set_yticks([0, 27], ["step 1", "step 28"], fontsize=8)
    for position, (title, sequence) in enumerate(
        [
            ("pixels: 784 steps of 1 pixel, row after row", pixels),
            ("permuted-pixels: the same pixels, seed 0", permuted),
        ]
    ):
        axis = figure.add_subplot(grid[position, 1])
        axis.fill_between(np.arange(1, sequence.size + 1), sequence, step="mid", color="black", linewidth=0)
        axis.set_xlim(1, sequence.size)
        axis.set_ylim(0, 255)
        axis.set_title(title, fontsize=9)
        axis.set_yticks([])
        axis.tick_params(labelsize=8)
    figure.axes[-1].set_xlabel("time step", fontsize=8)
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110, metadata={"Software": None})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
