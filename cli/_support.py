"""Plumbing shared by the commands: quiet library import, error mapping, signals, variadic options."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

console = Console()
err_console = Console(stderr=True)

EXIT_ERROR = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup runs as for Ctrl-C."""


# The interruption asked for by a signal, until the command has handled it.
_requested: type[KeyboardInterrupt] | None = None
# Where a command ends at once on a signal (see `interruptible`): called with the exit code.
_exit_now: Callable[[int], None] | None = None


def install_signal_handlers() -> None:
    """Ctrl-C and SIGTERM raise in the main thread, and are remembered.

    Python drops an exception raised where it cannot propagate (a finalizer or
    a weakref callback that happened to be running); `raise_if_interrupted`,
    called with every progress event, raises the remembered one again, so that
    no interruption is lost.
    """

    def handler(signum, frame):
        global _requested
        _requested = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if _exit_now is not None:
            _exit_now(EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT)
        raise _requested()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread (e.g. some test runners)
            signal.signal(sig, handler)
    sys.unraisablehook = _quiet_about_interruptions


def _quiet_about_interruptions(unraisable) -> None:
    # The dropped raise of an interruption is raised again (above): no "Exception ignored" traceback for it.
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def raise_if_interrupted() -> None:
    """Raises the interruption a signal asked for, if it has not stopped the work yet."""
    if _requested is not None:
        raise _requested()


def interrupt_code(exc: BaseException) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


@contextlib.contextmanager
def interruptible(view, message: str | Callable[[], str] | None = None, at_once: bool = False) -> Iterator:
    """Shows `view` (a rich display, or a null context) while long work runs.

    Ctrl-C or SIGTERM stops the work, prints `message` (what is kept, how to
    resume; a callable is asked then; default: the view's
    `interrupted_message`) and exits 130 or 143 without a traceback.

    With `at_once`, a signal ends the process from its handler (display closed,
    message out, `os._exit`), without unwinding: for work whose results are
    written atomically as they finish (bench's variants, train's checkpoints),
    where raising through TensorFlow's running `fit` has crashed (SIGSEGV). Without
    it the interruption is raised, so that the work can write what it holds
    (tune writes its trials table) before the message.
    """
    global _requested, _exit_now
    message = message or view.interrupted_message

    def say_and_exit(code: int) -> None:
        with contextlib.suppress(Exception):
            view.__exit__(None, None, None)  # restores the cursor a live display hid
        err_console.print(message() if callable(message) else message, highlight=False)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    install_signal_handlers()
    if at_once:
        _exit_now = say_and_exit
    try:
        with view:
            yield view
    except KeyboardInterrupt as exc:
        if _requested is not None:
            # A real signal: end here. Every result file is already whole (atomic writes), and the
            # interpreter's teardown beside TensorFlow's still-running input threads has crashed
            # (SIGSEGV) after a SIGTERM.
            say_and_exit(interrupt_code(exc))
        err_console.print(message() if callable(message) else message, highlight=False)
        raise typer.Exit(code=interrupt_code(exc)) from None
    finally:
        _requested = None
        _exit_now = None


def held_back_stderr(unless: tuple[type[BaseException], ...] = ()):
    """Holds back what C++ code writes straight to file descriptor 2 (TensorFlow's notices).

    They are shown only if the block fails with an exception other than those in
    `unless` (the user's mistakes, which get their one sentence instead).
    """
    from recurrent_mnist.quiet import fd2_held

    return fd2_held(lambda text, error: text if error is not None and not isinstance(error, unless) else "")


