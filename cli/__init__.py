"""The `recurrent-mnist` command line (installed as the package `recurrent_mnist_cli`).

- `app`: the Typer app; it registers the commands and holds `main`;
- `options`: the options the commands share, declared from `recurrent_mnist.settings`;
- `commands/`: one module per command: parse, call the library, render;
- `views/`: the rich renderings (progress displays, tables);
- `_support`: quiet library import, error mapping, signals, variadic options, help layout;
- `reference`: every command's options and defaults, read from the app (the documentation's reference).

The library is imported here without Keras (`RECURRENT_MNIST_DEFER_KERAS`), so that
`--help` and usage errors need no TensorFlow; a command imports the rest when it runs.
"""

import os

_saved = os.environ.get("RECURRENT_MNIST_DEFER_KERAS")
os.environ["RECURRENT_MNIST_DEFER_KERAS"] = "1"
try:
    import recurrent_mnist.settings  # noqa: F401 - the light part of the library, for the options
finally:
    if _saved is None:
        del os.environ["RECURRENT_MNIST_DEFER_KERAS"]
    else:
        os.environ["RECURRENT_MNIST_DEFER_KERAS"] = _saved
