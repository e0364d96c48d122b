"""The measurements a comparison needs beyond accuracy: steady-state epoch time, inference, latency, memory."""

from __future__ import annotations

import resource
import sys
import time

import keras
import numpy as np

from recurrent_mnist.training.pipeline import INFERENCE_BATCH, input_pipeline

__all__ = ["LATENCY_CALLS", "measure_inference", "measure_latency", "peak_rss_mb", "steady_epoch_time"]

LATENCY_CALLS = 100


def steady_epoch_time(epoch_times: list[float]) -> float | None:
    """The median epoch time, the first epoch (tracing, compilation) excluded when there are several."""
    if not epoch_times:
        return None
    steady = epoch_times[1:] if len(epoch_times) > 1 else epoch_times
    return float(np.median(steady))


def measure_inference(model: keras.Model, x: np.ndarray, repeats: int = 3) -> float:
    """Samples per second of `model.predict` at a large batch (median of repeats, after a warm-up).

    The images go through `input_pipeline` (no autotune stall when the iterator is
    torn down, which otherwise adds seconds at random to a one-second measurement).
    """
    data = input_pipeline(x, None, INFERENCE_BATCH)
    model.predict(x[:INFERENCE_BATCH], batch_size=INFERENCE_BATCH, verbose=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if data is not None:
            model.predict(data, verbose=0)
        else:
            model.predict(x, batch_size=INFERENCE_BATCH, verbose=0)
        times.append(time.perf_counter() - start)
    return len(x) / float(np.median(times))


def measure_latency(model: keras.Model, x: np.ndarray, calls: int = LATENCY_CALLS) -> tuple[float, float]:
    """Single-image latency of `predict_on_batch` in milliseconds: (p50, p95), after a warm-up."""
    for i in range(5):
        model.predict_on_batch(x[i : i + 1])
    times = []
    for i in range(calls):
        image = x[i % len(x) : i % len(x) + 1]
        start = time.perf_counter()
        model.predict_on_batch(image)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
