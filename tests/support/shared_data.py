"""Where the tests find data.

Most tests use data inside the repository: the PLAsTiCC sample shipped in the package
(`mbfast.lightcurves.sample.load_sample`) and small fixtures in tests/data (each folder has a PROVENANCE.md). The few that
need a full data set ask `shared_data(relative path)` for it, found through $MBFAST_SHARED_DATA, else in
../shared/data beside the repository.

On a machine with neither, those tests skip with a reason naming the variable. Where either exists (our machines
and CI, with ../shared/data beside the clone), a data set missing or unreadable there fails the test instead: the
README's test command, which .ci/run runs unchanged, cannot hide missing data behind a skip.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

VARIABLE = "MBFAST_SHARED_DATA"
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SharedData:
    folder: Path
    expected: bool  # the variable is set, or ../shared/data exists: missing data is a failure, not a skip
    found_by: str


def locate(environ: Mapping[str, str] = os.environ, repository: Path = REPOSITORY) -> SharedData:
    value = environ.get(VARIABLE)
    if value:
        return SharedData(Path(value), True, f"{VARIABLE}={value}")
    folder = repository.parent / "shared" / "data"
    return SharedData(folder, folder.is_dir(), "../shared/data beside the repository")


def readable(path: Path) -> bool:
    if path.is_dir():
        return os.access(path, os.R_OK | os.X_OK) and any(path.iterdir())
    return path.is_file() and os.access(path, os.R_OK)


def shared_data(relative: str, where: SharedData | None = None) -> Path:
    """The file or folder `relative` of the full data sets; skips the test where there are none, fails it where
    they are expected but this one is missing or unreadable."""
    where = where or locate()
    path = where.folder / relative
    if not where.expected:
        pytest.skip(f"needs the full data set {relative}: set {VARIABLE} to the folder holding it "
                    f"(nothing at {where.folder})")
    if not readable(path):
        pytest.fail(f"{relative} is missing or unreadable in {where.folder} (found by {where.found_by}): the full "
                    f"data sets are expected there, so this test does not skip", pytrace=False)
    return path
