"""Training and measuring one model variant: the unit of work of `bench`, `train` and `tune`.

- `config`: `TrainConfig`, checked against `recurrent_mnist.settings` (no TensorFlow);
- `pipeline`: the fixed validation split, the `tf.data` input, the compiled loss;
- `callbacks`: epoch timing and progress (`Monitor`), resumable checkpoints;
- `measure`: steady-state epoch time, inference throughput, latency, memory;
- `variant`: `train_variant`, which puts them together.

The names below are imported on first use, and `config`, `pipeline` and
`measure` import no Keras themselves: a process that must not load TensorFlow
(the PyTorch peer's worker, `recurrent_mnist.torch_peer`) takes its
configuration, validation split and measurements from here.
"""

from recurrent_mnist.lazy import lazy_names

# The public names, and the module of each.
_NAMES = {
    "AUTO_XLA_MAX_BATCH": "config",
    "TrainConfig": "config",
    "steps_per_execution_for": "config",
    "NO_STEADY_EPOCH": "measure",
    "MemoryWatch": "measure",
    "measure_inference": "measure",
    "measure_latency": "measure",
    "process_peak_rss_mb": "measure",
    "steady_epoch_time": "measure",
    "INFERENCE_BATCH": "pipeline",
    "compile_model": "pipeline",
    "input_pipeline": "pipeline",
    "split_validation": "pipeline",
    "VariantResult": "variant",
    "train_variant": "variant",
    "release_models": "variant",
}


__getattr__ = lazy_names(__name__, _NAMES)


__all__ = sorted(_NAMES)
