"""What the speed scripts share: a measurement in a fresh process of its own, and the files they write.

Each script writes `<name>.json` (every figure) and `<name>.md` (the table) under its results folder; both
name what made them: the command as it was run, the code (`recurrent_mnist.environment.code_identity`) and
the CPU, so that a table can be traced to one commit and rerun.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def measure_in_child(command: list[str]) -> dict:
    """Runs a script's `--worker` command in a fresh process and returns the JSON record it printed last.

    A failed worker ends the script: its error output is printed and the exit status is 1.
    """
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    return json.loads(done.stdout.strip().splitlines()[-1])


def provenance(script: str, arguments: list[str]) -> tuple[dict, dict]:
    """The header fields (`command`, `code`, `cpu`) of a table made by `python SCRIPT ARGUMENTS`, and the code."""
    from recurrent_mnist.environment import code_identity, cpu_model, describe_code

    code = code_identity()
    return {"command": " ".join(["python", script, *arguments]), "code": describe_code(code), "cpu": cpu_model()}, code


def write(results_dir: Path, name: str, record: dict, markdown: str) -> None:
    """Writes `record` as `<name>.json` and `markdown` as `<name>.md`, each atomically."""
    from recurrent_mnist.runs.atomic import atomic_write_text

    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results_dir / f"{name}.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(results_dir / f"{name}.md", markdown)


def provenance_lines(header: dict) -> list[str]:
    """The Markdown lines that name a table's command, code and CPU, from `provenance`'s header fields."""
    return [f"- command: `{header['command']}`", f"- code: {header['code']}; CPU: {header['cpu']}"]
