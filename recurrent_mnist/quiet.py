"""TensorFlow's start-up notices, kept out of the user's way without hiding a real error.

TensorFlow's C++ runtime writes to file descriptor 2 while it loads and while
it probes for devices, before any Python logging setting applies, and
`TF_CPP_MIN_LOG_LEVEL` does not reach all of it (the CUDA stub's line and
absl's "before InitializeLog" warning come through at any level). On a CPU
machine every one of those lines is a notice: no CUDA driver, no GPU, the CPU
instructions the binary was not built for.

`notices_filtered()` captures descriptor 2 around a block and writes back every
line that is not one of the `NOTICES` below, so that a real error or warning
printed during the block still reaches the user; if the block raises, all of
it is written back.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

__all__ = ["NOTICES", "fd2_held", "is_notice", "notices_filtered", "probe_devices"]

# One pattern per known start-up notice of TensorFlow's CPU build (searched within each line).
NOTICES = tuple(
    re.compile(pattern)
    for pattern in (
        r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
        r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
        r"cuda_platform\.cc:\d+\] failed call to cuInit",
        r"cuda_(executor|diagnostics|driver)\.cc:\d+\]",
        r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
        r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$",
        r"oneDNN custom operations are on\.",
        r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"computation_placer\.cc:\d+\] computation placer already registered",
        r"TF-TRT Warning: Could not find TensorRT",
    )
)


def is_notice(line: str) -> bool:
    """Whether one line of TensorFlow's start-up output is a known notice (nothing to act on)."""
    return any(pattern.search(line) for pattern in NOTICES)


@contextlib.contextmanager
def fd2_held(write_back: Callable[[str, BaseException | None], str]) -> Iterator[None]:
    """Holds back what is written to file descriptor 2 during the block (by Python or C++ code alike).

    After the block, `write_back(text, error)` says what of the captured text to write to
    stderr, given the exception the block raised (None if it did not). Without a real
    descriptor 2 (an embedding host, a notebook kernel that replaced it) the block runs plainly.
    """
    saved = None
    with tempfile.TemporaryFile() as captured:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(captured.fileno(), 2)
        except (OSError, ValueError):
            saved = None
        error = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            if saved is not None:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = write_back(captured.read().decode(errors="replace"), error)
                if kept:
                    sys.stderr.write(kept)
                    sys.stderr.flush()


def _without_notices(text: str, error: BaseException | None) -> str:
    if error is not None:
        return text
    return "".join(line for line in text.splitlines(keepends=True) if not is_notice(line.rstrip("\n")))


def notices_filtered():
    """Runs the block with file descriptor 2 captured, then writes back what was not a notice (all if it raised)."""
    return fd2_held(_without_notices)


def probe_devices() -> None:
    """Lists TensorFlow's devices, when TensorFlow is loaded, so that its device notices come now.

    The probe is where TensorFlow calls cuInit and reports its failure on a
    machine without a GPU; called inside `notices_filtered()`, that notice is
    filtered with the others instead of appearing at the first operation.
    """
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        with contextlib.suppress(Exception):
            tf.config.list_physical_devices()
