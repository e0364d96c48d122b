"""Reliability of `tune`: Ctrl-C, SIGTERM and kill -9 in the middle of a search, then the same command again.

These run the real command in child processes on a slice of the embedded sample at 14 x 14, with models
of four units and one epoch, so that a trial takes a second or two.
"""

from __future__ import annotations

import json
import re
import signal
import time
import zipfile

import pandas as pd
import pytest
from clirun import read_line_containing, run, start

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_search(tiny_data_dir) -> list:
    """A search whose trials take a second or two: 14 x 14 digits, one epoch, a few units."""
    return [
        *("--cells", "lstm", "gru", "--dataset", "mnist", "--data-dir", tiny_data_dir, "--max-epochs", "1"),
        *("--units-max", "4", "--layers-max", "1", "--unidirectional", "--batch-size-min", "256"),
    ]


def _every_file_parses(folder) -> list[str]:
    """Reads every results file under the run folder, keras-tuner's state files included; returns their names.

    Hidden files are left out: lock files, and the temporary file of an atomic write that a kill -9
    may leave behind (it never replaces a table). So are keras-tuner's weight checkpoints.
    """
    read = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".md":
            path.read_text(encoding="utf-8")
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, path
        else:
            continue
        read.append(str(path.relative_to(folder)))
    return read


def _trials(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "trials.csv", dtype={"trial_id": str})  # keras-tuner's ids may be "00", "01"...


def _words(text: str) -> str:
    """The text with its line breaks undone: rich wraps long messages at the terminal's width."""
    return " ".join(text.split())


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupting_tune_stops_quickly_says_what_is_kept_and_how_to_resume(tmp_path, tiny_search, sig, code):
    args = ["tune", *tiny_search, "--max-trials", "10", "--results-dir", tmp_path, "--run-name", "i"]
    with start(*args, cwd=tmp_path) as process:
        read_line_containing(process, "✓ trial")  # one trial finished; the next one is starting
        time.sleep(0.5)  # inside the next trial, which takes seconds
        sent = time.monotonic()
        process.send_signal(sig)
        process.wait(timeout=60)
        stopped_s = time.monotonic() - sent
        stdout, stderr = process.stdout.read(), process.stderr.read()
    assert process.returncode == code, stderr
    assert stopped_s < 10
    assert "Traceback" not in stderr and "Traceback" not in stdout
    message = re.search(
        r"Interrupted: (\d+) finished trial\(s\) are kept in (\S+); run the same command again to resume",
        _words(stderr),
    )
    assert message, stderr
    folder = tmp_path / "i"
    assert message[2] == str(folder)
    assert "trials.csv" in _every_file_parses(folder)
    trials = _trials(folder)
    finished = trials[trials["status"] == "completed"]
    assert len(finished) == int(message[1]) >= 1  # what the message counts is what the table keeps
    assert list(trials["status"]) == ["completed"] * len(finished) + ["interrupted"]


def test_kill_9_keeps_finished_trials_and_the_same_command_resumes_without_repeating_them(tmp_path, tiny_search):
    args = ["tune", *tiny_search, "--max-trials", "3", "--results-dir", tmp_path, "--run-name", "k"]
    folder = tmp_path / "k"
    with start(*args, cwd=tmp_path) as process:
        read_line_containing(process, "(2 of 3)")  # the second trial has started
        time.sleep(0.3)
        process.kill()
        process.wait()
    read = _every_file_parses(folder)
    assert {"trials.csv", "search.json", "environment.json", "search/oracle.json"} <= set(read), read
    before = _trials(folder)
    finished = before[before["status"] == "completed"]
    assert len(finished) >= 1 and len(finished) == len(before)  # the table is written as each trial ends

    rerun = run(*args, cwd=tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    stdout = _words(rerun.stdout)
    assert f"up to 3 trial(s), {len(finished)} finished earlier" in stdout
    started_again = set(re.findall(r"trial (\S+) \(\d of 3\)", stdout))
    assert started_again and not started_again & set(finished["trial_id"])

    after = _trials(folder)
    assert after["trial_id"].is_unique and len(after) == 3
    assert set(after["status"]) == {"completed"}
    # Finished trials keep their rows; only their rank may change as later trials finish.
    columns = [c for c in before.columns if c != "rank"]
    kept = after.set_index("trial_id").loc[finished["trial_id"]].reset_index()[columns]
    pd.testing.assert_frame_equal(kept, finished[columns].reset_index(drop=True))
    assert "best_model.keras" in _every_file_parses(folder)
