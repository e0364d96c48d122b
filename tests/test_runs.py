"""The run-folder core (`recurrent_mnist.runs`): atomic writes, the identity check, locks, workers."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recurrent_mnist.errors import ConfigError, ResultsError
from recurrent_mnist.runs import atomic, process
from recurrent_mnist.runs.folder import RunFolder, check_run_name


@pytest.mark.parametrize("module", [atomic, process])
def test_atomic_and_process_import_the_standard_library_only(module):
    # So that a process that must not load TensorFlow (the PyTorch benchmark worker) can use them.
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    top = {name.split(".")[0] for name in imported} - {"__future__"}
    assert top <= sys.stdlib_module_names, top - sys.stdlib_module_names


def test_json_takes_numpy_values_paths_and_non_finite_numbers(tmp_path):
    path = tmp_path / "out" / "record.json"
    atomic.atomic_write_json(
        path,
        {
            "f32": np.float32(0.5),
            "i64": np.int64(7),
            "flag": np.bool_(True),
            "array": np.arange(3),
            "nan32": np.float32("nan"),
            "inf": float("inf"),
            "where": tmp_path,
        },
    )
    assert json.loads(path.read_text()) == {
        "f32": 0.5,
        "i64": 7,
        "flag": True,
        "array": [0, 1, 2],
        "nan32": None,
        "inf": None,
        "where": str(tmp_path),
    }
    assert not list(path.parent.glob(".*"))  # no temporary file left


def test_the_identity_check_names_every_field_that_differs(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.prepare()
    folder.check_config({"units": 8, "epochs": 2}, "abc")
    folder.check_config({"units": 8, "epochs": 2}, "abc")  # the same run: resumes
    with pytest.raises(ResultsError) as caught:
        folder.check_config({"units": 16, "epochs": 2, "dropout": 0.1}, "xyz")
    message = str(caught.value)
    assert "dropout: 0.1 now, None there; units: 16 now, 8 there; the data set's files differ" in message
    assert "choose another `run_name`, or pass `fresh=True` to discard it" in message and "--" not in message
    (tmp_path / "run" / "run.json").write_text("{")
    with pytest.raises(ResultsError, match="pass `fresh=True` to start the run over"):
        folder.check_config({"units": 8, "epochs": 2}, "abc")


def test_a_run_is_filled_by_one_code_and_the_refusal_names_both_commits(tmp_path):
    from recurrent_mnist.environment import code_identity

    folder = RunFolder(tmp_path / "run")
    folder.prepare()
    ours = code_identity()
    folder.check_code(ours)  # no run yet: nothing to compare
    folder.check_config({"units": 8}, "abc", code=ours)
    folder.check_code(dict(ours))
    theirs = {**ours, "source_sha256": "e" * 64, "git_commit": "c" * 40, "git_dirty": True}
    with pytest.raises(ResultsError) as caught:
        folder.check_code(theirs)
    message = str(caught.value)
    assert (
        "trained by other code" in message
        and "commit cccccccc with uncommitted changes (source eeeeeeee) here" in message
    )
    with pytest.raises(ResultsError, match=r"other code .*my_cells"):
        folder.check_code({**ours, "imports": {"my_cells": "0" * 64}})


def test_discard_removes_only_the_runs_own_files(tmp_path):
    class Folder(RunFolder):
        FOLDERS = ("parts",)
        DISCARDED = ("table.csv", "parts")

    folder = Folder(tmp_path / "run")
    folder.prepare()
    for name in ("table.csv", "parts/a.json", "notes.txt"):
        (folder.path / name).write_text("x")
    folder.discard()
    assert sorted(p.name for p in folder.path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["", " ", ".", "..", "a/b", "../up"])
def test_a_run_name_is_a_plain_folder_name(name):
    with pytest.raises(ConfigError, match="`run_name` must be a plain folder name"):
        check_run_name(name)


def test_a_held_lock_is_busy_and_free_again_when_released(tmp_path):
    folder = RunFolder(tmp_path)
    with folder.lock(tmp_path / ".search.lock", "busy"):
        with pytest.raises(ResultsError, match=r"^busy$"), folder.lock(tmp_path / ".search.lock", "busy"):
            pass
    with folder.lock(tmp_path / ".search.lock", "busy"), folder.lock():  # the waiting kind on another file
        pass


def test_a_worker_relays_its_events_and_a_crash_is_explained(tmp_path):
    log = tmp_path / "worker.log"
    speaker = (
        "import json, sys; spec = json.load(sys.stdin); print('noise'); "
        "print(json.dumps({'event': 'epoch', 'n': spec['n']})); print(json.dumps({'event': 'result', 'ok': 1}))"
    )
    events = []
    result, code = process.run_worker([sys.executable, "-c", speaker], {"n": 2}, log, events.append)
    assert (result, code, events) == ({"event": "result", "ok": 1}, 0, [{"event": "epoch", "n": 2}])
    crash = "import sys; print('ValueError: bad weights', file=sys.stderr); sys.exit(3)"
    result, code = process.run_worker([sys.executable, "-c", crash], {}, log, events.append)
    assert result is None and code == 3
    reason = process.crash_reason(code, log)
    assert reason.startswith("the training process exited with code 3: ValueError: bad weights") and str(log) in reason
    assert process.crash_reason(-9, log).startswith("the training process was killed by SIGKILL (out of memory?)")


def test_the_light_modules_load_neither_keras_nor_tensorflow():
    code = (
        "import sys, recurrent_mnist.runs.atomic, recurrent_mnist.runs.process\n"
        "print([m for m in ('keras', 'tensorflow', 'torch', 'numpy', 'pandas') if m in sys.modules])"
    )
    env = {**os.environ, "RECURRENT_MNIST_DEFER_KERAS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_files_outside_the_package_do_not_make_its_commit_dirty(tmp_path):
    # A reference run writes results between two variants: the code that trains is still the commit's.
    from recurrent_mnist import environment

    root = Path(environment.__file__).resolve().parents[1]
    before = environment.git_commit.__wrapped__()
    outside = root / f"outside-the-package-{os.getpid()}.txt"
    outside.write_text("written by a test")
    try:
        assert environment.git_commit.__wrapped__() == before
    finally:
        outside.unlink()