def import_library():
    """Imports `recurrent_mnist` (and so TensorFlow) with TensorFlow's start-up notices held back.

    TensorFlow's C++ runtime writes oneDNN and CUDA notices straight to file
    descriptor 2 before any logging setting applies; they are captured here and
    shown only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "recurrent_mnist.model" in sys.modules and "tensorflow" in sys.modules:
        import recurrent_mnist

        return recurrent_mnist
    with held_back_stderr():
        import recurrent_mnist
        import recurrent_mnist.model  # registers the Keras classes (deferred by this package's import)

        with contextlib.suppress(Exception):
            import tensorflow as tf

            tf.config.list_physical_devices()  # device probing prints its notices now
    return recurrent_mnist


def command_line() -> list[str]:
    """This invocation as the user typed it, for the run's records."""
    return ["recurrent-mnist", *sys.argv[1:]]


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Prints one sentence to stderr and returns the Exit to raise."""
    err_console.print(f"[bold red]Error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def _os_error_sentence(exc: OSError) -> str:
    target = exc.filename or "a file"
    reason = exc.strerror or str(exc)
    if getattr(exc, "errno", None) == 28:
        reason = "no space left on the device"
    return f"{target} cannot be written or read: {reason}"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns the library's user-facing errors and OS errors into one sentence in the command line's terms.

    A `ConfigError` that names its argument is a usage error of that option
    (exit 2); any other library error or OS error exits 1.
    """
    from recurrent_mnist_cli.options import cli_terms, flag

    from recurrent_mnist.errors import ConfigError, RecurrentMnistError

    try:
        yield
    except ConfigError as exc:
        if exc.argument is None:
            raise fail(cli_terms(str(exc))) from None
        raise typer.BadParameter(cli_terms(str(exc)), param_hint=f"'{flag(exc.argument)}'") from None
    except RecurrentMnistError as exc:
        raise fail(cli_terms(str(exc))) from None
    except OSError as exc:
        raise fail(_os_error_sentence(exc)) from None


_METAVARS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "path": "PATH", "file": "FILE", "directory": "DIR"}


def metavar(param, ctx) -> str:
    """The name of an option's value in `--help`, in Click's words: `INTEGER`, `[a|b]`, `TEXT...`; none for a flag.

    Typer writes types as `<int>` and `<bool>`, after flags too, which take no value.
    """
    if getattr(param, "is_flag", False):
        return ""
    label = param.display_type(ctx).strip("<>")
    many = label.startswith("list[")
    label = label[len("list[") : -1] if many else label
    name = f"[{label}]" if "|" in label else _METAVARS.get(label, label.upper())
    return name + ("..." if many else "")


class _Help:
    """Values named as Click names them, and the help panels in one order for every command."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.param_type_name == "option" and param.metavar is None:
                param.metavar = metavar(param, ctx)
            elif param.param_type_name == "argument" and "display_type_rich" not in vars(param):
                # An argument's name is its metavar (MODEL); the type column says PATH, not <path>.
                label = metavar(param, ctx)
                param.display_type_rich = lambda ctx, label=label: label
        from recurrent_mnist_cli.options import PANELS

        rank = {panel: index for index, panel in enumerate(PANELS)}
        return sorted(params, key=lambda param: rank.get(getattr(param, "rich_help_panel", None), -1))


class Group(_Help, TyperGroup):
    """The app: its own options (`--version`, `--help`) shown without a type, as the commands' flags."""


class Command(_Help, TyperCommand):
    """A command whose help shows values as Click does (`--units INTEGER`, a flag bare, `MODEL` not `{MODEL}`)."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces


class VariadicCommand(Command):
    """A command whose repeatable options also take several values after one flag.

    Click reads `--cells lstm gru` as `--cells lstm` and a stray `gru`; this
    rewrites it to `--cells lstm --cells gru` before Click parses.
    """

    def parse_args(self, ctx, args):
        flags = {
            opt
            for param in self.params
            if getattr(param, "multiple", False)
            for opt in getattr(param, "opts", [])
            if opt.startswith("--")
        }
        rewritten, current, index = [], None, 0
        while index < len(args):
            token = args[index]
            if token == "--":
                rewritten.extend(args[index:])
                break
            if token in flags:
                current = token
                rewritten.append(token)
                if index + 1 < len(args):
                    rewritten.append(args[index + 1])
                    index += 1
            elif current is not None and not token.startswith("-"):
                rewritten.extend([current, token])
            else:
                current = None
                rewritten.append(token)
            index += 1
        return super().parse_args(ctx, rewritten)
