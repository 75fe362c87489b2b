"""What the batch jobs share about their files: the output path checked before any work, the temporary name it is
written under, and the clean-up of what a killed run left behind.

Not a job itself: it reads no data and loads no model.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

def check_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = (),
                 folder: bool = False) -> Path:
    """The path a job should write for `-o output`, checked before any work; raises ValueError with one line.

    Refused: an output that is (or resolves to) one of `inputs`, a folder (unless `folder`: the Dask path writes
    a Parquet folder), or a place this process cannot write. A symlink is followed: its target is returned, so the
    job replaces the target's content and the link stays a link.
    """
    given = Path(output)
    target = given.resolve()  # follows symlinks, also a chain of them; a missing target stays as named
    if str(output) == "":
        raise ValueError("-o is empty")
    if "\0" in str(output):
        raise ValueError(f"-o {str(output)!r} holds a NUL byte")
    for source in inputs:
        source_path = Path(source).resolve()
        if target == source_path or target in source_path.parents:  # the input, or a folder holding it
            raise ValueError(f"-o {given} is the input {source}: refusing to overwrite it")
    if target.is_dir() and not folder:
        raise ValueError(f"-o {given} is a folder; give a file name")
    if target.exists() and not os.access(target, os.W_OK):
        raise ValueError(f"-o {given}: no permission to write it")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"-o {given}: cannot write in {parent}")
    return target


def temporary_name(output: Path) -> Path:
    """Where a job writes `output` before renaming it into place: `.NAME.PID.tmp` beside it."""
    return output.with_name(f".{output.name}.{os.getpid()}.tmp")


def remove_leftovers(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Remove what killed runs left in `folder`: names matching a pattern whose `(?P<pid>...)` group is a process
    id no longer running (a live run's files are left alone). Returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    compiled = [re.compile(pattern) for pattern in patterns]
    for path in folder.iterdir():
        for pattern in compiled:
            match = pattern.fullmatch(path.name)
            if match and not _running(int(match.group("pid"))):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
                break
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True

