"""Running the real `recurrent-mnist` command: in a child process, to interrupt or kill it, or in this one.

A child process spends most of a short command starting TensorFlow; `invoke` runs the
same command line in the test's own process (as `typer.testing.CliRunner` does), for
the tests that neither interrupt nor kill it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGINS), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return env


def _default_sigint() -> None:
    # A test run started in the background by a non-interactive shell (nohup, CI
    # runners) inherits SIGINT ignored, and Python keeps it ignored: give the
    # child the terminal's default, as a user pressing Ctrl-C has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """The command in a child process, its output on pipes; `env` adds to (or overrides) `cli_env()`."""
    return subprocess.Popen(
        [sys.executable, "-m", "recurrent_mnist_cli", *map(str, args)],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def run(*args, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command in a child process; `env` adds to (or overrides) `cli_env()`."""
    return subprocess.run(
        [sys.executable, "-m", "recurrent_mnist_cli", *map(str, args)],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke(*args, cwd: Path) -> subprocess.CompletedProcess:
    """`run`, in this process: the command line's outcome as a `CompletedProcess` (stdout and stderr apart).

    `--import` modules are found in `tests/plugins`, as `run`'s child finds them, here and in the
    training processes the command starts (PYTHONPATH).
    """
    from recurrent_mnist_cli.app import app
    from typer.testing import CliRunner

    words = [str(a) for a in args]
    saved_cwd, saved_path, saved_env = os.getcwd(), list(sys.path), os.environ.get("PYTHONPATH")
    try:
        os.chdir(cwd)
        sys.path.insert(0, str(PLUGINS))
        os.environ["PYTHONPATH"] = cli_env()["PYTHONPATH"]
        result = CliRunner().invoke(app, words)
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_env
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(words, result.exit_code, result.stdout, result.stderr)


def wait_for(condition, timeout: float = 180, interval: float = 0.2, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the command ended early with {process.returncode}: {process.stderr.read()}")
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def read_line_containing(process: subprocess.Popen, text: str, timeout: float = 180) -> str:
    """Reads the child's stdout until a line contains `text` (stdout must be unbuffered)."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if text in line:
            return line
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no line with {text!r}; exit {process.poll()}: {process.stderr.read()}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"
