"""`report.html`: one self-contained page of a bench run or a comparison, to send to a colleague.

The page holds the run's Markdown summary (tables, notes, significance
sections) rendered to HTML, its plots embedded as `data:` URIs and its
environment, with the styles inline: it fetches nothing, so it opens offline,
from an e-mail attachment, or from a folder copied anywhere.

Only the Markdown this project writes is rendered: headings, pipe tables,
paragraphs, bullet lists, `code` and **bold**. Everything else is escaped text.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from recurrent_mnist.runs.atomic import atomic_write_text

__all__ = ["markdown_html", "report_page", "write_report"]

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; white-space: nowrap; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: 90%; }
pre { background: #f6f8fa; padding: 1rem; overflow-x: auto; font-size: 85%; }
figure { margin: 1rem 0; } img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
footer { margin-top: 3rem; color: #656d76; font-size: 85%; }
"""
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def _inline(text: str) -> str:
    """Escapes text, with `code` and **bold** marked up."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        code, bold = match.groups()
        out.append(f"<code>{html.escape(code)}</code>" if code is not None else f"<strong>{_inline(bold)}</strong>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _cells(line: str) -> list[str]:
    inner = line.strip().strip("|")
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _table(lines: list[str]) -> str:
    header, rule, *body = lines
    right = [cell.endswith(":") for cell in _cells(rule)]

    def row(cells: list[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f"<{tag}{' class=num' if i < len(right) and right[i] else ''}>{_inline(cell)}</{tag}>"
                for i, cell in enumerate(cells)
            )
            + "</tr>"
        )

    rows = "\n".join(row(_cells(line), "td") for line in body)
    return f"<table>\n<thead>{row(_cells(header), 'th')}</thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def markdown_html(text: str) -> str:
    """The Markdown this project writes (summary.md, compare.md) as HTML."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif heading := re.match(r"^(#{1,4}) (.*)$", line):
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            end = i + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            blocks.append(_table(lines[i:end]))
            i = end
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,4} |\s*\||\s*- )", lines[i]):
                paragraph.append(lines[i].strip())
                i += 1
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(blocks)


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def report_page(
    title: str, markdown: str, images: Iterable[str | os.PathLike] = (), environment: dict | None = None
) -> str:
    """The whole page: the Markdown rendered, the PNG `images` embedded, the environment as JSON."""
    parts = [markdown_html(markdown)]
    figures = [_figure(Path(image)) for image in images if Path(image).is_file()]
    if figures:
        parts.append("<h2>Plots</h2>\n" + "\n".join(figures))
    if environment is not None:
        dumped = html.escape(json.dumps(environment, indent=2, sort_keys=True, default=str))
        parts.append(f"<h2>Environment</h2>\n<details><summary>environment.json</summary><pre>{dumped}</pre></details>")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
        '<meta name=viewport content="width=device-width, initial-scale=1">\n'
        # Nothing outside this file may load, even if a later edit adds a link by mistake.
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n"
        "<footer>Written by recurrent-mnist: the tables, notes and plots of this folder in one file.</footer>\n"
        "</body>\n</html>\n"
    )


def write_report(
    path: str | os.PathLike,
    title: str,
    markdown: str,
    images: Iterable[str | os.PathLike] = (),
    environment: dict | None = None,
) -> Path:
    """Writes `report_page(...)` to `path` atomically, and returns the path."""
    atomic_write_text(path, report_page(title, markdown, images, environment))
    return Path(path)
