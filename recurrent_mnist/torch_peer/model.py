"""`PeerClassifier`: `RowSequenceClassifier` written in PyTorch, with Keras's weight shapes and initial scheme.

Keras and PyTorch lay out a recurrent layer's weights alike (an input kernel
and a recurrent kernel over all gates, LSTM gates in the order input, forget,
cell, output), with one difference: PyTorch's LSTM and RNN add a second bias
(`bias_hh`) to the first, where Keras has one. Here that second bias is a
constant zero (a buffer, not a parameter), so the model computes what Keras's
does and has exactly its parameters. The GRU keeps both: Keras's default GRU
(`reset_after=True`) has an input and a recurrent bias, as PyTorch's does.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PeerClassifier"]

_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "simple_rnn": nn.RNN}


class PeerClassifier(nn.Module):
    """Classifies images by reading their rows as a sequence, as `RowSequenceClassifier` does.

    Args:
        cell: `"lstm"`, `"gru"` or `"simple_rnn"`.
        features: the image width (features per time step).
        units: hidden units of each recurrent layer.
        num_classes: number of output logits. Defaults to 10.
        num_layers: recurrent layers stacked on each other. Defaults to 1.
        bidirectional: each recurrent layer reads the rows both ways, the two
            directions concatenated. Defaults to False.
        dropout: fraction of each recurrent layer's inputs dropped while
            training, one mask per sequence for all time steps (Keras's input
            dropout; a bidirectional layer's two directions share the mask).
            Defaults to 0.

    Call arguments:
        images: `(N, H, W)` uint8 or float images, 0..255; scaled by 1/255 inside.

    Returns:
        Logits of shape `(N, num_classes)`.

    Example:

    >>> model = PeerClassifier("gru", features=28, units=32)
    >>> model(torch.zeros(2, 28, 28, dtype=torch.uint8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, cell, features, units, num_classes=10, num_layers=1, bidirectional=False, dropout=0.0):
        super().__init__()
        if cell not in _LAYERS:
            raise ValueError(f"`cell` must be one of {', '.join(_LAYERS)}. Received: cell={cell!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        self.cell, self.units, self.dropout = cell, units, dropout
        directions = 2 if bidirectional else 1
        # One module per layer, so that each layer's input is dropped as Keras drops it.
        self.recurrent = nn.ModuleList(
            _LAYERS[cell](inputs, units, batch_first=True, bidirectional=bidirectional)
            for inputs in [features] + [units * directions] * (num_layers - 1)
        )
        if cell != "gru":
            for layer in self.recurrent:
                for name in [name for name, _ in layer.named_parameters() if name.startswith("bias_hh")]:
                    zeros = torch.zeros_like(getattr(layer, name).detach())
                    delattr(layer, name)
                    layer.register_buffer(name, zeros)  # the layer picks it up on its next call
        self.head = nn.Linear(units * directions, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras's initial scheme: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases,
        LSTM forget-gate bias 1 (`unit_forget_bias`)."""
        with torch.no_grad():
            for layer in self.recurrent:
                for name, weight in layer.named_parameters():
                    if name.startswith("weight_ih"):
                        nn.init.xavier_uniform_(weight)
                    elif name.startswith("weight_hh"):
                        nn.init.orthogonal_(weight)
                    else:
                        nn.init.zeros_(weight)
                        if self.cell == "lstm" and name.startswith("bias_ih"):
                            weight[self.units : 2 * self.units] = 1.0
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, images):
        x = images.to(torch.float32) * (1.0 / 255.0)
        for layer in self.recurrent:
            if self.training and self.dropout:
                keep = 1.0 - self.dropout
                mask = torch.empty(x.shape[0], 1, x.shape[2], device=x.device).bernoulli_(keep) / keep
                x = x * mask
            x, state = layer(x)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        # (directions, N, units) -> (N, directions * units): forward then backward, as Keras's Bidirectional.
        return self.head(hidden.transpose(0, 1).reshape(hidden.shape[1], -1))
