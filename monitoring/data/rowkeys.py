"""Row keys: de-duplicating rows across files without holding the rows.

:func:`row_keys` gives each row a 128-bit key of its values (numbers compared as
numbers, missing values equal to each other); two different rows share a key with
probability about ``n**2 / 2**129``, below 1e-20 even at a billion rows.
:class:`SeenRows` keeps the keys of the rows kept so far, 16 bytes per row.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

_U64 = np.uint64
# Multipliers of two 64-bit mixers (splitmix64's and murmur3's finalisers), one per
# half of the key, and the start value of each half.
_MIXERS = (
    (_U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB), _U64(0x9E3779B97F4A7C15)),
    (_U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53), _U64(0xD6E8FEB86659FD93)),
)
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_NULL_STRING = _U64(0x6E756C6C6E756C6C)  # the words of a missing string
_EXACT_FLOAT = 2**53  # integers up to this size are exact as float64
_FILTER_BITS = 25  # SeenRows' filter: 2**25 bits, 4 MiB
_MAX_BYTES = 256  # longer strings are hashed by BLAKE2b


def _float_words(values: np.ndarray) -> list[np.ndarray]:
    """One word per value, equal for equal numbers (0.0 and -0.0, any two NaN)."""
    x = values.astype(np.float64) + 0.0  # a fresh array, and -0.0 becomes 0.0
    x[np.isnan(x)] = np.nan
    return [x.view(np.uint64)]


def _mix(h: np.ndarray, word: np.ndarray, mixer: tuple[np.uint64, ...]) -> None:
    """Fold ``word`` into the hashes ``h`` in place (xor, then a 64-bit finaliser)."""
    m1, m2, _ = mixer
    h ^= word
    h *= m1
    h ^= h >> _U64(31)
    h *= m2
    h ^= h >> _U64(29)


def _string_words(values: pd.Series) -> list[np.ndarray]:
    """Two words per string, of its UTF-8 bytes alone (vectorised in 8-byte words up
    to 256 bytes, else BLAKE2b); a missing value has its own."""
    array = pa.array(values.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type == pa.string():
        offsets_type: Any = np.int32
    elif array.type == pa.large_string():
        offsets_type = np.int64
    else:
        return _object_words(values)
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offsets_type)[array.offset : array.offset + n + 1]
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0)
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    # Element i of `unaligned` is the 8 bytes starting at byte i (little-endian).
    unaligned = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    digests = [np.full(n, seed, dtype=np.uint64) for _, _, seed in _MIXERS]
    for h, mixer in zip(digests, _MIXERS, strict=True):
        _mix(h, lengths.astype(np.uint64), mixer)
    short = lengths <= _MAX_BYTES
    longest = int(lengths[short].max()) if short.any() else 0
    for w in range(-(-longest // 8)):
        active = short & (lengths > 8 * w)
        position = np.minimum(starts + 8 * w, len(unaligned) - 1)
        word = unaligned[position] & _BYTE_MASKS[np.clip(lengths - 8 * w, 0, 8)]
        for h, mixer in zip(digests, _MIXERS, strict=True):
            mixed = h.copy()
            _mix(mixed, word, mixer)
            np.copyto(h, mixed, where=active)
    for i in np.flatnonzero(~short):
        raw = padded[starts[i] : starts[i] + lengths[i]].tobytes()
        first, second = struct.unpack("<QQ", hashlib.blake2b(raw, digest_size=16).digest())
        digests[0][i], digests[1][i] = first, second
    if array.null_count:
        nulls = np.asarray(array.is_null())
        for h in digests:
            h[nulls] = _NULL_STRING
    return digests


def _object_words(values: pd.Series) -> list[np.ndarray]:
    """Two independent 64-bit pandas hashes of each value (any dtype)."""
    objects = values.astype(object).to_numpy()
    return [
        pd.util.hash_array(objects, hash_key=key, categorize=False)
        for key in ("monitoring-rows1", "monitoring-rows2")  # 16 bytes each
    ]


def _column_words(values: pd.Series) -> list[np.ndarray]:
    kind = values.dtype.kind
    if kind in "iu":
        numbers = values.to_numpy()
        if not len(numbers) or (
            numbers.min() >= -_EXACT_FLOAT and numbers.max() <= _EXACT_FLOAT
        ):  # hashed as the float it equals, so 3 and 3.0 are the same value
            return _float_words(numbers)
        return [numbers.astype(np.int64).view(np.uint64), np.full(len(numbers), _U64(1))]
    if kind in "fb":
        return _float_words(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if isinstance(values.dtype, pd.StringDtype) or kind in "US":
        return _string_words(values.astype("string[pyarrow]"))
    return _object_words(values)


def row_keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A 128-bit key of each row's values, as two uint64 arrays (see the module).

    Examples
    --------
    >>> a, b = row_keys(pd.DataFrame({"s": ["x", "y", "x"], "n": [1, 2, 1.0]}))
    >>> bool(a[0] == a[2] and b[0] == b[2]), bool(a[0] == a[1])
    (True, False)
    """
    n = len(frame)
    halves = [np.full(n, seed, dtype=np.uint64) for _, _, seed in _MIXERS]
    for column in frame.columns:
        for word in _column_words(frame[column]):
            for h, mixer in zip(halves, _MIXERS, strict=True):
                _mix(h, word, mixer)
    return halves[0], halves[1]


