import shutil

import pytest

from nasrun.errors import UserInputError
from nasrun.objectives import NB201Objective, default_nb201_dir, load_nb201
from nasrun.objectives.nb201_table import FILE_12, FILE_200
from nasrun.space import nb201_config
from nasrun.trial import Suggestion

BEST_ROW = 6111


@pytest.fixture(scope="module")
def table():
    return load_nb201()


def test_known_rows(table):
    assert table.valid200[BEST_ROW] == pytest.approx(91.60666665)
    assert table.test200[BEST_ROW] == pytest.approx(91.09)
    assert table.valid200.max() == pytest.approx(91.60666665)
    assert table.valid12[1] == pytest.approx(82.83399999389648)
    assert load_nb201(default_nb201_dir()) is table  # cached per path


def test_evaluate_fidelities_time_and_resume(table):
    config = nb201_config(table.arch[1])
    obj = NB201Objective()
    full, secs = obj.evaluate(Suggestion(0, config))
    assert full.metrics["valid_accuracy"] == pytest.approx(90.76933332)
    assert full.metrics["test_accuracy"] == pytest.approx(90.51333333)
    assert secs == pytest.approx(2169.641376) == full.metrics["train_seconds"]
    low, secs12 = obj.evaluate(Suggestion(1, config, budget=12.0))
    assert low.metrics["valid_accuracy"] == pytest.approx(82.83399999389648)
    assert secs12 == pytest.approx(2169.641376 * 12 / 200)
    mid, secs_mid = obj.evaluate(Suggestion(2, config, budget=66.0, resume_from=1))
    assert mid.metrics["valid_accuracy"] == low.metrics["valid_accuracy"]  # nearest lower
    assert secs_mid == pytest.approx(2169.641376 * (66 - 12) / 200)
    top, secs_top = obj.evaluate(Suggestion(3, config, budget=200.0, resume_from=2))
    assert top.metrics["valid_accuracy"] == full.metrics["valid_accuracy"]
    assert secs_top == pytest.approx(2169.641376 * 134 / 200)
    assert top.metrics["epochs"] == 200.0


def _copy_tables(tmp_path):
    src = default_nb201_dir()
    for f in (FILE_200, FILE_12):
        shutil.copy(src / f, tmp_path / f)
    return tmp_path


def _rewrite(path, fn):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


def test_missing_file(tmp_path):
    with pytest.raises(UserInputError, match=f"{FILE_200}.*not found"):
        load_nb201(tmp_path)


def test_missing_column(tmp_path):
    d = _copy_tables(tmp_path)
    _rewrite(d / FILE_200, lambda ls: [ls[0].replace("train-all-time", "train-time")] + ls[1:])
    with pytest.raises(UserInputError, match="missing column.*train-all-time"):
        load_nb201(d)


def test_truncated_file(tmp_path):
    d = _copy_tables(tmp_path)
    _rewrite(d / FILE_12, lambda ls: ls[:-100])
    with pytest.raises(UserInputError, match=f"{FILE_12}: 15525 rows, expected 15625"):
        load_nb201(d)


def test_cut_mid_row(tmp_path):
    d = _copy_tables(tmp_path)
    _rewrite(d / FILE_200, lambda ls: ls[:-1] + [ls[-1][:40]])
    with pytest.raises(UserInputError, match="line 15626.*truncated"):
        load_nb201(d)


def test_non_numeric_and_out_of_order(tmp_path):
    d = _copy_tables(tmp_path)
    _rewrite(d / FILE_12, lambda ls: ls[:5] + [ls[5].replace(",", ",x", 2).replace(",x", ",", 1)]
             + ls[6:])
    with pytest.raises(UserInputError, match="line 6: column valid-accuracy has non-numeric"):
        load_nb201(d)
    d2 = tmp_path / "swapped"
    d2.mkdir()
    _copy_tables(d2)
    _rewrite(d2 / FILE_12, lambda ls: [ls[0], ls[2], ls[1]] + ls[3:])
    with pytest.raises(UserInputError, match="line 2: arch_str .* same order"):
        load_nb201(d2)
