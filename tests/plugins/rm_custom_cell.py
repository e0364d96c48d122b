"""A custom cell as a user would write one: a layer class of its own, registered with Keras and as a named cell.

The save-and-load matrix (`tests/test_saving.py`) builds models of it and loads them in a new process that
imports this module (`--import rm_custom_cell` on the command line).
"""

import keras

from recurrent_mnist import register_cell


@keras.saving.register_keras_serializable(package="rm_custom_cell")
class ReluRNN(keras.layers.SimpleRNN):
    """`keras.layers.SimpleRNN` with a ReLU activation unless told otherwise."""

    def __init__(self, units, activation="relu", **kwargs):
        super().__init__(units, activation=activation, **kwargs)


def relu_rnn(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
    return ReluRNN(
        units, return_sequences=return_sequences, dropout=dropout, recurrent_dropout=recurrent_dropout, name=name
    )


register_cell("relu_rnn", relu_rnn, overwrite=True)
