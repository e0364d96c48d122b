"""Epoch time of recurrent-mnist against a PyTorch model of the same shape, measured side by side in one run.

Trains the project's default cell, the PyTorch peer and the plain Keras layer
for each cell and shape, in interleaved rounds of fresh processes, and writes
`<name>.jsonl`, `.csv`, `.md` and `.environment.json` under `--results-dir`.
The code is in `benchmarks/peer_speed/`; docs/speed.md ("Methods") says how it measures.

    python benchmarks/vs_pytorch.py --threads 2 --rounds 3 --name vs_pytorch

Needs PyTorch: `pip install -e ".[torch]"`.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the orchestrator imports TensorFlow with recurrent_mnist
sys.path.insert(0, str(Path(__file__).resolve().parent))  # `peer_speed`, also when this file is imported by path

from peer_speed.cli import main

if __name__ == "__main__":
    sys.exit(main())
