"""MkDocs hook: the command-line reference, rendered from the Typer app at every build.

`docs/reference/cli.md` holds a marker; `on_page_markdown` replaces it with every
command's summary, usage and options with their defaults, as `--help` declares them
(`recurrent_mnist_cli.reference`). Nothing generated is committed, so the page cannot
drift from the command line.
"""

from __future__ import annotations

import re

MARKER = "<!-- cli-reference -->"
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def render() -> str:
    """Every command of the app as Markdown, one second-level section per command."""
    from recurrent_mnist_cli.reference import markdown  # imports the app without Keras or TensorFlow

    text = re.sub(r"^#### ", "## ", markdown(), flags=re.MULTILINE)
    # The reference escapes a pipe everywhere for GitHub; Python-Markdown already keeps a pipe inside a code
    # span out of the table's columns, and would show that backslash.
    return _CODE_SPAN.sub(lambda span: span.group(0).replace("\\|", "|"), text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
