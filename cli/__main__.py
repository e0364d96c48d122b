"""`python -m recurrent_mnist_cli` runs the same app as the `recurrent-mnist` command."""

from recurrent_mnist_cli.app import main

if __name__ == "__main__":
    main()
