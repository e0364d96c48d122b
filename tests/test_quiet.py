"""The library's import is quiet on a CPU machine, without hiding a real error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recurrent_mnist.quiet import is_notice, notices_filtered

NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796680639.598930   19853 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796680651.615501   19853 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796680639.769150   19853 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]


def test_known_notices_are_filtered_and_any_other_line_is_written_back(capfd):
    assert all(map(is_notice, NOTICES))
    with notices_filtered():
        for line in NOTICES:
            os.write(2, (line + "\n").encode())
        os.write(2, b"E0000 some_kernel.cc:12] a real error\n")
    err = capfd.readouterr().err
    assert err == "E0000 some_kernel.cc:12] a real error\n"


def test_a_failing_block_writes_back_everything(capfd):
    with pytest.raises(RuntimeError), notices_filtered():
        os.write(2, (NOTICES[1] + "\n").encode())
        raise RuntimeError("import failed")
    assert "cudart_stub" in capfd.readouterr().err


@pytest.mark.slow
def test_importing_the_library_prints_nothing():
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CPP", "RECURRENT_MNIST"))}
    done = subprocess.run(
        [sys.executable, "-c", "import recurrent_mnist, keras; keras.ops.convert_to_tensor([1.0]) + 1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
