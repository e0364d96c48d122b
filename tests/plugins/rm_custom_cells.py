"""A well-behaved custom cell, registered the way a user's own module would (`--import rm_custom_cells`)."""

import keras

from recurrent_mnist import register_cell


def plain_gru(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
    return keras.layers.GRU(units, return_sequences=return_sequences, dropout=dropout, name=name)


register_cell("plain_gru", plain_gru, overwrite=True)
