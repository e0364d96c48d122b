"""Train a RowSequenceClassifier, save it as .keras, and load it back with safe mode.

python examples/train_save_load.py            # the embedded sample, offline
python examples/train_save_load.py --epochs 5
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from recurrent_mnist import RowSequenceClassifier, datasets

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

data = datasets.load("mnist-sample")  # or datasets.load("mnist") with the internet or --data-dir
model = RowSequenceClassifier(cell="gru", units=64)
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
)
model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=64, validation_split=0.1, verbose=2)
loss, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
print(f"test accuracy {accuracy:.4f}")

with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "gru.keras")
    model.save(path)
    restored = keras.saving.load_model(path)  # safe_mode=True by default
    same = np.allclose(restored.predict(data.x_test[:100], verbose=0), model.predict(data.x_test[:100], verbose=0))
    print(f"reloaded from {path}: same predictions: {same}")
