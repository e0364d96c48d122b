"""Every command's --help: clean, one vocabulary across commands, and the documentation's reference rendered from it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from recurrent_mnist_cli import reference
from recurrent_mnist_cli.app import app
from typer.testing import CliRunner

from recurrent_mnist import settings
from recurrent_mnist.cells import available_cells

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = list(reference.commands())

# Where two commands spell, default or place one option differently on purpose: (option, what differs) -> why.
# Each command's help says the why too; the test fails on any other difference, and on an entry that no
# longer differs.
DELIBERATE = {
    ("--cells", "panel"): "tune: the 'cell' hyperparameter's choices, beside the other ranges of the search space",
    ("--cells", "help"): "bench compares the cells, tune searches over them",
    ("--bidirectional", "default"): "tune searches both directions unless one is given",
    ("--bidirectional", "panel"): "tune: fixing the direction narrows the search space",
    ("--bidirectional", "help"): "tune: fixes the searched direction",
    ("--early-stopping", "default"): "tune stops a trial after 3 epochs without progress: a search is many short "
    "trainings; bench and train train every epoch",
    ("--early-stopping", "help"): "tune: watches the search's objective",
    ("--validation-split", "help"): "tune: the trials are scored on it",
    ("--seed", "help"): "tune: seeds the tuner too",
    ("--dataset", "default"): "evaluate: the data set the model was trained on, from its record",
    ("--output", "default"): "each command's own result: train's model, evaluate's JSON, export's TensorFlow Lite file",
    ("--output", "help"): "each command's own result: train's model, evaluate's JSON, export's TensorFlow Lite file",
    ("--tensorboard-dir", "help"): "each command says what it logs: bench a session per variant, train one, "
    "tune one per trial",
    ("--units", "help"): "bench also takes units per cell (CELL=UNITS): a comparison may size each cell its own way",
    ("--units", "metavar"): "bench also takes units per cell (CELL=UNITS)",
    ("--layers", "help"): "bench also takes layers per cell (CELL=LAYERS): IndRNN is published with stacked layers",
    ("--layers", "metavar"): "bench also takes layers per cell (CELL=LAYERS)",
    ("--reading", "help"): "tune: one reading fixes it, several are searched over",
    ("--reading", "metavar"): "tune takes several readings (the 'reading' hyperparameter's choices)",
    ("--reading", "panel"): "tune: the reading's choices, beside the other ranges of the search space",
    ("--permutation-seed", "panel"): "tune: beside the readings it orders, in the search space",
    ("--cluster", "help"): "bench runs each variant as a task; tune runs its keras-tuner workers as tasks",
}
# Related options named apart on purpose: (command, option) pairs and why.
NAMED_APART = {
    (("bench", "--seeds"), ("train", "--seed"), ("tune", "--seed")): "bench trains every cell once per seed "
    "(several, as --cells); train trains one model, tune seeds one search",
    (("bench", "--cells"), ("tune", "--cells"), ("train", "--cell")): "train trains one model",
}
# Options only some commands have, on purpose.
ONLY_IN = {
    "--preset": ({"bench", "train"}, "a preset fixes values; tune narrows ranges instead"),
    "--import": ({"bench", "tune", "train", "evaluate", "export"}, "every command that builds or loads a model"),
    "--cluster": ({"bench", "tune"}, "the commands that train many models: variants, or a search's workers"),
}


def help_text(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def _plain(output: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_clean_and_shows_every_word_it_was_given(command):
    args = [command] if command else []
    output = help_text(*args)
    assert "<bool>" not in output and "{" not in output
    assert not re.search(r"<(int|float|str|path|list\[|[a-z_-]+\|)", output), "a Typer type tag in the help"
    shown = _plain(output)
    # Rich markup or Markdown would eat parts of a help text (<run-name>, *x*, [x]): every word must show.
    click_command = reference.commands()[command] if command else reference.root()
    texts = [click_command.help or ""] + [param.help or "" for param in click_command.params]
    for text in texts:
        for word in text.split():
            assert word in shown, f"{word!r} of {text!r} is missing from the help of {command or 'the app'}"


def test_options_two_commands_share_are_spelled_defaulted_and_placed_alike():
    seen = defaultdict(dict)
    for name, command in reference.commands().items():
        for option in reference.options(command):
            if option.name.startswith("--"):
                seen[option.name][name] = option
    differences = set()
    for option_name, by_command in seen.items():
        if len(by_command) < 2:
            continue
        first, *others = by_command.values()
        for other in others:
            for attribute in ("flags", "metavar", "default", "panel", "help"):
                if getattr(first, attribute) != getattr(other, attribute):
                    differences.add((option_name, attribute))
    unexplained = differences - set(DELIBERATE)
    assert not unexplained, f"options that differ between commands without a reason: {sorted(unexplained)}"
    stale = set(DELIBERATE) - differences
    assert not stale, f"listed as deliberate differences but now alike: {sorted(stale)}"
    for pairs in NAMED_APART:
        for command, option in pairs:
            assert option in {o.name for o in reference.options(reference.commands()[command])}, (command, option)
    for option_name, (commands, _) in ONLY_IN.items():
        assert set(seen[option_name]) == commands, option_name


def test_every_cell_option_names_the_built_in_cells_and_the_registered_ones():
    assert set(settings.BUILTIN_CELLS) <= set(available_cells())
    for command, flag in (("bench", "--cells"), ("tune", "--cells"), ("train", "--cell")):
        option = next(o for o in reference.options(reference.commands()[command]) if o.name == flag)
        for cell in settings.BUILTIN_CELLS:
            assert cell in option.help, (command, cell)
        assert "any cell registered by a module given to --import" in option.help


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environment, timeout=120)


def test_python_m_recurrent_mnist_runs_the_command_line_without_tensorflow():
    result = _run("-X", "importtime", "-m", "recurrent_mnist", "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: recurrent-mnist [OPTIONS] COMMAND" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "recurrent_mnist_cli.app" in imported and "tensorflow" not in imported and "keras" not in imported


def test_shell_completion_completes_commands_and_options():
    completing = {"_RECURRENT_MNIST_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    result = _run("-m", "recurrent_mnist", env={**completing, "COMP_WORDS": "recurrent-mnist bench --data"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["--dataset", "--data-dir"]
    assert "--install-completion" in help_text() and "--show-completion" in help_text()


def test_the_documentation_renders_every_command_and_option_from_the_app():
    # The site's command reference is rendered by an MkDocs hook at build time; nothing generated is committed.
    spec = importlib.util.spec_from_file_location("cli_reference_hook", ROOT / "docs" / "hooks" / "cli_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    assert hook.MARKER in (ROOT / "docs" / "reference" / "cli.md").read_text()
    page = hook.on_page_markdown(f"# Command-line reference\n\n{hook.MARKER}\n", None, None, None)
    assert hook.MARKER not in page
    headings = re.findall(r"^## `recurrent-mnist (\S+)`$", page, flags=re.MULTILINE)
    assert headings == COMMANDS
    sections = dict(zip(headings, re.split(r"^## .*$", page, flags=re.MULTILINE)[1:], strict=True))
    for name, command in reference.commands().items():
        for option in reference.options(command):
            assert f"`{option.name}`" in sections[name], (name, option.name)
    assert "\\|" not in "".join(re.findall(r"`[^`\n]*`", page)), "a pipe inside code would show its backslash"
