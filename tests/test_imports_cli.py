"""`--import` as a user writes it: a module in the current folder, a `.py` file, a folder of them."""

import textwrap

import pytest
from clirun import invoke

from recurrent_mnist.environment import code_identity, import_digest

CELL_FILE = textwrap.dedent("""
    import keras
    from recurrent_mnist import register_cell


    def my_cell(units, *, return_sequences=False, dropout=0.0, recurrent_dropout=0.0, name=None):
        return keras.layers.SimpleRNN(units, return_sequences=return_sequences, dropout=dropout, name=name)


    register_cell("my_cell", my_cell, overwrite=True)
""")


@pytest.fixture
def user_folder(tmp_path):
    (tmp_path / "mycells.py").write_text(CELL_FILE)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "more_cells.py").write_text(CELL_FILE.replace("my_cell", "more_cell"))
    return tmp_path


@pytest.mark.parametrize("entry", ["mycells", "./mycells.py", "mycells.py", "plugins"])
def test_a_module_in_the_current_folder_a_file_or_a_folder_registers_its_cells(user_folder, entry):
    # An unknown cell lists the registered ones: the imported cell is among them, and nothing trains.
    result = invoke(
        *("bench", "--dataset", "mnist-sample", "--import", entry, "--cells", "no_such_cell"),
        *("--results-dir", user_folder / "results"),
        cwd=user_folder,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("more_cell" if entry == "plugins" else "my_cell") in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_module_found_nowhere_names_where_it_looked_and_what_to_do(tmp_path):
    result = invoke("bench", "--dataset", "mnist-sample", "--import", "nocells", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "no module named nocells on Python's path or in the current folder" in message
    assert "--import path/to/nocells.py" in message and "Traceback" not in message


def test_a_file_that_does_not_exist_is_named(tmp_path):
    result = invoke("bench", "--dataset", "mnist-sample", "--import", "./missing.py", cwd=tmp_path)
    assert result.returncode == 2 and "missing.py is not a file or folder" in " ".join(result.stderr.split())


def test_an_imported_file_is_named_in_the_run_identity_by_its_name_not_its_place(user_folder, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "mycells.py").write_text(CELL_FILE)
    here, there = code_identity([str(user_folder / "mycells.py")]), code_identity([str(elsewhere / "mycells.py")])
    assert list(here["imports"]) == ["mycells"] and here["imports"] == there["imports"]
    assert here["imports"]["mycells"] == import_digest(str(user_folder / "mycells.py")) is not None


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["mycells.py", "mycells"])
def test_an_isolated_training_process_trains_the_cell_of_a_file_or_module_in_the_current_folder(
    user_folder, tiny_data_dir, entry
):
    # The command runs in a fresh process from the folder that holds mycells.py, with nothing on PYTHONPATH,
    # and each variant trains in a process of its own, which must import the module too.
    result = invoke(
        *("bench", "--dataset", "mnist", "--data-dir", tiny_data_dir, "--import", entry, "--cells", "my_cell"),
        *("--units", "4", "--epochs", "1", "--no-measure-inference", "--results-dir", "results", "--run-name", "mine"),
        cwd=user_folder,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = (user_folder / "results" / "mine" / "runs.csv").read_text()
    assert "my_cell" in runs and ",ok," in runs, runs
