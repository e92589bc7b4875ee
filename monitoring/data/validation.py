"""Checks where data enters the system.

Each raises :class:`~monitoring.exceptions.DataValidationError` saying which input,
which column, what was expected and what was found.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitoring.exceptions import DataValidationError

_MAX_LISTED = 5
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxlevel = 2


def shown(value: object) -> str:
    """``repr(value)`` cut short for a message: a client's value is echoed in at most
    about 60 characters however long or deeply nested it is."""
    return _SHOWN.repr(value)


def _listing(items: Sequence[object]) -> str:
    listed = ", ".join(shown(i) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return listed + (f" and {more} more" if more > 0 else "")


def check_columns(
    frame: pd.DataFrame, required: Sequence[str], *, input_name: str, allow_extra: bool = False
) -> None:
    """Raise unless ``frame`` has every column in ``required``, once (and no others)."""
    present = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in present]
    if missing:
        raise DataValidationError(
            f"{input_name}: missing column(s) {_listing(missing)}; "
            f"expected {list(required)}, got {_listing(present)}"
        )
    if len(set(present)) != len(present):
        dupes = sorted({c for c in present if present.count(c) > 1})
        raise DataValidationError(f"{input_name}: duplicated column(s) {_listing(dupes)}")
    if not allow_extra:
        extra = [c for c in present if c not in required]
        if extra:
            raise DataValidationError(
                f"{input_name}: unexpected column(s) {_listing(extra)}; expected {list(required)}"
            )


def check_not_empty(frame: pd.DataFrame, *, input_name: str) -> None:
    """Raise if ``frame`` has no rows."""
    if len(frame) == 0:
        raise DataValidationError(f"{input_name}: contains no rows")


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return float("inf") if str(value).strip().lstrip("+-").isdigit() else float("nan")


def _row(frame: pd.DataFrame, position: int) -> int:
    """The row number to report: the integer index label (a piece of a file keeps
    its rows' numbers), else the position."""
    label = frame.index[position]
    return int(label) if isinstance(label, int | np.integer) else position


def to_numeric_columns(
    frame: pd.DataFrame, columns: Sequence[str], *, input_name: str, allow_missing: bool
) -> pd.DataFrame:
    """Return ``frame[columns]`` as float64, naming the first non-numeric, infinite or
    (unless ``allow_missing``) empty cell.

    Booleans (a CSV column of ``true``/``false``) are not numbers, as in JSON, and
    neither are dates, times and durations (pandas would give nanoseconds).
    """
    out = {}
    for column in columns:
        values = frame[column]
        kind = values.dtype.kind
        present = np.flatnonzero(values.notna().to_numpy()) if kind == "b" else None
        if present is not None and len(present):
            at = int(present[0])
            raise DataValidationError(
                f"{input_name}: column '{column}' must be numeric; "
                f"row {_row(frame, at)} has {shown(bool(values.iloc[at]))}"
            )
        if kind in "bmM":
            raise DataValidationError(
                f"{input_name}: column '{column}' must be numeric; it holds {values.dtype} values"
            )
        if kind in "iuf":
            numeric = values.astype("float64")
        else:
            try:
                numeric = pd.to_numeric(values, errors="coerce").astype("float64")
            except OverflowError:  # an integer beyond float range: float() gives inf
                numeric = values.map(_to_float).astype("float64")
            bad = numeric.isna() & values.notna()
            if bad.any():
                at = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataValidationError(
                    f"{input_name}: column '{column}' must be numeric; "
                    f"row {_row(frame, at)} has {shown(values.iloc[at])}"
                )
        array = numeric.to_numpy()
        if not allow_missing and np.isnan(array).any():
            at = int(np.flatnonzero(np.isnan(array))[0])
            raise DataValidationError(
                f"{input_name}: column '{column}' has a missing value at row {_row(frame, at)}"
            )
        if np.isinf(array).any():
            at = int(np.flatnonzero(np.isinf(array))[0])
            raise DataValidationError(
                f"{input_name}: column '{column}' has an infinite value at row {_row(frame, at)}"
            )
        out[column] = numeric
    return pd.DataFrame(out, index=frame.index)


def check_binary_target(values: pd.Series, *, input_name: str, column: str) -> None:
    """Raise unless the non-missing values of ``values`` are all 0 or 1."""
    present = values.dropna()
    bad = present[~present.isin([0, 1])]
    if len(bad):
        value = bad.iloc[0]
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        raise DataValidationError(
            f"{input_name}: target column '{column}' must hold 0 or 1; found {value!r}"
        )
