"""The speed scripts profile_step.py, latency.py and long_sequences.py: the trace they read, the tables they write."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    sys.path.insert(0, str(BENCHMARKS))  # profile_step imports peer_speed's FLOP count
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def profile():
    return _script("profile_step")


@pytest.fixture(scope="module")
def latency():
    return _script("latency")


def test_op_types_fall_into_categories(profile):
    assert [profile.category(op) for op in ("MatMul", "_MklNativeFusedMatMul", "_MklBatchMatMulV2")] == [
        "matrix product"
    ] * 3
    assert profile.category("ConcatV2") == profile.category("Split") == "data movement"
    assert profile.category("ResourceApplyAdam") == "optimizer and variables"
    assert profile.category("TanhGrad") == profile.ELEMENTWISE


def test_only_the_hosts_tensorflow_ops_are_read_from_a_trace(profile):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    host = space.planes.add(name="/host:CPU")
    names = {1: "rnn/MatMul:_MklMatMul", 2: "ExecutorState::Process", 3: "__inference_step:Run", 4: "Run", 5: "x:Tanh"}
    for key, name in names.items():
        host.event_metadata[key].name = name
    line = host.lines.add(id=7, timestamp_ns=1)
    for key, duration in ((1, 5_000_000), (2, 9_000_000), (3, 9_000_000), (4, 1), (5, 2_000_000)):
        line.events.add(metadata_id=key, offset_ps=10, duration_ps=duration)
    other = space.planes.add(name="/device:TPU:0")
    other.event_metadata[1].name = "y:MatMul"
    other.lines.add().events.add(metadata_id=1, duration_ps=1)
    found = list(profile._events(space))
    assert [(event[3], event[4], event[2]) for event in found] == [
        ("rnn/MatMul", "_MklMatMul", 5_000_000),
        ("x", "Tanh", 2_000_000),
    ]
    assert found[0][1] == 1_000 + 10  # the line's start in picoseconds, plus the event's offset


def test_the_latency_table_compares_serve_with_pytorch(latency):
    row = {"cell": "gru", "units": 8}
    for impl, p50 in (("predict_on_batch", 1.0), ("serve", 0.4), ("torch", 0.5)):
        row[impl] = {"p50": p50, "p95": 2 * p50}
    header = {"name": "t", "command": "c", "code": "x", "cpu": "y", "threads": 1, "calls": 5, "rounds": 1}
    text = latency.markdown([row], {**header, "impls": ["predict_on_batch", "serve", "torch"]})
    assert "| gru | 8 | 1.000 (2.000) | 0.400 (0.800) | 0.500 (1.000) | 0.80 |" in text
    row["tflite"] = {"p50": 0.1, "p95": 0.2}
    text = latency.markdown([row], {**header, "impls": ["serve", "tflite", "torch"]})
    assert "| serve / torch | tflite / torch |" in text
    assert "| gru | 8 | 0.400 (0.800) | 0.100 (0.200) | 0.500 (1.000) | 0.80 | 0.20 |" in text
    times = iter(range(100))
    p50, p95 = latency._percentiles(lambda image: next(times), list(range(64)), 20)
    assert p50 <= p95


@pytest.mark.slow
def test_the_long_sequence_script_measures_both_paths_and_names_its_command(tmp_path):
    long_sequences = _script("long_sequences")
    args = ["--cells", "simple_rnn", "--lengths", "6", "--units", "4", "--batch", "8", "--steps", "1"]
    assert long_sequences.main([*args, "--threads", "1", "--results-dir", str(tmp_path), "--name", "tiny"]) == 0
    table = (tmp_path / "tiny.md").read_text()
    assert "command: `python benchmarks/long_sequences.py --cells simple_rnn --lengths 6" in table
    rows = json.loads((tmp_path / "tiny.json").read_text())["rows"]
    assert [(row["impl"], row["length"]) for row in rows] == [("fast", 6), ("stock", 6)]
    assert all(row["first_step_s"] > 0 and row["steady_step_s"] > 0 for row in rows)
