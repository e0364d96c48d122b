"""MkDocs hook: links from a page to the repository's files outside docs/.

A page links to a committed file the way GitHub reads it, relative to the page
(`[summary.md](../results/reference/fashion-mnist/summary.md)`). MkDocs knows only
the files under docs/, so this hook checks that each such target exists (a missing
one is a warning, which `mkdocs build --strict` turns into a failed build) and
rewrites the link: an image is copied into the site and shown from there, any other
file or folder becomes a link to it in the repository on GitHub (`repo_url`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path, PurePosixPath

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.repo_links")

LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)
IMAGES = {".png", ".svg", ".jpg", ".jpeg", ".gif"}
ASSETS = PurePosixPath("assets/repository")  # where copied images live in the site


def _root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def repository_path(config, page_src_uri: str, target: str) -> PurePosixPath | None:
    """`target`, linked from the page `page_src_uri`, as a path in the repository outside docs/, else None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^/", target):  # a URL or an absolute path
        return None
    docs, root = Path(config["docs_dir"]).resolve(), _root(config)
    resolved = Path(os.path.normpath(docs / Path(page_src_uri).parent / target))
    if resolved.is_relative_to(docs) or not resolved.is_relative_to(root):
        return None
    return PurePosixPath(resolved.relative_to(root).as_posix())


def _outside_fences(markdown: str, rewrite) -> str:
    """`markdown` with `rewrite` applied to every stretch outside fenced code blocks."""
    pieces, start = [], 0
    for fence in FENCE.finditer(markdown):
        pieces += [rewrite(markdown[start : fence.start()]), fence.group(0)]
        start = fence.end()
    return "".join([*pieces, rewrite(markdown[start:])])


def on_files(files, config):
    """Adds every repository image a page shows, so that the site holds a copy."""
    root = _root(config)
    for page in files.documentation_pages():
        for link in LINK.finditer(Path(page.abs_src_path).read_text(encoding="utf-8")):
            path = repository_path(config, page.src_uri, link["target"])
            if link["bang"] and path and path.suffix in IMAGES and (root / path).is_file():
                src_uri = str(ASSETS / path)
                if not files.get_file_from_path(src_uri):
                    files.append(File.generated(config, src_uri, abs_src_path=str(root / path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    root, repo_url = _root(config), (config.get("repo_url") or "").rstrip("/")

    def relink(link: re.Match) -> str:
        path = repository_path(config, page.file.src_uri, link["target"])
        if path is None:
            return link.group(0)
        if not (root / path).exists():
            log.warning(f"{page.file.src_uri} links to {path}, which is not in the repository")
            return link.group(0)
        if link["bang"] and path.suffix in IMAGES:
            target = posixpath.relpath(str(ASSETS / path), posixpath.dirname(page.file.src_uri))
        else:
            kind = "tree" if (root / path).is_dir() else "blob"
            target = f"{repo_url}/{kind}/main/{path}"
        return f"{link['bang']}[{link['text']}]({target}{link['anchor'] or ''})"

    return _outside_fences(markdown, lambda text: LINK.sub(relink, text))
