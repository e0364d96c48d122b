"""Packaging: every package of the source tree is listed for the wheel; data files ship with it."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "recurrent_mnist").rglob("__init__.py")}
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"
    assert config["package-dir"]["recurrent_mnist_cli"] == "cli"


def test_no_module_is_far_too_long_and_every_package_says_what_it_holds():
    # A loose guard against a module that has swallowed several concerns, not a target to trim code to:
    # modules are split by what they do (one concern each), never to fit a line count.
    modules = [*(ROOT / "recurrent_mnist").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
    long = {str(m.relative_to(ROOT)): n for m in modules if (n := len(m.read_text().splitlines())) > 800}
    assert not long, f"these modules hold more than one concern; split them by what they do: {long}"
    for init in [m for m in modules if m.name == "__init__.py"]:
        assert init.read_text().lstrip().startswith('"""'), f"{init.relative_to(ROOT)} has no docstring"


def test_the_embedded_sample_is_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/mnist-sample/*" in patterns["recurrent_mnist"]
    assert (ROOT / "recurrent_mnist" / "data" / "mnist-sample" / "manifest.json").exists()


def test_ci_runs_the_readmes_two_commands():
    # .ci/run must run what the README tells a new user, not a copy that drifted.
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = [block.split("\n", 1)[1].strip() for block in section.split("```bash")[1:]]
    commands = [command.split("\n```", 1)[0].strip() for command in commands]
    assert len(commands) == 2, commands
    first, tests = commands
    assert first + ' --results-dir "$workdir/results"' in ci
    install, run = tests.rsplit(" && ", 1)
    assert install in ci and run in ci
