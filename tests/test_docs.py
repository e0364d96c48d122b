"""The documentation holds together: the README is one screen, every page of the site exists, every link and
included result file resolves, and what the README shows of a result is what the result file says.

`mkdocs build --strict` checks the same and more, in `.ci/run`'s docs step and in the slow test below where the
`docs` extra is installed; the fast tests here need nothing but the files.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$', flags=re.MULTILINE)
# A commit hash: 7 to 40 hex digits with at least one letter (a plain number is not one).
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")


def _without_code(markdown: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1", "", markdown, flags=re.MULTILINE | re.DOTALL)


def _table(lines: list[str]) -> list[dict[str, str]]:
    """A Markdown table's rows as {header: cell}."""

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header = cells(lines[0])
    return [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]


def _tables(markdown: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"^(\|.*\|\n\|[ :|-]+\|\n(?:\|.*\|\n?)+)", markdown, re.M)]


def test_the_readme_is_one_screen_and_cites_no_commit():
    readme = README.read_text()
    assert len(readme.splitlines()) <= 200
    assert not COMMIT.findall(readme), "the README names a commit: result files carry their commit, not the README"


def test_every_page_of_the_navigation_exists_and_every_page_is_in_it():
    nav = re.findall(r"^\s+- (?:[^:\n]+: )?(\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
    assert "index.md" in nav and "reference/cli.md" in nav and "reference/api.md" in nav
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that do not exist: {missing}"
    unlisted = {str(p.relative_to(DOCS)) for p in PAGES} - set(nav)
    assert not unlisted, f"pages that no navigation entry reaches: {sorted(unlisted)}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    for target in LINK.findall(_without_code(page.read_text())):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path):
            continue
        assert (page.parent / path).exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def test_every_included_file_exists_and_a_line_range_is_whole_blocks():
    # A range that cut a table or a paragraph in two after a results file was remade would still build.
    for page in PAGES:
        for include in SNIPPET.findall(page.read_text()):
            name, *lines = include.split(":")
            path = ROOT / name
            assert path.is_file(), f"{page.name} includes {name}, which does not exist"
            if not lines:
                continue
            text = path.read_text().splitlines()
            start, end = int(lines[0]), int(lines[1])
            assert 1 <= start <= end <= len(text), f"{page.name}: {include} is outside the file"
            assert start == 1 or not text[start - 2].strip(), f"{page.name}: {include} starts inside a block"
            assert end == len(text) or not text[end].strip(), f"{page.name}: {include} ends inside a block"
            assert text[start - 1].strip() and text[end - 1].strip(), f"{page.name}: {include} has blank edges"
            assert not text[start - 1].startswith("|") or re.match(r"^\|[ :|-]+\|$", text[start]), (
                f"{page.name}: {include} starts a table below its header"
            )


def test_the_reliability_page_names_tests_that_exist():
    page = (DOCS / "reliability.md").read_text()
    sources = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    for name in set(re.findall(r"`(?:tests/\w+\.py::)?(test_\w+?)`", page)):
        assert re.search(rf"def {name}\b", sources), f"docs/reliability.md names {name}, which no test defines"
    for path in set(re.findall(r"tests/\w+\.py", page)):
        assert (ROOT / path).is_file(), path


def test_the_readme_shows_a_real_table_of_a_reference_run():
    section = README.read_text().split("## Compare cells", 1)[1].split("\n## ", 1)[0]
    source = re.search(r"results/reference/[\w-]+/summary\.md", section).group(0)
    command = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1).replace("\\\n", " ").split()
    reference_page = (DOCS / "reference-results.md").read_text().replace("\\\n", " ")
    assert " ".join(command) in " ".join(reference_page.split()), "the README's command is not a reference command"
    assert f"--run-name {Path(source).parent.name}" in " ".join(command)
    (shown,) = _tables(section)
    written = _tables((ROOT / source).read_text())[0]
    shown_rows, written_rows = _table(shown), _table(written)
    assert len(shown_rows) == len(written_rows), f"the README shows a part of {source}'s rows"
    for shown_row, written_row in zip(shown_rows, written_rows, strict=True):
        assert {column: written_row.get(column) for column in shown_row} == shown_row, source


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason='the docs extra: pip install -e ".[docs]"')
def test_the_site_builds_with_strict_checks(tmp_path):
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (site / "reference" / "cli" / "index.html").read_text()
    assert "recurrent-mnist bench" in cli and "--match-params" in cli
    assert "RowSequenceClassifier" in (site / "reference" / "api" / "index.html").read_text()
