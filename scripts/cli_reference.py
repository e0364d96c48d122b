"""Writes the README's command reference from the command line itself.

The block between the two `cli-reference` markers in README.md is replaced by
`recurrent_mnist_cli.reference.markdown()`: every command with its options and
defaults, as `--help` declares them. Run it after changing an option;
`tests/test_cli_help.py` fails while the README's copy is out of date.

    python scripts/cli_reference.py          # rewrite the block
    python scripts/cli_reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- cli-reference: written by scripts/cli_reference.py from the command line; do not edit by hand -->"
END = "<!-- /cli-reference -->"


def generated() -> str:
    from recurrent_mnist_cli.reference import markdown

    return markdown()


def with_reference(readme: str, reference: str) -> str:
    """`readme` with the block between the markers replaced by `reference`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{README} lacks the markers {BEGIN!r} ... {END!r}")
    return readme[: start + len(BEGIN)] + "\n\n" + reference + "\n" + readme[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the README's block is current")
    args = parser.parse_args()
    readme = README.read_text()
    updated = with_reference(readme, generated())
    if args.check:
        if updated != readme:
            print(f"{README.name}'s command reference is out of date: run python scripts/cli_reference.py")
            return 1
        return 0
    if updated != readme:
        README.write_text(updated)
        print(f"updated the command reference in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
