"""The published figures kept per task, and which cells they stand for."""

from recurrent_mnist import cell_names
from recurrent_mnist.published import PUBLISHED, anchors
from recurrent_mnist.readings import READINGS


def test_every_task_kept_is_a_reading_of_mnist_and_names_registered_cells():
    assert set(PUBLISHED) == {("mnist", reading) for reading in READINGS}
    for found in PUBLISHED.values():
        for anchor in found:
            assert anchor.accuracy.endswith("%") and anchor.source
            assert all(cell in cell_names.BUILTIN_CELLS for cell in anchor.cells)


def test_tasks_without_published_figures_have_none():
    assert anchors("fashion-mnist", "rows") == () and anchors("mnist-sample", "pixels") == ()
    assert [a.cell for a in anchors("mnist", "pixels")] == ["LSTM", "GRU", "plain RNN", "IndRNN"]
