"""Exit codes of the mbfast commands, one meaning per number for every command (docs/alerts.md, docs/batch.md)."""
from __future__ import annotations

OK = 0        # all done
REJECTED = 1  # done, but some rows or packets were rejected (they are listed)
USAGE = 2     # usage error, found before any work: bad option, missing or unusable file or folder
NOT_DONE = 3  # nothing done, or the results were not committed (e.g. the disk filled while saving the state)


class NothingDone(Exception):
    """The job ran but did none of its work (every row rejected, no object classified): exit_codes.NOT_DONE."""


__all__ = ["NOT_DONE", "OK", "REJECTED", "USAGE", "NothingDone"]
