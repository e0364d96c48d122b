"""Use RowSequenceClassifier inside a bigger functional model, with a layer instance and a named cell.

python examples/compose_and_custom_cell.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from recurrent_mnist import RowSequenceClassifier, datasets, register_cell

data = datasets.load("mnist-sample")

# Any Keras RNN layer plugs in as the cell; the model stacks copies of it for num_layers > 1.
encoder = RowSequenceClassifier(keras.layers.LSTM(32, dropout=0.1), num_layers=2)

# A bigger model: the classifier's logits feed a softmax, as a layer among others.
inputs = keras.Input((28, 28), dtype="uint8")
probabilities = keras.layers.Softmax()(encoder(inputs))
model = keras.Model(inputs, probabilities)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data.x_train, data.y_train, epochs=1, batch_size=64, verbose=2)
print("functional model accuracy", model.evaluate(data.x_test, data.y_test, verbose=0)[1])


# A named cell of your own, usable by name (and saved by name: register it before loading).
def lstm_without_forget_bias(units, **kwargs):
    return keras.layers.LSTM(units, unit_forget_bias=False, **kwargs)


register_cell("lstm_no_forget_bias", lstm_without_forget_bias)
named = RowSequenceClassifier("lstm_no_forget_bias", units=16)
print("custom cell output shape", named(data.x_test[:4]).shape)