def _merge_sorted(
    xa: np.ndarray, xb: np.ndarray, ya: np.ndarray, yb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Merge two runs sorted by their first array (linear time)."""
    into = np.searchsorted(xa, ya, side="right") + np.arange(len(ya))
    others = np.ones(len(xa) + len(ya), dtype=bool)
    others[into] = False
    out_a = np.empty(len(others), dtype=np.uint64)
    out_b = np.empty(len(others), dtype=np.uint64)
    out_a[into], out_b[into] = ya, yb
    out_a[others], out_b[others] = xa, xb
    return out_a, out_b


def _contains(ra: np.ndarray, rb: np.ndarray, qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Which keys ``(qa, qb)`` are in the run ``(ra, rb)`` (sorted by ``ra``)."""
    if not len(ra):
        return np.zeros(len(qa), dtype=bool)
    at = np.minimum(np.searchsorted(ra, qa), len(ra) - 1)
    same_a = ra[at] == qa
    found = same_a & (rb[at] == qb)
    for i in np.flatnonzero(same_a & ~found):  # several run keys share this `a`: scan them
        j = int(at[i])
        while j < len(ra) and ra[j] == qa[i] and not found[i]:
            found[i] = rb[j] == qb[i]
            j += 1
    return found


class SeenRows:
    """The keys of the rows kept so far, for de-duplication across batches.

    Keys are held in runs sorted by their first half, of halving sizes, so adding
    and looking up ``k`` rows costs ``O(k log n)``; a bit filter on the keys' top
    bits spares most new rows the look-up. Memory: 16 bytes a row plus 4 MiB.

    Examples
    --------
    >>> seen = SeenRows()
    >>> seen.admit(pd.DataFrame({"x": [1, 1, 2]})).tolist()
    [True, False, True]
    >>> seen.admit(pd.DataFrame({"x": [2, 3]})).tolist()
    [False, True]
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._filter = np.zeros(1 << (_FILTER_BITS - 3), dtype=np.uint8)
        self._mark = 0

    def mark(self) -> None:
        """Start a group of batches that :meth:`rollback` can forget."""
        self._mark = len(self._runs)

    def commit(self) -> None:
        """Keep the batches since :meth:`mark`."""
        self._mark = 0
        self._compact()

    def rollback(self) -> None:
        """Forget the batches admitted since :meth:`mark` (their filter bits stay set)."""
        del self._runs[self._mark :]
        self._mark = 0

    def _compact(self) -> None:
        # Merge equal-sized runs (a binary counter): O(log n) runs, each key moved
        # O(log n) times. Runs before the mark are left alone until a commit.
        runs = self._runs
        while len(runs) - self._mark > 1 and len(runs[-2][0]) <= len(runs[-1][0]):
            (xa, xb), (ya, yb) = runs[-2], runs.pop()
            runs[-1] = _merge_sorted(xa, xb, ya, yb)

    def admit(self, frame: pd.DataFrame) -> np.ndarray:
        """Mask of the rows of ``frame`` not seen before (in it or earlier); remember them."""
        a, b = row_keys(frame)
        # Sorted by `a`, equal keys are adjacent and (stable sort) in row order, so
        # the first of each group is the row's first occurrence in the batch.
        order = np.argsort(a, kind="stable")
        qa, qb = a[order], b[order]
        same_a, differ_b = qa[1:] == qa[:-1], qb[1:] != qb[:-1]
        if (same_a & differ_b).any():  # equal `a`, different `b` (a 64-bit collision)
            order = np.lexsort((b, a))  # stable too; groups equal (a, b) together
            qa, qb = a[order], b[order]
            same_a, differ_b = qa[1:] == qa[:-1], qb[1:] != qb[:-1]
        first = np.ones(len(qa), dtype=bool)
        first[1:] = ~same_a | differ_b
        candidates, qa, qb = order[first], qa[first], qb[first]
        # A bit per slot of the top 25 bits of `a` says whether any kept key may
        # have it; only those rows are looked up in the runs.
        slots = (qa >> _U64(64 - _FILTER_BITS)).astype(np.intp)
        maybe = np.flatnonzero((self._filter[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1)
        if len(maybe) and self._runs:
            found = np.zeros(len(maybe), dtype=bool)
            for ra, rb in self._runs:
                found |= _contains(ra, rb, qa[maybe], qb[maybe])
            if found.any():
                new = np.ones(len(qa), dtype=bool)
                new[maybe[found]] = False
                candidates, qa, qb, slots = candidates[new], qa[new], qb[new], slots[new]
        if len(slots):  # slots are sorted: OR the bits of each byte together
            byte = slots >> 3
            starts = np.flatnonzero(np.diff(byte, prepend=-1))
            bits = np.left_shift(1, slots & 7).astype(np.uint8)
            self._filter[byte[starts]] |= np.bitwise_or.reduceat(bits, starts)
        keep = np.zeros(len(a), dtype=bool)
        keep[candidates] = True
        if len(candidates):
            self._runs.append((qa, qb))
            self._compact()
        return keep
