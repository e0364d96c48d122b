"""The independently recurrent network (IndRNN) of Li, Li, Cook, Zhu and Gao (CVPR 2018), as a Keras RNN layer.

Each unit sees its own previous output only, through one recurrent weight:
`h_t = relu(W x_t + u * h_{t-1} + b)`, with `u` a vector rather than a matrix.
Gradients through T steps are then products of `u` per unit, and the paper keeps
them from exploding by holding `|u| <= 2 ** (1 / T)` for ReLU; `IndRNN` sets that
bound from the length of the sequences it is built for, unless told another.
"""

from __future__ import annotations

import numbers

import keras

__all__ = ["IndRNN", "IndRNNCell", "RecurrentMaxAbs"]


# The arguments an `IndRNN` layer hands to its cell.
_CELL_ARGUMENTS = (
    "activation",
    "use_bias",
    "recurrent_max_abs",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
)


def _check_units(units) -> int:
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
        raise ValueError(f"`units` must be an integer >= 1. Received: units={units!r}")
    return int(units)


def _check_max_abs(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`recurrent_max_abs` must be a positive number or None. Received: {value!r}")
    return float(value)


def default_max_abs(time_steps) -> float | None:
    """The paper's bound on `|u|` for ReLU over `time_steps` steps, `2 ** (1 / T)`; None when T is unknown."""
    return None if not time_steps else 2.0 ** (1.0 / int(time_steps))


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class RecurrentMaxAbs(keras.constraints.Constraint):
    """Clips each weight to `[-max_abs, max_abs]` after every optimizer step.

    Args:
        max_abs: the largest magnitude a weight keeps.
    """

    def __init__(self, max_abs):
        self.max_abs = _check_max_abs(max_abs)

    def __call__(self, w):
        return keras.ops.clip(w, -self.max_abs, self.max_abs)

    def get_config(self):
        return {"max_abs": self.max_abs}


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class IndRNNCell(keras.layers.Layer):
    """One step of an IndRNN: `h = activation(x @ kernel + recurrent_kernel * h_prev + bias)`.

    Args:
        units: the number of units (and of recurrent weights, one each).
        activation: defaults to `"relu"`, the paper's choice.
        use_bias: whether to add a bias. Defaults to True.
        recurrent_max_abs: the bound on `|recurrent_kernel|`, kept by a
            constraint. Defaults to None: `2 ** (1 / T)` when the layer
            knows the number of steps T, else no bound.
        kernel_initializer: defaults to `"glorot_uniform"`.
        recurrent_initializer: defaults to uniform in `[0, bound]` (`[0, 1]`
            without a bound).
        bias_initializer: defaults to `"zeros"`.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        units,
        activation="relu",
        use_bias=True,
        recurrent_max_abs=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _check_units(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.recurrent_max_abs = _check_max_abs(recurrent_max_abs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = (
            None if recurrent_initializer is None else keras.initializers.get(recurrent_initializer)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.state_size = self.units
        self.output_size = self.units
        self.time_steps = None  # set by `IndRNN.build` from the sequences' length

    def bound(self):
        """The bound on `|recurrent_kernel|` in force: the given one, else the paper's for T steps, else None."""
        return self.recurrent_max_abs if self.recurrent_max_abs is not None else default_max_abs(self.time_steps)

    def build(self, input_shape):
        bound = self.bound()
        recurrent_initializer = self.recurrent_initializer or keras.initializers.RandomUniform(0.0, bound or 1.0)
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer=self.kernel_initializer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units,),
            initializer=recurrent_initializer,
            constraint=None if bound is None else RecurrentMaxAbs(bound),
            name="recurrent_kernel",
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias")
            if self.use_bias
            else None
        )
        self.built = True

    def call(self, inputs, states, training=False):
        previous = states[0] if isinstance(states, (list, tuple)) else states
        z = keras.ops.matmul(inputs, self.kernel) + self.recurrent_kernel * previous
        if self.bias is not None:
            z = z + self.bias
        output = self.activation(z)
        return output, [output]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "recurrent_max_abs": self.recurrent_max_abs,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": None
            if self.recurrent_initializer is None
            else keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@keras.saving.register_keras_serializable(package="recurrent_mnist")
class IndRNN(keras.layers.RNN):
    """An IndRNN layer: `IndRNNCell` over a sequence, with the arguments of `keras.layers.SimpleRNN`.

    Args:
        units: the number of units.
        dropout: fraction of the inputs dropped while training, one mask per
            sequence. Defaults to 0.
        recurrent_dropout: must be 0: each unit's recurrence is one weight,
            with no recurrent projection to drop.
        seed: seeds the dropout mask.
        **kwargs: the cell's arguments (`activation`, `use_bias`,
            `recurrent_max_abs`, `kernel_initializer`, `recurrent_initializer`,
            `bias_initializer`; see `IndRNNCell`: the bound on `|u|` defaults
            to the paper's `2 ** (1 / T)` for the T steps the layer is built
            for), and those of `keras.layers.RNN` (`return_sequences`,
            `return_state`, `go_backwards`, `stateful`, `unroll`, `name`,
            `dtype`, ...).

    Example:

    >>> import numpy as np
    >>> layer = IndRNN(8)
    >>> layer(np.zeros((2, 784, 1), "float32")).shape
    TensorShape([2, 8])
    >>> round(layer.cell.bound(), 5)  # 2 ** (1 / 784)
    1.00088
    """

    def __init__(self, units, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        if recurrent_dropout:
            raise ValueError(
                "`recurrent_dropout` must be 0 for IndRNN: each unit's recurrence is one weight. "
                f"Received: recurrent_dropout={recurrent_dropout!r}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be a number in [0, 1). Received: dropout={dropout!r}")
        cell_arguments = {name: kwargs.pop(name) for name in _CELL_ARGUMENTS if name in kwargs}
        cell = IndRNNCell(units, **cell_arguments, dtype=kwargs.get("dtype"), name="indrnn_cell")
        super().__init__(cell, **kwargs)
        self.dropout = float(dropout)
        self.recurrent_dropout = 0.0
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def units(self):
        return self.cell.units

    def build(self, sequences_shape, initial_state_shape=None):
        self.cell.time_steps = sequences_shape[1]
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if training and self.dropout > 0:
            batch, _, features = keras.ops.shape(sequences)
            sequences = keras.random.dropout(
                sequences, self.dropout, noise_shape=(batch, 1, features), seed=self.seed_generator
            )
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell = self.cell.get_config()
        own = {key: cell[key] for key in ("units", *_CELL_ARGUMENTS)}
        return {**config, **own, "dropout": self.dropout, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
