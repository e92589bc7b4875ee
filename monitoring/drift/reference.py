"""The reference profile: what a drift check needs to know about the training data.

Each column is summarised once at training time (sorted values, PSI bins, category
counts) and saved beside the model as one ``.npz``: a check only costs the batch.
Ingestion fits one of the ingested data too (:meth:`ReferenceProfile.fit_arrays`,
column by column), which a drift check accepts as the current data.

A fit is one streaming pass with memory bounded per column: past
:data:`EXACT_VALUES` finite values a numeric column's sorted values are the points
of a quantile sketch (:class:`_Sketch`, within :func:`sketch_error` of the exact
distribution); mean, spread and category counts stay exact.
"""

from __future__ import annotations

import functools
import json
import math
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import pandas as pd

from monitoring.config import KINDS, DriftOptions, check_value
from monitoring.drift.statistics import (
    FloatArray,
    IntArray,
    _finite,
    _num,
    _prefix_integral,
    _psi_bins,
    _runs,
)
from monitoring.exceptions import DataValidationError, IntegrityError, NotFittedError

_PROFILE_FORMAT: Final[str] = "monitoring.drift.ReferenceProfile"
_PROFILE_VERSION: Final[int] = 2  # 2: sorted values may be saved as runs
_READABLE_VERSIONS: Final[tuple[int, ...]] = (1, 2)


@dataclass(frozen=True)
class _NumericProfile:
    """Sorted finite values of one reference column and what is derived from them."""

    sorted_values: FloatArray
    mean: float
    std: float  # population std (ddof=0)
    psi_edges: FloatArray
    psi_props: FloatArray

    @functools.cached_property
    def prefix(self) -> FloatArray:
        """:func:`_prefix_integral` of the sorted values, computed on first use: only a
        reference needs it, a profile of current data never does."""
        return _prefix_integral(self.sorted_values)


@dataclass(frozen=True)
class _CategoricalProfile:
    """Category counts of one reference column (sorted float64 values, or labels)."""

    values: FloatArray | tuple[str, ...]
    counts: IntArray


@dataclass(frozen=True)
class _ColumnProfile:
    """Everything a drift check needs to know about one reference column."""

    name: str
    kind: str  # "numeric" or "categorical"
    value_type: str  # "numeric" (float64 values) or "label" (string labels)
    n_rows: int
    n_null: int
    numeric: _NumericProfile | None
    categorical: _CategoricalProfile | None

    @property
    def n_valid(self) -> int:
        return self.n_rows - self.n_null


