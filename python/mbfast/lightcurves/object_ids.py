"""Integer codes of object ids: a ZTF objectId coded exactly and reversibly, any other text id by its hash.

The engine keys its state by int64; these codes are what readers, row checks and alert packets give it for text ids.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_OBJECT_ID = re.compile(r"ZTF(\d{2})([a-z]{7})")
_LETTERS = 26 ** 7


def ztf_object_id(name: str) -> int:
    """ZTF objectId -> int64, reversible: year * 26**7 + the seven letters read as base-26 digits (a = 0).

    'ZTF18abcdefg' -> 18 * 26**7 + value('abcdefg'); every id lies in [0, 100 * 26**7) < 2**40.

    >>> ztf_object_id("ZTF18aaaaaab")
    144572583169
    >>> ztf_object_name(ztf_object_id("ZTF21abcdxyz"))
    'ZTF21abcdxyz'
    """
    match = _OBJECT_ID.fullmatch(name)
    if match is None:
        raise ValueError(f"objectId {name!r} is not a ZTF id (ZTF + 2 digits + 7 lowercase letters)")
    value = 0
    for letter in match.group(2):
        value = value * 26 + (ord(letter) - ord("a"))
    return int(match.group(1)) * _LETTERS + value


def ztf_object_name(obj_id: int) -> str:
    """Inverse of `ztf_object_id`."""
    if not 0 <= obj_id < 100 * _LETTERS:
        raise ValueError(f"obj_id {obj_id} is not an encoded ZTF objectId (0 <= id < 100 * 26**7)")
    year, value = divmod(int(obj_id), _LETTERS)
    letters = []
    for _ in range(7):
        value, digit = divmod(value, 26)
        letters.append(chr(ord("a") + digit))
    return f"ZTF{year:02d}{''.join(reversed(letters))}"



_HASHED = 1 << 62  # codes of other text ids lie in [2**62, 2**63): apart from ZTF's [0, 2**40)


def object_codes(names: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 (N,) codes of text object ids, the same in every process and run (so a --state folder keeps them).

    A ZTF objectId is coded exactly and reversibly, as the alert readers code it (ztf_object_id);
    any other text id gets 62 bits of its BLAKE2b hash plus 2**62. Each distinct id is coded once (a million rows
    of 10,000 objects cost 10,000 hashes).
    """
    encoded = pc.dictionary_encode(names)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.empty(len(encoded.dictionary), dtype=np.int64)
    for index, name in enumerate(encoded.dictionary.to_pylist()):
        try:
            codes[index] = ztf_object_id(name)
        except ValueError:  # not a ZTF objectId
            digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
            codes[index] = _HASHED | (digest & (_HASHED - 1))
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return codes[indices] if len(codes) else np.zeros(len(encoded), dtype=np.int64)
