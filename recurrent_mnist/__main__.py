"""`python -m recurrent_mnist` runs the `recurrent-mnist` command line (the package `recurrent_mnist_cli`)."""

from recurrent_mnist_cli.app import main

if __name__ == "__main__":
    main()
