"""The measurements a comparison needs beyond accuracy: steady-state epoch time, inference, latency, memory.

No Keras import: the PyTorch peer (`recurrent_mnist.torch_peer`) measures its
epochs and memory with the same functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recurrent_mnist.training.pipeline import INFERENCE_BATCH, input_pipeline

if TYPE_CHECKING:
    import keras

__all__ = [
    "LATENCY_CALLS",
    "NO_STEADY_EPOCH",
    "MemoryWatch",
    "best_epoch",
    "measure_inference",
    "measure_latency",
    "process_peak_rss_mb",
    "steady_epoch_time",
    "steady_epochs",
]

LATENCY_CALLS = 100

NO_STEADY_EPOCH = (
    "no steady-state epoch time: every epoch trained in a process included tracing and compilation "
    "(the first epoch of each process); train 2 or more epochs"
)


def steady_epochs(history: list[dict]) -> list[float]:
    """The training times of the epochs that did not include tracing and compilation (or warm-up).

    `Monitor` marks the first epoch that each process trains (`includes_compilation`):
    a run resumed from a checkpoint compiles again. An entry without the mark (an
    older checkpoint) counts as compiling when it is the first. The PyTorch peer
    compiles nothing but marks its first epoch `warm_up`, kept out alike.
    """
    return [
        float(entry["epoch_time_s"])
        for index, entry in enumerate(history)
        if not entry.get("includes_compilation", index == 0)
        and not entry.get("warm_up")
        and entry.get("epoch_time_s") is not None
    ]


def best_epoch(history: list[dict]) -> tuple[float | None, int | None]:
    """Adds each epoch's cumulative `train_time_s` to `history`, and returns the best
    validation accuracy and its epoch (None, None without a finite one)."""
    elapsed = 0.0
    for entry in history:
        elapsed += entry["epoch_time_s"]
        entry["train_time_s"] = elapsed
    scored = [
        (entry["val_accuracy"], entry["epoch"])
        for entry in history
        if entry.get("val_accuracy") is not None and math.isfinite(entry["val_accuracy"])
    ]
    return max(scored, key=lambda pair: pair[0]) if scored else (None, None)


def steady_epoch_time(history: list[dict]) -> float | None:
    """The median training time of the epochs without compilation; None when there is none.

    An epoch that includes tracing and compilation is never a steady-state time,
    so one epoch gives None (`NO_STEADY_EPOCH` says why).
    """
    times = steady_epochs(history)
    return float(np.median(times)) if times else None


def measure_inference(model: keras.Model, x: np.ndarray, repeats: int = 3) -> float:
    """Samples per second of `model.predict` at a large batch (median of repeats, after a warm-up pass).

    The images go through `input_pipeline` (no autotune stall when the iterator is
    torn down, which otherwise adds seconds at random to a one-second measurement).
    """
    data = input_pipeline(x, None, INFERENCE_BATCH)
    times = []
    for _ in range(repeats + 1):  # the first pass warms up: it traces (and under XLA compiles) every batch shape
        start = time.perf_counter()
        if data is not None:
            model.predict(data, verbose=0)
        else:
            model.predict(x, batch_size=INFERENCE_BATCH, verbose=0)
        times.append(time.perf_counter() - start)
    times = times[1:]
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


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_process_peak_kb = 0.0  # the highest peak seen before a `MemoryWatch` reset the kernel's


def _status_kb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rusage_peak_kb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform == "darwin" else float(peak)  # macOS: bytes; Linux: KiB


def process_peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB: TensorFlow, the data and every variant it trained.

    From the kernel's `VmHWM` where there is `/proc`; `getrusage` only without it, because Linux keeps a
    process's `ru_maxrss` across `fork` and `exec`: a training process that bench started would report
    bench's own peak when that is higher.
    """
    global _process_peak_kb
    _process_peak_kb = max(_process_peak_kb, _status_kb("VmHWM") or _rusage_peak_kb())
    return _process_peak_kb / 1024.0


@dataclasses.dataclass
class MemoryWatch:
    """What one variant adds to the process's memory: its peak RSS over the RSS it started from.

    `with MemoryWatch() as watch:` around a variant's work; then `watch.growth_mb`.
    The baseline is the resident memory when the block starts (after imports and
    data loading). On Linux the kernel's peak is reset there (`/proc/self/clear_refs`),
    so the peak is this variant's alone, also when several variants train in one
    process; where it cannot be reset, a thread samples the resident memory every
    `interval_s` instead (it may miss a spike shorter than that). Without
    `/proc` (not Linux) `growth_mb` stays None.
    """

    interval_s: float = 0.02
    baseline_kb: float | None = None
    peak_kb: float | None = None
    method: str | None = None
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def growth_mb(self) -> float | None:
        if self.baseline_kb is None or self.peak_kb is None:
            return None
        return max(0.0, self.peak_kb - self.baseline_kb) / 1024.0

    def __enter__(self) -> MemoryWatch:
        process_peak_rss_mb()  # keep the peak so far before the kernel's is reset
        self.baseline_kb = _status_kb("VmRSS")
        if self.baseline_kb is None:
            return self
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
            self.method = "kernel peak since reset"
        except OSError:
            self.method = "sampled"
            self.peak_kb = self.baseline_kb
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = _status_kb("VmRSS")
            if rss is not None:
                self.peak_kb = max(self.peak_kb, rss)

    def __exit__(self, *exc_info) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            with contextlib.suppress(TypeError):
                self.peak_kb = max(self.peak_kb, _status_kb("VmRSS"))
        elif self.method is not None:
            self.peak_kb = _status_kb("VmHWM")
        process_peak_rss_mb()
