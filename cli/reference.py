"""The command line described from its own declarations: each command's options with their defaults.

`options(command)` lists what `--help` shows, one `OptionInfo` per option (flags,
value name, default, panel, help); `markdown()` renders every command as the
documentation's command reference (`docs/hooks/cli_reference.py` puts it on the
site's page at every build; nothing generated is committed).
"""

from __future__ import annotations

import dataclasses
import re

import typer
from recurrent_mnist_cli.app import app

PROG = "recurrent-mnist"
_DEFAULT = re.compile(r"\s*Default: (.*?)\.?\s*$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One option or argument of a command, as its help shows it."""

    name: str  # the first long flag (`--units`), or the argument's metavar (`MODEL`)
    flags: tuple[str, ...]  # every spelling, e.g. ("--isolate", "--in-process")
    metavar: str  # the value's name (`INTEGER`), "" for a flag
    default: str  # as the help states it, "off" for a flag that is off, "required" for an argument
    panel: str | None
    help: str  # without its "Default: ..." sentence


def root():
    """The Click group of the app, whose `commands` are the commands."""
    return typer.main.get_command(app)


def commands() -> dict:
    """Every command by name, in the order `--help` lists them."""
    return dict(root().commands)


def options(command) -> list[OptionInfo]:
    """What `--help` shows for `command`, in its order (the help option left out)."""
    ctx = command.make_context(command.name, [], resilient_parsing=True)
    found = []
    for param in command.get_params(ctx):
        if param.name == "help":
            continue
        text = " ".join((param.help or "").split())
        match = _DEFAULT.search(text)
        help_text = text[: match.start()].strip() if match else text
        if param.param_type_name == "argument":
            name = param.metavar or param.name.upper()
            found.append(OptionInfo(name, (name,), param.display_type_rich(ctx), "required", None, help_text))
            continue
        if match:
            default = match.group(1)
        elif getattr(param, "is_flag", False):
            default = "on" if param.default else "off"
        else:
            default = "none" if param.default is None else str(param.default)
        flags = tuple(param.opts) + tuple(param.secondary_opts)
        name = next(flag for flag in flags if flag.startswith("--"))
        panel = getattr(param, "rich_help_panel", None)
        found.append(OptionInfo(name, flags, param.metavar or "", default, panel, help_text))
    return found


# The end of a sentence: a full stop and a capital, but not the one of "e.g." or "i.e.".
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z])")


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text, maxsplit=1)[0].rstrip(".")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a table cell, code spans included (GitHub Markdown)


def markdown() -> str:
    """Every command as Markdown: its summary, then a table of its options with their defaults."""
    lines = []
    for name, command in commands().items():
        summary = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
        usage = " ".join(command.collect_usage_pieces(command.make_context(name, [], resilient_parsing=True)))
        lines += [f"#### `{PROG} {name}`", "", summary, "", f"`{PROG} {name} {usage}`", ""]
        lines += ["| option | default | what |", "| --- | --- | --- |"]
        for option in options(command):
            spelled = " / ".join(f"`{flag}`" for flag in option.flags)
            if option.metavar:
                spelled += f" `{option.metavar}`"
            lines.append(f"| {_cell(spelled)} | {_cell(option.default)} | {_cell(_first_sentence(option.help))} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
