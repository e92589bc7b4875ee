"""Checks where data enters the system.

Each raises :class:`~monitoring.exceptions.DataValidationError` saying which input,
which column, what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitoring.exceptions import DataValidationError

_MAX_LISTED = 5


def _listing(items: Sequence[object]) -> str:
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def check_columns(
    frame: pd.DataFrame, required: Sequence[str], *, input_name: str, allow_extra: bool = False
) -> None:
    """Raise unless ``frame`` has every column in ``required``, once (and no others)."""
    present = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in present]
    if missing:
        raise DataValidationError(
            f"{input_name}: missing column(s) {_listing(missing)}; "
            f"expected {list(required)}, got {present}"
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
    (unless ``allow_missing``) empty cell."""
    out = {}
    for column in columns:
        values = frame[column]
        if values.dtype.kind in "biuf":
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
                    f"row {_row(frame, at)} has {values.iloc[at]!r}"
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
