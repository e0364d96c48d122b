"""The reference commands of the documentation reproduce the committed reference folders.

Each command is read from the Reference results page (docs/reference-results.md)
and rerun against a copy of its committed folder: it must train nothing, exit 0
and rebuild `runs.csv` (or the replay's `epochs.csv`) byte for byte.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import cli_env, invoke

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
PAGE = ROOT / "docs" / "reference-results.md"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Reference folders not (yet) made on one commit by benchmarks/reference.sh: expected to fail, with the reason.
PENDING: dict[str, str] = {}


def _reference_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            words = shlex.split(command, comments=True)
            if words:
                commands.append(words)
    return commands


def _option(words: list[str], name: str, default: str) -> str:
    return words[words.index(name) + 1] if name in words else default


def _cases():
    for words in _reference_commands():
        if words[:2] == ["recurrent-mnist", "bench"]:
            name, table = _option(words, "--run-name", ""), "runs.csv"
        elif words[:2] == ["recurrent-mnist", "tune"]:
            name, table = _option(words, "--run-name", ""), "trials.csv"
        elif words[:2] == ["python", "benchmarks/tutorial_replay.py"]:
            name, table = f"tutorial-replay-{_option(words, '--dataset', 'mnist-sample')}", "epochs.csv"
        else:
            continue
        marks = [pytest.mark.slow]
        if name in PENDING:
            marks.append(pytest.mark.xfail(strict=True, reason=PENDING[name]))
        yield pytest.param(words, name, table, marks=marks, id=name)


def test_the_reference_page_shows_every_reference_command():
    names = {case.values[1] for case in _cases()}
    assert {
        "tutorial-mnist-sample",
        "tutorial-replay-mnist-sample",
        "sample-threads-1",
        "sample-threads-2",
        "fashion-mnist",
        "fashion-matched",
        "fashion-keras-torch",
        "tune-sample",
        "sample-from-tune",
        "mnist",
        "permuted-mnist",
        "sequential-mnist",
    } <= names
    assert all((REFERENCE / name).is_dir() for name in names)


@pytest.mark.parametrize(("words", "name", "table"), list(_cases()))
def test_a_reference_command_reruns_against_its_folder_and_trains_nothing(tmp_path, words, name, table):
    if "fashion-mnist" in words and not FASHION.is_dir():
        pytest.skip(f"Fashion-MNIST is not installed under {FASHION}")
    if "torch" in words and importlib.util.find_spec("torch") is None:
        pytest.skip('PyTorch is not installed (pip install -e ".[torch]")')
    if "--data-dir" in words:  # data that is not in the repository, at the page's path from its root
        data_dir = ROOT / _option(words, "--data-dir", "")
        if not data_dir.is_dir():
            pytest.skip(f"the data set's files are not in {data_dir}")
        words = [str(data_dir) if word == _option(words, "--data-dir", "") else word for word in words]
    clean_clone = shutil.ignore_patterns("checkpoint.weights.h5", "*.lock")  # what git holds of a folder
    shutil.copytree(REFERENCE / name, tmp_path / name, ignore=clean_clone)
    if "--from-tune" in words:  # the search it reads, at the same place relative to the command's folder
        tuned = _option(words, "--from-tune", "")
        shutil.copytree(ROOT / tuned, tmp_path / tuned, ignore=clean_clone)
    before = (tmp_path / name / table).read_bytes()
    if words[0] == "recurrent-mnist":  # in this process: a child would spend its time starting TensorFlow
        done = invoke(*words[1:], "--results-dir", tmp_path, cwd=tmp_path)
    else:
        args = [sys.executable, str(ROOT / words[1]), *words[2:], "--results-dir", str(tmp_path)]
        done = subprocess.run(args, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if words[1] == "tune":
        assert re.search(r"up to (\d+) trial\(s\), \1 finished earlier", done.stdout), done.stdout[-2000:]
        assert "kept the best model from an earlier run" in done.stdout, done.stdout[-2000:]
    elif words[0] == "recurrent-mnist":
        assert re.search(r"(\d+) variant\(s\), \1 already finished", done.stdout), done.stdout[-2000:]
    else:
        assert "kept from an earlier run" in done.stdout and "test accuracy after epoch" not in done.stdout
    assert (tmp_path / name / table).read_bytes() == before


SPEED_SCRIPTS = (
    "benchmarks/vs_pytorch.py",
    "benchmarks/profile_step.py",
    "benchmarks/latency.py",
    "benchmarks/long_sequences.py",
)


def _speed_commands() -> dict[str, str]:
    """The commands of `benchmarks/reference.sh speed`, one line each without the `taskset` pinning, and the
    part (`speed-train`, ...) of each."""
    script = (ROOT / "benchmarks" / "reference.sh").read_text().replace("\\\n", " ")
    found, part = {}, None
    for line in script.splitlines():
        label = re.fullmatch(r"\s*(speed-[a-z]+)\)", line)
        part = label.group(1) if label else part
        words = shlex.split(line, comments=True)
        if words[:2] == ["taskset", "-c"]:
            words = words[3:]
        if words[:1] == ["python"] and words[1] in SPEED_SCRIPTS:
            found[" ".join(words)] = part
    return found


def test_every_speed_table_comes_from_reference_sh_on_one_clean_commit_per_part():
    # The tables of one part of `reference.sh speed` (speed-train, speed-long, ...) name one commit.
    commands, commits = _speed_commands(), {}
    tables = sorted((ROOT / "results" / "speed").glob("*.md"))
    assert tables
    for table in tables:
        text = table.read_text()
        command = re.search(r"command: `([^`]+)`", text)
        assert command, f"{table.name} names no command"
        line = " ".join(command.group(1).split())
        assert line in commands, f"{table.name}: not a command of reference.sh speed"
        dirty = "uncommitted" in text or "-dirty" in text
        assert not dirty, f"{table.name} was made from a tree with uncommitted changes"
        commits.setdefault(commands[line], {})[table.name] = re.search(r"commit ([0-9a-f]{8})", text).group(1)
    for part, named in commits.items():
        assert len(set(named.values())) == 1, f"the tables of {part} name several commits: {named}"
    made = {re.search(r"--name (\S+)", command).group(1) for command in commands}
    assert made == {table.stem for table in tables}, "reference.sh speed and results/speed/ name other tables"