def _is_label_dtype(dtype: Any) -> bool:
    """Object, string and category dtypes hold labels."""
    return bool(
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _numeric_values(series: pd.Series, what: str) -> FloatArray:
    """Float64 values of a column (missing as NaN) or DataValidationError."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        return series.to_numpy()
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if _is_label_dtype(dtype):
        try:
            converted = pd.to_numeric(series, errors="raise")
            return pd.Series(converted).to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{what} column {series.name!r} is numeric but has non-numeric values: {exc}"
            ) from exc
        except OverflowError:
            raise DataValidationError(
                f"{what} column {series.name!r} has an integer beyond the float range"
            ) from None
    raise DataValidationError(f"{what} column {series.name!r} has unsupported dtype {dtype}")


def _label_counts(series: pd.Series) -> dict[str, int]:
    """Counts of the non-missing values of a label column, keyed by ``str(value)``."""
    out: dict[str, int] = {}
    for key, count in series.value_counts(dropna=True).items():
        if count > 0:
            label = str(key)
            out[label] = out.get(label, 0) + int(count)
    return out


def _numeric_profile(sorted_values: FloatArray, psi_bins: int) -> _NumericProfile:
    if sorted_values.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return _NumericProfile(empty, math.nan, math.nan, empty, empty)
    edges, props = _psi_bins(sorted_values, psi_bins)
    # Scaled by the largest magnitude, so values near the float limit (where squares
    # and sums overflow) still get a finite mean and spread.
    scale = max(abs(float(sorted_values[0])), abs(float(sorted_values[-1])))
    scale = scale if math.isfinite(scale) and scale > 1e150 else 1.0
    scaled = sorted_values / scale if scale != 1.0 else sorted_values
    mean, std = scale * float(np.mean(scaled)), scale * float(np.std(scaled))
    return _NumericProfile(sorted_values, mean, std, edges, props)


def _numeric_categories(sorted_values: FloatArray) -> _CategoricalProfile:
    values, cumulative = _runs(sorted_values)
    return _CategoricalProfile(values=values.copy(), counts=np.diff(cumulative, prepend=0))


def _label_column(series: pd.Series, name: str, n_rows: int) -> _ColumnProfile:
    """Profile of a column of labels (``n_rows`` counting the missing ones)."""
    counts = _label_counts(series)
    categorical = _CategoricalProfile(
        values=tuple(counts), counts=np.array(list(counts.values()), dtype=np.int64)
    )
    n_null = n_rows - sum(counts.values())
    return _ColumnProfile(name, "categorical", "label", n_rows, n_null, None, categorical)


def _profile_column(
    series: pd.Series, name: str, *, kind: str | None, max_unique: int, psi_bins: int
) -> _ColumnProfile:
    dtype = series.dtype
    n_rows = int(series.size)
    if (_is_label_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) and kind != "numeric":
        return _label_column(series, name, n_rows)
    return _fit_numbers(
        _numeric_values(series, "reference"),
        name,
        n_rows=n_rows,
        kind=kind,
        max_unique=max_unique,
        psi_bins=psi_bins,
    )


def _sorted_numbers(values: np.ndarray) -> FloatArray:
    """The finite values of a numeric array, sorted, as float64 (a new array).

    Integers are sorted before they are converted: of 16 bits or fewer by radix sort
    (stable), about 15x faster than sorting their float64 copies.
    """
    if values.dtype.kind in "iu":
        stable = values.dtype.itemsize <= 2
        return np.sort(values, kind="stable" if stable else None).astype(np.float64)
    out = _finite(values.astype(np.float64))  # a copy: the caller's array is not sorted
    out.sort()
    return out


def _distinct(sorted_values: FloatArray) -> int:
    """How many distinct values a sorted array holds (no index array of 8 bytes each)."""
    if sorted_values.size == 0:
        return 0
    return 1 + int(np.count_nonzero(sorted_values[1:] != sorted_values[:-1]))


EXACT_VALUES = 1 << 17  # a column of at most this many finite values keeps them all
SKETCH_POINTS = 1 << 16  # a longer one keeps this many quantile points (512 KiB)
SKETCH_CHUNK = 1 << 15  # values sorted at a time (in cache: 1.7x faster than 1M at once)
SKETCH_REDUCTION = 4  # a sorted chunk is kept as SKETCH_CHUNK / 4 points


def _quantile_points(values: FloatArray, weights: FloatArray, points: int) -> FloatArray:
    """``points`` values of equal weight standing for weighted sorted ``values``: the
    value at the middle rank of each of ``points`` equal slices of the total weight."""
    cumulative = np.cumsum(weights)
    ranks = (np.arange(points) + 0.5) * (cumulative[-1] / points)
    at = np.minimum(np.searchsorted(cumulative, ranks, side="left"), values.size - 1)
    return values[at]


def sketch_error(n: int) -> float:
    """Bound on how far a sketch of ``n`` values moves the empirical distribution
    function (so a KS statistic against it): see :class:`_Sketch`; 0 when exact."""
    if n <= EXACT_VALUES:
        return 0.0
    chunks = -(-n // SKETCH_CHUNK)
    per_chunk = max(SKETCH_CHUNK // SKETCH_REDUCTION, 1)
    compressions = chunks * per_chunk // SKETCH_POINTS + 1
    return 1 / per_chunk + compressions / SKETCH_POINTS + 2 * (chunks + compressions) / n


class _Sketch:
    """One numeric column streamed in sorted chunks, in bounded memory.

    Up to :data:`EXACT_VALUES` finite values are kept, sorted: the profile is exact.
    Past that, each sorted chunk of ``c`` values is reduced to
    ``SKETCH_CHUNK / SKETCH_REDUCTION`` points of equal weight (the value at the
    middle rank of each equal slice), and once more than ``2 * SKETCH_POINTS`` points
    are held they are compressed to :data:`SKETCH_POINTS` (likewise by weight). So a
    column costs at most ``2 * SKETCH_POINTS + SKETCH_CHUNK`` values whatever its
    length, and one sort of each chunk. A reduction of values of total weight ``W``
    to ``p`` points moves the empirical distribution function by at most ``W / p``
    values, so the sketch is within :func:`sketch_error` of the exact one (2.5e-4 at
    1M values, 7.9e-4 at 10M; the bound is loose: 1.2e-5 was measured at 1M), and so
    is a KS statistic against it. Count, mean and spread are exact (Chan's pairwise
    update), and so are the counts of each value while there are at
    most ``max_unique`` distinct ones (what a categorical profile needs).
    """

    def __init__(self, max_unique: int, exact: int, points: int) -> None:
        self.max_unique, self.exact, self.points = max_unique, exact, points
        self.kept: list[FloatArray] = []  # sorted chunks, while exact
        self.held = 0
        self.values: list[FloatArray] = []  # points, once sketched
        self.weights: list[FloatArray] = []
        self.sketched = False
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean
        self.distinct: dict[float, int] | None = {}  # None: more than max_unique

    def add(self, chunk: FloatArray) -> None:
        """Merge sorted finite float64 values."""
        if chunk.size == 0:
            return
        if self.distinct is not None:
            unique, cumulative = _runs(chunk)
            if unique.size > self.max_unique:
                self.distinct = None
        if self.distinct is not None:
            counts = np.diff(cumulative, prepend=0).tolist()
            for value, count in zip(unique.tolist(), counts, strict=True):
                self.distinct[value] = self.distinct.get(value, 0) + count
            if len(self.distinct) > self.max_unique:
                self.distinct = None
        if not self.sketched and self.held + chunk.size <= self.exact:
            self.kept.append(chunk)
            self.held += chunk.size
            return
        if not self.sketched:  # the values kept so far become points too
            self.sketched = True
            for kept in self.kept:
                self._reduce(kept)
            self.kept = []
        self._reduce(chunk)

    def _reduce(self, chunk: FloatArray) -> None:
        self._moments(chunk)
        per_chunk = max(SKETCH_CHUNK // SKETCH_REDUCTION, 1)
        if chunk.size <= per_chunk:
            self.values.append(chunk)
            self.weights.append(np.ones(chunk.size))
        else:
            ranks = ((np.arange(per_chunk) + 0.5) * (chunk.size / per_chunk)).astype(np.intp)
            self.values.append(chunk[ranks])
            self.weights.append(np.full(per_chunk, chunk.size / per_chunk))
        self.held = sum(v.size for v in self.values)
        if self.held > 2 * self.points:
            self._compress()

    def _compress(self) -> None:
        values, weights = np.concatenate(self.values), np.concatenate(self.weights)
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
        self.values = [_quantile_points(values, weights, self.points)]
        self.weights = [np.full(self.points, float(weights.sum()) / self.points)]
        self.held = self.points

    def _moments(self, chunk: FloatArray) -> None:
        n = chunk.size
        if n == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):  # near the float limit: inf
            mean = float(np.mean(chunk))
            m2 = float(np.sum(np.square(chunk - mean)))
            total = self.count + n
            delta = mean - self.mean
            self.mean += delta * n / total
            self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def column(self, name: str, *, n_rows: int, kind: str | None, psi_bins: int) -> _ColumnProfile:
        """The column's profile (as :func:`_numbers_column` gives of all its values)."""
        if not self.sketched:  # every value kept: the exact profile
            values = np.concatenate(self.kept) if self.kept else np.zeros(0)
            if len(self.kept) > 1:
                values.sort()
            return _numbers_column(
                values,
                name,
                n_rows=n_rows,
                kind=kind,
                max_unique=self.max_unique,
                psi_bins=psi_bins,
            )
        self._compress()
        points = self.values[0]
        if kind is None:
            small = self.distinct is not None and len(self.distinct) > 0
            whole = small and all(float(v).is_integer() for v in self.distinct or {})
            kind = "categorical" if whole else "numeric"
        categorical = None
        if kind == "categorical" and self.distinct is not None:
            values = np.array(sorted(self.distinct), dtype=np.float64)
            counts = np.array([self.distinct[v] for v in values.tolist()], dtype=np.int64)
            categorical = _CategoricalProfile(values=values, counts=counts)
        elif kind == "categorical":  # forced, with many distinct values: counts unknown
            kind = "numeric"
        edges, props = _psi_bins(points, psi_bins)
        std = math.sqrt(self.m2 / self.count) if self.m2 >= 0 else math.nan
        numeric = _NumericProfile(points, self.mean, std, edges, props)
        return _ColumnProfile(
            name=name,
            kind=kind,
            value_type="numeric",
            n_rows=n_rows,
            n_null=n_rows - self.count,
            numeric=numeric,
            categorical=categorical,
        )


def sorted_sample(values: np.ndarray) -> tuple[FloatArray, int]:
    """The finite values of a numeric array sorted, or past :data:`EXACT_VALUES` of
    them the points of its :class:`_Sketch` (each standing for as many values); and
    how many finite values it holds."""
    if values.size <= EXACT_VALUES:  # exact, in one sort
        exact = _sorted_numbers(values)
        return exact, int(exact.size)
    sketch = _Sketch(0, EXACT_VALUES, SKETCH_POINTS)
    for start in range(0, values.size, SKETCH_CHUNK):
        sketch.add(_sorted_numbers(values[start : start + SKETCH_CHUNK]))
    if not sketch.sketched:
        kept = np.concatenate(sketch.kept) if sketch.kept else np.zeros(0)
        if len(sketch.kept) > 1:
            kept.sort()
        return kept, int(kept.size)
    sketch._compress()
    return sketch.values[0], sketch.count


def _fit_numbers(
    values: np.ndarray,
    name: str,
    *,
    n_rows: int,
    kind: str | None,
    max_unique: int,
    psi_bins: int,
) -> _ColumnProfile:
    """Profile of a numeric column (any numeric dtype; NaN and infinities skipped),
    streamed through a :class:`_Sketch` :data:`SKETCH_CHUNK` values at a time."""
    sketch = _Sketch(max_unique, EXACT_VALUES, SKETCH_POINTS)
    for start in range(0, values.size, SKETCH_CHUNK):
        sketch.add(_sorted_numbers(values[start : start + SKETCH_CHUNK]))
    return sketch.column(name, n_rows=n_rows, kind=kind, psi_bins=psi_bins)


def _numbers_column(
    values: FloatArray,
    name: str,
    *,
    n_rows: int,
    kind: str | None,
    max_unique: int,
    psi_bins: int,
) -> _ColumnProfile:
    """Profile of a numeric column from its sorted finite ``values``, of ``n_rows`` rows."""
    if kind is None:
        small = 0 < _distinct(values) <= max_unique
        unique = _runs(values)[0] if small else values
        kind = "categorical" if small and bool(np.all(unique == np.floor(unique))) else "numeric"
    return _ColumnProfile(
        name=name,
        kind=kind,
        value_type="numeric",
        n_rows=n_rows,
        n_null=n_rows - int(values.size),
        numeric=_numeric_profile(values, psi_bins),
        categorical=_numeric_categories(values) if kind == "categorical" else None,
    )


def _column_to_npz(p: _ColumnProfile, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """JSON metadata and arrays of one column profile (array names start with ``key``)."""
    entry: dict[str, Any] = {
        "name": p.name,
        "kind": p.kind,
        "value_type": p.value_type,
        "n_rows": p.n_rows,
        "n_null": p.n_null,
        "labels": None,
    }
    arrays: dict[str, Any] = {}
    if p.numeric is not None:
        arrays.update(_sorted_to_npz(p.numeric.sorted_values, key))
        arrays[f"{key}_psi_edges"] = p.numeric.psi_edges
        arrays[f"{key}_psi_props"] = p.numeric.psi_props
        entry["mean"] = _num(p.numeric.mean)
        entry["std"] = _num(p.numeric.std)
    if p.categorical is not None:
        arrays[f"{key}_cat_counts"] = p.categorical.counts
        if isinstance(p.categorical.values, tuple):
            entry["labels"] = list(p.categorical.values)
        else:
            arrays[f"{key}_cat_values"] = p.categorical.values
    return entry, arrays


def _sorted_to_npz(sorted_values: FloatArray, key: str) -> dict[str, np.ndarray]:
    """Sorted values as saved: as runs (distinct values and their counts) when fewer
    than half of them are distinct, else as they are. (A run of zeros comes back with
    one sign; every drift statistic takes ``-0.0`` and ``0.0`` alike.)"""
    if 2 * _distinct(sorted_values) > sorted_values.size:
        return {f"{key}_sorted": sorted_values}
    values, cumulative = _runs(sorted_values)
    counts = np.diff(cumulative, prepend=0)
    kind = np.min_scalar_type(int(counts.max())) if counts.size else np.uint8
    return {f"{key}_run_values": values, f"{key}_run_counts": counts.astype(kind)}


def _sorted_from_npz(data: Mapping[str, np.ndarray], key: str) -> FloatArray:
    """Inverse of :func:`_sorted_to_npz`."""
    if f"{key}_sorted" in data:
        return np.ascontiguousarray(data[f"{key}_sorted"], dtype=np.float64)
    values = data[f"{key}_run_values"].astype(np.float64)
    return np.repeat(values, data[f"{key}_run_counts"].astype(np.intp))


def _column_from_npz(entry: dict[str, Any], data: dict[str, Any], key: str) -> _ColumnProfile:
    """Inverse of :func:`_column_to_npz`."""
    numeric = None
    if f"{key}_psi_edges" in data:
        values = _sorted_from_npz(data, key)
        mean, std = (math.nan if entry[k] is None else float(entry[k]) for k in ("mean", "std"))
        edges, props = (data[f"{key}_psi_{k}"].astype(np.float64) for k in ("edges", "props"))
        numeric = _NumericProfile(values, mean, std, edges, props)
    categorical = None
    if f"{key}_cat_counts" in data:
        labels = entry["labels"]
        categorical = _CategoricalProfile(
            values=(
                tuple(str(v) for v in labels)
                if labels is not None
                else data[f"{key}_cat_values"].astype(np.float64)
            ),
            counts=data[f"{key}_cat_counts"].astype(np.int64),
        )
    return _ColumnProfile(
        name=str(entry["name"]),
        kind=check_value("kind", entry["kind"], KINDS),
        value_type=entry["value_type"],
        n_rows=int(entry["n_rows"]),
        n_null=int(entry["n_null"]),
        numeric=numeric,
        categorical=categorical,
    )


class ReferenceProfile:
    """Per-column summary of the reference data, computed once.

    scikit-learn style: :meth:`fit` learns ``columns_``, ``kinds_``, ``n_rows_`` and
    ``profiles_`` and returns ``self``; an unfitted profile raises NotFittedError.
    Integer-valued numeric columns with at most ``categorical_max_unique`` distinct
    values are categorical, unless ``kinds`` gives a column's kind; PSI uses
    ``psi_bins`` quantile bins.

    Examples
    --------
    >>> ref = pd.DataFrame({"x": [0.1, 0.5, 0.9, 1.3], "c": ["a", "b", "a", "a"]})
    >>> ReferenceProfile().fit(ref).kinds_
    {'x': 'numeric', 'c': 'categorical'}
    """

    def __init__(
        self,
        *,
        categorical_max_unique: int = 10,
        psi_bins: int = 10,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.categorical_max_unique = categorical_max_unique
        self.psi_bins = psi_bins
        self.kinds = kinds

    @classmethod
    def from_options(cls, opts: DriftOptions) -> ReferenceProfile:
        """Unfitted profile with the settings of ``opts`` (kinds, bins, ...)."""
        kinds = {name: c.kind for name, c in opts.columns.items() if c.kind is not None}
        return cls(
            categorical_max_unique=opts.categorical_max_unique,
            psi_bins=opts.psi_bins,
            kinds=kinds or None,
        )

    def fit(
        self, reference_df: pd.DataFrame, columns: Sequence[str] | None = None
    ) -> ReferenceProfile:
        """Profile ``columns`` (default: all) of the data the model was trained on.

        Raises DataValidationError for a non-DataFrame, a missing or duplicated column or
        non-numeric values in a column forced numeric; ConfigError for a bad parameter.
        """
        max_unique, bins, kinds = self._checked_params()
        if not isinstance(reference_df, pd.DataFrame):
            raise DataValidationError(
                f"reference must be a pandas DataFrame, got {type(reference_df).__name__}"
            )
        profiles = {
            name: _profile_column(
                reference_df[name], name, kind=kinds.get(name), max_unique=max_unique, psi_bins=bins
            )
            for name in _column_list(reference_df, columns, "reference")
        }
        self._set_learned(profiles, len(reference_df))
        return self

    def fit_arrays(
        self, columns: Iterable[tuple[str, np.ndarray]], *, n_rows: int
    ) -> ReferenceProfile:
        """Profile data given column by column as ``(name, values)`` numpy arrays.

        The same profile as :meth:`fit` on a DataFrame of those columns, ``n_rows`` rows
        long: each array holds a column's numbers (integers, floats or booleans, which
        are labels as in a DataFrame) without, or with as NaN, its missing values. Each
        array is released before the next one is asked for, so ``columns`` can be a
        generator building them one at a time.

        Raises DataValidationError for an array of another type, longer than
        ``n_rows`` or named twice; ConfigError for a bad parameter.
        """
        profiles = {p.name: p for p in self._fit_columns(columns, n_rows)}
        self._set_learned(profiles, n_rows)
        return self

    def save_arrays(
        self,
        path: str | os.PathLike[str] | BinaryIO,
        columns: Iterable[tuple[str, np.ndarray]],
        *,
        n_rows: int,
    ) -> Path | None:
        """Write what ``fit_arrays(columns, n_rows=n_rows).save(path)`` writes, fitting
        and writing one column at a time: memory holds one column, never the profile
        (which stays unfitted). Errors are those of :meth:`fit_arrays`; a file written
        until then is incomplete."""
        return _write_profile(path, self._params(), n_rows, self._fit_columns(columns, n_rows))

    def _fit_columns(
        self, columns: Iterable[tuple[str, np.ndarray]], n_rows: int
    ) -> Iterator[_ColumnProfile]:
        """The profile of each array, each dropped before the next array is asked for."""
        max_unique, bins, kinds = self._checked_params()
        names: set[str] = set()
        for name, values in columns:
            if not isinstance(name, str) or name in names:
                raise DataValidationError(f"column names must be distinct strings, got {name!r}")
            if values.ndim != 1 or values.dtype.kind not in "biuf" or len(values) > n_rows:
                raise DataValidationError(
                    f"column {name!r} must be a 1-D array of at most {n_rows} numbers, "
                    f"got {values.dtype} of shape {values.shape}"
                )
            names.add(name)
            kind = kinds.get(name)
            if values.dtype.kind == "b" and kind != "numeric":
                profile = _label_column(pd.Series(values), name, n_rows)
            else:
                profile = _fit_numbers(
                    values, name, n_rows=n_rows, kind=kind, max_unique=max_unique, psi_bins=bins
                )
                del values
            yield profile
            del profile  # before the next column is built

    def _checked_params(self) -> tuple[int, int, dict[str, str]]:
        """``categorical_max_unique``, ``psi_bins`` and ``kinds``, validated."""
        max_unique = self.categorical_max_unique
        check_value("categorical_max_unique", max_unique, int, lambda v: v >= 0, "zero or more")
        bins = check_value("psi_bins", self.psi_bins, int, lambda v: v >= 2, "at least 2")
        kinds = {
            name: check_value(f"kinds.{name}", kind, KINDS)
            for name, kind in (self.kinds or {}).items()
        }
        return max_unique, bins, kinds

    def _set_learned(self, profiles: dict[str, _ColumnProfile], n_rows: int) -> None:
        self.profiles_ = profiles
        self.columns_ = list(profiles)
        self.kinds_ = {name: p.kind for name, p in profiles.items()}
        self.n_rows_ = n_rows

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless :meth:`fit` or :meth:`load` ran."""
        if not hasattr(self, "profiles_"):
            raise NotFittedError(
                "This ReferenceProfile is not fitted yet; call fit(reference_df) or "
                "ReferenceProfile.load(path) first"
            )

    def save(self, path: str | os.PathLike[str] | BinaryIO) -> Path | None:
        """Write the profile to exactly ``path``, or to a binary file object: ``.npz``
        arrays plus JSON, no pickle. Returns the path written (None for a file object)."""
        self._check_fitted()
        return _write_profile(path, self._params(), self.n_rows_, self.profiles_.values())

    def _params(self) -> dict[str, Any]:
        return {
            "categorical_max_unique": self.categorical_max_unique,
            "psi_bins": self.psi_bins,
            "kinds": dict(self.kinds) if self.kinds else None,
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str] | BinaryIO) -> ReferenceProfile:
        """Read a profile written by :meth:`save` from a path or a binary file object;
        IntegrityError if it is not one."""
        source = Path(path) if isinstance(path, str | os.PathLike) else path
        try:
            with np.load(source, allow_pickle=False) as archive:
                data = {key: archive[key] for key in archive.files}
            meta = json.loads(str(data.pop("meta")))
            if meta.get("format") != _PROFILE_FORMAT:
                raise ValueError("not a reference profile")
            if meta.get("version") not in _READABLE_VERSIONS:
                raise ValueError(f"unsupported profile version {meta.get('version')!r}")
            profile = cls(**meta["params"])
            columns = [_column_from_npz(e, data, f"c{i}") for i, e in enumerate(meta["columns"])]
            profile._set_learned({c.name: c for c in columns}, int(meta["n_rows"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            what = source if isinstance(source, Path) else getattr(source, "name", "(file object)")
            raise IntegrityError(f"cannot load reference profile {what}: {exc}") from exc
        return profile


def _write_profile(
    path: str | os.PathLike[str] | BinaryIO,
    params: dict[str, Any],
    n_rows: int,
    profiles: Iterable[_ColumnProfile],
) -> Path | None:
    """Write a profile to a path (returned) or a binary file object (None)."""
    if not isinstance(path, str | os.PathLike):
        _write_npz(path, params, n_rows, profiles)
        return None
    target = Path(path)
    with target.open("wb") as handle:
        _write_npz(handle, params, n_rows, profiles)
    return target


def _write_npz(
    handle: BinaryIO, params: dict[str, Any], n_rows: int, profiles: Iterable[_ColumnProfile]
) -> None:
    """``np.savez``'s format (a zip of ``.npy`` files, no pickle), written one column at a
    time as ``profiles`` yields them; the JSON metadata comes last."""
    columns: list[dict[str, Any]] = []
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:

        def add(name: str, array: np.ndarray) -> None:
            with zf.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)

        # not enumerate(): its cached result tuple would hold the previous column
        for profile in profiles:
            entry, arrays = _column_to_npz(profile, f"c{len(columns)}")
            columns.append(entry)
            for name in list(arrays):
                add(name, arrays.pop(name))
            del profile, arrays  # before the next column is fitted
        meta = {
            "format": _PROFILE_FORMAT,
            "version": _PROFILE_VERSION,
            "params": params,
            "n_rows": n_rows,
            "columns": columns,
        }
        add("meta", np.array(json.dumps(meta)))


def _column_list(frame: pd.DataFrame, columns: Iterable[str] | None, what: str) -> list[str]:
    """Validated, de-duplicated list of columns of ``frame``."""
    names = list(frame.columns) if columns is None else list(dict.fromkeys(columns))
    if frame.columns.has_duplicates:
        repeated = set(frame.columns[frame.columns.duplicated()])
        dup = sorted(str(c) for c in names if c in repeated)
        if dup:
            raise DataValidationError(f"{what} has duplicate columns: {', '.join(dup)}")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{what} is missing columns: {', '.join(map(str, missing))}",
            details={"missing_columns": [str(m) for m in missing]},
        )
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise DataValidationError(f"column names must be strings, got {bad[0]!r}")
    return names
