"""The `recurrent-mnist` command line (installed as the package `recurrent_mnist_cli`)."""
