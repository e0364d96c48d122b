"""Cells that misbehave on purpose, for the reliability tests (`--import rm_test_cells`).

- `nan_cell`: its output is NaN, so the loss is NaN from the first step (a diverging training).
- `crash_cell`: the training process dies by SIGKILL while building it (as the kernel's
  out-of-memory killer would do).
- `error_cell`: raises an ordinary Python error (as a broken custom layer would).
"""

import os
import signal

import keras

from recurrent_mnist import register_cell


class NaNRNN(keras.layers.SimpleRNN):
    def call(self, sequences, initial_state=None, mask=None, training=False):
        output = super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        return output * float("nan")


class CrashRNN(keras.layers.SimpleRNN):
    def build(self, input_shape):
        os.kill(os.getpid(), signal.SIGKILL)


class ErrorRNN(keras.layers.SimpleRNN):
    def build(self, input_shape):
        raise RuntimeError("this layer is broken on purpose")


def _factory(layer_class):
    def make(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
        return layer_class(units, return_sequences=return_sequences, name=name)

    return make


register_cell("nan_cell", _factory(NaNRNN), overwrite=True)
register_cell("crash_cell", _factory(CrashRNN), overwrite=True)
register_cell("error_cell", _factory(ErrorRNN), overwrite=True)
