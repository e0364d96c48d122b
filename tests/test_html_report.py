"""`report.html`: one self-contained page per bench run and per comparison, checked in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_compare import make_run, seeds

from recurrent_mnist.bench.folder import rebuild_report
from recurrent_mnist.compare import compare_runs, write_comparison
from recurrent_mnist.html_report import markdown_html, report_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# Hosts Chromium itself calls at start-up (updates, time, accounts), whatever page it opens.
BROWSER_OWN_HOSTS = ("googleapis.com", "google.com", "gvt1.com", "gstatic.com")


def test_the_markdown_this_project_writes_becomes_tables_headings_and_escaped_text():
    text = (
        "# Title with <script>\n\nA paragraph with `code` and **bold**.\n\n## Section\n\n"
        "| cell | p |\n| --- | ---: |\n| lstm \\| x | 0.5 |\n\n- one\n- two\n"
    )
    page = markdown_html(text)
    assert "<h1>Title with &lt;script&gt;</h1>" in page and "<h2>Section</h2>" in page
    assert "<code>code</code>" in page and "<strong>bold</strong>" in page
    assert "<td>lstm | x</td><td class=num>0.5</td>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page


def test_a_page_references_nothing_outside_itself(tmp_path):
    image = tmp_path / "plot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    page = report_page("t", "# t\n", [image], {"host": "vm"})
    assert 'src="data:image/png;base64,' in page
    assert not re.search(r"(src|href)=\"?(https?:)?//", page) and "url(" not in page


def _open_in_chromium(page: Path, tmp_path: Path) -> tuple[str, set[str]]:
    """The DOM Chromium renders from `page` (headless), and the URLs the page made it request."""
    net_log = tmp_path / f"{page.stem}-netlog.json"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--log-net-log={net_log}", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    urls = set()
    for event in json.loads(net_log.read_text()).get("events", []):
        params = event.get("params") or {}
        urls.update(params[key] for key in ("url", "original_url") if isinstance(params.get(key), str))
    fetched = {
        url
        for url in urls
        if urlparse(url).scheme not in ("file", "data", "chrome", "about")
        and not (urlparse(url).hostname or "").endswith(BROWSER_OWN_HOSTS)
    }
    return done.stdout, fetched


def _check_in_browser(page: Path, tmp_path: Path, tables: int, images: int) -> None:
    dom, fetched = _open_in_chromium(page, tmp_path)
    assert dom.count("<table>") >= tables, dom[:2000]
    assert dom.count('src="data:image/png;base64,') == images
    assert "<h1>" in dom and "Environment" in dom
    assert fetched == set()
    # The same page without its Content-Security-Policy: the markup itself asks for nothing.
    bare = tmp_path / f"{page.stem}-without-csp.html"
    bare.write_text(re.sub(r"<meta http-equiv=Content-Security-Policy[^>]*>", "", page.read_text()))
    assert _open_in_chromium(bare, tmp_path)[1] == set()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_a_bench_runs_report_renders_in_chromium_with_its_tables_and_plots_and_fetches_nothing(tmp_path):
    run = make_run(tmp_path / "run", seeds(cells=("lstm", "gru", "simple_rnn")))
    result = rebuild_report(run)
    page = run / "report.html"
    assert page in result.files
    plots = [path for path in result.files if path.suffix == ".png"]
    assert plots  # made-up records have no epochs to plot: accuracy against time only
    # The summary and the ranking steps; every plot embedded.
    _check_in_browser(page, tmp_path, tables=2, images=len(plots))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_a_comparisons_report_renders_in_chromium_and_fetches_nothing(tmp_path):
    base = make_run(tmp_path / "base", seeds())
    slow = make_run(tmp_path / "slow", seeds(slower=3))
    files = write_comparison(compare_runs([base, slow]), tmp_path / "out")
    page = tmp_path / "out" / "report.html"
    assert page in files
    dom = _open_in_chromium(page, tmp_path)[0]
    assert "slower" in dom and "not significant" in dom
    _check_in_browser(page, tmp_path, tables=2, images=1)
