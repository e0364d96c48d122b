"""What a user of another Keras backend does with the model; run by tests/test_backends.py in a new process.

    KERAS_BACKEND=jax python tests/on_backend.py FOLDER

FOLDER holds `images.npy` and models saved on TensorFlow (`tf-*.keras`). The script imports the package
(TensorFlow is installed: the report says whether the import loaded it), then makes TensorFlow unimportable,
as on a machine without it, and in that state trains a model in each precision policy (rank 3 and rank 4
inputs mixed) and predicts, loads the TensorFlow models and predicts, saves the models it trained
(`here-*.keras`, for TensorFlow to load) and loads them back. It writes to FOLDER:

- `outputs.npz`: each model's predictions under its file's stem (`reloaded-*`: loaded back here);
- `report.json`: the backend; whether importing the package imported TensorFlow; each policy's logits
  dtype (or its error); the classes of the loaded recurrent layers and why they ran the stock Keras code.
"""

import json
import sys
from pathlib import Path

import numpy as np

folder = Path(sys.argv[1])
report = {}

import keras  # noqa: E402 - the report says what each step brings in

import recurrent_mnist  # noqa: E402
from recurrent_mnist.fast_rnn import fast_path_refusal  # noqa: E402

report["backend"] = keras.backend.backend()
report["import loaded tensorflow"] = "tensorflow" in sys.modules
# From here on, any `import tensorflow` fails. Keras then takes TensorFlow as absent where it asks for it
# (its serialization asks whether an object is a tf.TensorShape, which imports TensorFlow where it can).
sys.modules["tensorflow"] = None

images = np.load(folder / "images.npy")
labels = np.arange(len(images)) % 10
outputs, trained = {}, {}
for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
    keras.config.set_dtype_policy(policy)
    try:
        model = recurrent_mnist.RowSequenceClassifier("gru", units=4)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(images, labels, epochs=1, verbose=0)
        if policy == "float32":
            model.fit(images[..., None].astype("float32"), labels, epochs=1, verbose=0)
        logits = model.predict(images[..., None], verbose=0)
    except Exception as error:  # noqa: BLE001 - recorded: a backend may lack a precision
        report.setdefault("policies", {})[policy] = f"{type(error).__name__}: {error}"[:300]
        continue
    finally:
        keras.config.set_dtype_policy("float32")
    report.setdefault("policies", {})[policy] = str(logits.dtype)
    outputs[f"here-{policy}"] = logits
    trained[policy] = model

for path in sorted(folder.glob("tf-*.keras")):
    model = keras.saving.load_model(path)  # safe_mode=True
    outputs[path.stem] = model.predict(images, verbose=0)
    layers = [getattr(layer, "forward_layer", layer) for layer in model.recurrent_layers]
    report.setdefault("loaded", {})[path.stem] = {
        "classes": [type(layer).__name__ for layer in layers],
        "keras_classes": [
            next(c.__name__ for c in type(x).__mro__ if c.__module__.startswith("keras.")) for x in layers
        ],
        "refusal": fast_path_refusal(layers[0], images.astype("float32")),
    }

for policy, model in trained.items():
    model.save(folder / f"here-{policy}.keras")
    restored = keras.saving.load_model(folder / f"here-{policy}.keras")
    outputs[f"reloaded-{policy}"] = restored.predict(images, verbose=0)

np.savez(folder / "outputs.npz", **outputs)
(folder / "report.json").write_text(json.dumps(report, indent=1))
