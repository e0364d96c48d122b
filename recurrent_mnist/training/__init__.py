"""Training and measuring one model variant: the unit of work of `bench`, `train` and `tune`.

- `config`: `TrainConfig`, checked against `recurrent_mnist.settings` (no TensorFlow);
- `pipeline`: the fixed validation split, the `tf.data` input, the compiled loss;
- `callbacks`: epoch timing and progress (`Monitor`), resumable checkpoints;
- `measure`: steady-state epoch time, inference throughput, latency, memory;
- `variant`: `train_variant`, which puts them together.
"""

from recurrent_mnist.training.config import AUTO_XLA_MAX_BATCH, TrainConfig, steps_per_execution_for
from recurrent_mnist.training.measure import (
    NO_STEADY_EPOCH,
    MemoryWatch,
    measure_inference,
    measure_latency,
    process_peak_rss_mb,
    steady_epoch_time,
)
from recurrent_mnist.training.pipeline import INFERENCE_BATCH, compile_model, input_pipeline, split_validation
from recurrent_mnist.training.variant import VariantResult, train_variant

__all__ = [
    "AUTO_XLA_MAX_BATCH",
    "INFERENCE_BATCH",
    "NO_STEADY_EPOCH",
    "MemoryWatch",
    "TrainConfig",
    "VariantResult",
    "compile_model",
    "input_pipeline",
    "measure_inference",
    "measure_latency",
    "process_peak_rss_mb",
    "split_validation",
    "steady_epoch_time",
    "steps_per_execution_for",
    "train_variant",
]
