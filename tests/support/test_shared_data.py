"""tests/support/shared_data.py: a test needing a full data set skips (naming MBFAST_SHARED_DATA) only where there are no
full data sets at all; where they are expected, a missing or empty one fails it."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.shared_data import VARIABLE, locate, shared_data

RELATIVE = "plasticc_train_simulated/plasticc_train_metadata.csv"


def clone(tmp_path: Path) -> Path:
    repository = tmp_path / "somewhere" / "mbfast"
    repository.mkdir(parents=True)
    return repository


def test_a_clone_with_nothing_beside_it_skips_naming_the_variable(tmp_path: Path) -> None:
    where = locate({}, clone(tmp_path))
    assert not where.expected and where.folder == tmp_path / "somewhere" / "shared" / "data"
    with pytest.raises(pytest.skip.Exception, match=f"needs the full data set {RELATIVE}: set {VARIABLE} to the "
                                                    f"folder holding it"):
        shared_data(RELATIVE, where)


def test_shared_data_beside_the_clone_is_found_and_a_missing_file_fails(tmp_path: Path) -> None:
    repository = clone(tmp_path)
    folder = repository.parent / "shared" / "data"
    (folder / "plasticc_train_simulated").mkdir(parents=True)
    where = locate({}, repository)
    assert where.expected and where.folder == folder
    with pytest.raises(pytest.fail.Exception, match=f"{RELATIVE} is missing or unreadable in {folder} .found by "
                                                    r"../shared/data beside the repository.*does not skip"):
        shared_data(RELATIVE, where)
    (folder / RELATIVE).write_text("object_id,target\n")
    assert shared_data(RELATIVE, where) == folder / RELATIVE
    # an empty folder is no data set either
    with pytest.raises(pytest.fail.Exception, match="plasticc_train_simulated is missing or unreadable"):
        (folder / RELATIVE).unlink()
        shared_data("plasticc_train_simulated", where)


def test_the_variable_wins_and_a_wrong_one_fails(tmp_path: Path) -> None:
    repository = clone(tmp_path)
    (repository.parent / "shared" / "data").mkdir(parents=True)
    where = locate({VARIABLE: str(tmp_path / "typo")}, repository)
    assert where.expected and where.folder == tmp_path / "typo"
    with pytest.raises(pytest.fail.Exception, match=f"found by {VARIABLE}={tmp_path / 'typo'}"):
        shared_data(RELATIVE, where)
