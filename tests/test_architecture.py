"""The architecture is checked, not only drawn: the import contracts hold, and no module overwrites another's global.

The contracts are `[tool.importlinter]` in pyproject.toml (docs/architecture.md draws them); `lint-imports`
reads the sources without importing them, in a second or two.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each package's sources live: the CLI installs as `recurrent_mnist_cli` from cli/.
SOURCES = {"recurrent_mnist": ROOT / "recurrent_mnist", "recurrent_mnist_cli": ROOT / "cli"}
LINT_TIMEOUT_S = 120


def _lint_imports(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`lint-imports` on the pyproject.toml in `cwd`, without its cache (nothing is written there)."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (the dev extra installs it)")
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    return subprocess.run(
        [*command, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=LINT_TIMEOUT_S, check=False
    )


def test_the_import_contracts_hold():
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def _copy_sources(destination: Path) -> None:
    """The Python sources of both packages, as they would be installed, under `destination`."""

    def not_python(folder, names):
        return [name for name in names if not (Path(folder, name).is_dir() or name.endswith(".py"))]

    for package, source in SOURCES.items():
        shutil.copytree(source, destination / package, ignore=not_python)


def test_an_upward_import_breaks_the_contracts(tmp_path):
    # The fast path importing a command package: lint-imports names the import, its file and its line.
    sources = tmp_path / "src"
    _copy_sources(sources)
    driver = sources / "recurrent_mnist" / "fast_rnn" / "driver.py"
    lines = driver.read_text().splitlines()
    first_import = next(i for i, line in enumerate(lines) if line.startswith("import "))
    lines.insert(first_import, "import recurrent_mnist.bench")
    driver.write_text("\n".join(lines) + "\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(sources)}
    # The copy shadows the editable install: PYTHONPATH comes before the installed package's finder.
    where = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('recurrent_mnist').origin)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=LINT_TIMEOUT_S,
        check=True,
    )
    assert Path(where.stdout.strip()) == sources / "recurrent_mnist" / "__init__.py"

    run = _lint_imports(tmp_path, env)
    assert run.returncode == 1, run.stdout[-4000:] + run.stderr[-2000:]
    output = " ".join(run.stdout.split())  # the report wraps long lines
    assert "The library's layers" in output and "BROKEN" in output
    assert f"recurrent_mnist.fast_rnn.driver -> recurrent_mnist.bench (l.{first_import + 1})" in output


# --------------------------------------------------------------------------
# no module overwrites another's global
# --------------------------------------------------------------------------


def _is_project_module(dotted: str) -> bool:
    head, *rest = dotted.split(".")
    if head not in SOURCES:
        return False
    path = SOURCES[head].joinpath(*rest)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _project_modules_bound(tree: ast.Module) -> set[str]:
    """The expressions that name a module of this project in a file: `x.y` after `import x.y`, `z` after `from x import
    y as z` or `import x.y as z`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if alias.asname and _is_project_module(alias.name):
                    names.add(alias.asname)
                elif not alias.asname:  # `import x.y` binds x, and x.y names x's attribute y
                    prefixes = (".".join(parts[: i + 1]) for i in range(len(parts)))
                    names.update(prefix for prefix in prefixes if _is_project_module(prefix))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if _is_project_module(f"{node.module}.{alias.name}"):
                    names.add(alias.asname or alias.name)
    return names


def _overwrites(source: str, name: str) -> list[str]:
    """`module.NAME = ...` assignments, in the file `name` holding `source`, to a module of this project."""
    tree = ast.parse(source, filename=name)
    modules = _project_modules_bound(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        while targets:
            target, *targets = targets
            if isinstance(target, (ast.Tuple, ast.List)):
                targets.extend(target.elts)
            elif isinstance(target, ast.Starred):
                targets.append(target.value)
            elif isinstance(target, ast.Attribute) and ast.unparse(target.value) in modules:
                found.append(f"{name}:{node.lineno}: {ast.unparse(target)} = ...")
    return found


def test_no_module_overwrites_another_modules_global():
    # A setting one module changes in another's namespace is invisible where it is read: pass a parameter instead
    # (tests may monkeypatch).
    folders = ("recurrent_mnist", "cli", "benchmarks", "scripts")
    files = sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))
    assert files
    found = [line for path in files for line in _overwrites(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


def test_the_overwrite_check_sees_an_overwrite():
    imports = (
        "from recurrent_mnist.fast_rnn import driver\n"
        "import recurrent_mnist.fast_rnn.chains as c\n"
        "import recurrent_mnist.settings\n"
        "import os\n"
    )
    # Calls, attributes of objects and other packages' modules are not this check's business.
    assert _overwrites(imports + "driver.run(1)\nos.sep = '/'\nx = driver.Recurrence\nx.y = 1\n", "probe.py") == []
    overwrites = (
        "driver.GATE = 1\nc.MIN_CHAIN_ROWS += 1\nrecurrent_mnist.settings.X: int = 2\nd[driver.f()], *driver.Y = 1, 2\n"
    )
    found = _overwrites(imports + overwrites, "p.py")
    assert found == [
        "p.py:5: driver.GATE = ...",
        "p.py:6: c.MIN_CHAIN_ROWS = ...",
        "p.py:7: recurrent_mnist.settings.X = ...",
        "p.py:8: driver.Y = ...",
    ]
