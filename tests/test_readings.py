"""The readings of an image as a sequence: names, seeds and stored permutations."""

import pytest

from recurrent_mnist.errors import ConfigError
from recurrent_mnist.readings import (
    check_permutation,
    check_permutation_seed,
    check_reading,
    draw_permutation,
    sequence_shape,
)


@pytest.mark.parametrize(
    ("given", "name"), [("rows", "rows"), ("Permuted_Pixels", "permuted-pixels"), ("pixels", "pixels")]
)
def test_reading_names(given, name):
    assert check_reading(given) == name


@pytest.mark.parametrize("bad", ["columns", "", None, 3])
def test_an_unknown_reading_is_one_sentence_naming_the_option(bad):
    with pytest.raises(ConfigError, match=r"`reading` must be one of rows, pixels, permuted-pixels") as caught:
        check_reading(bad)
    assert caught.value.argument == "reading"


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True, None])
def test_a_permutation_seed_is_an_integer(bad):
    with pytest.raises(ConfigError, match="`permutation_seed` must be an integer >= 0"):
        check_permutation_seed(bad)


def test_a_permutation_is_fixed_by_its_seed_and_differs_between_seeds():
    first = draw_permutation(784, 0)
    assert first == draw_permutation(784, 0)
    assert sorted(first) == list(range(784))
    assert first != draw_permutation(784, 1)


def test_a_stored_permutation_is_checked():
    assert check_permutation([2, 0, 1], 3) == [2, 0, 1]
    with pytest.raises(ConfigError, match=r"each of 0 \.\. n-1 once"):
        check_permutation([0, 0, 1])
    with pytest.raises(ConfigError, match="orders 3 pixels; these images have 4"):
        check_permutation([2, 0, 1], 4)


def test_sequence_shapes():
    assert sequence_shape(28, 28, "rows") == (28, 28)
    assert sequence_shape(28, 28, "pixels") == (784, 1)
    assert sequence_shape(None, 28, "permuted-pixels") == (None, 1)
