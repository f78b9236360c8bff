"""What every data check shares: the check names in report order, :class:`Finding`, the thresholds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Check names, in the order the report lists them.
SCHEMA = "schema"
MISSING_KEY = "missing_key"
MISSING_SYMBOL = "missing_symbol"
DUPLICATE_TIMESTAMP = "duplicate_timestamp"
NON_MONOTONIC = "non_monotonic"
OFF_CALENDAR = "off_calendar"
CALENDAR_GAP = "calendar_gap"
LONG_GAP = "long_gap"
NON_FINITE = "non_finite"
NON_POSITIVE = "non_positive"
STALE_PRICE = "stale_price"
SPLIT_JUMP = "split_jump"
PRICE_SPIKE = "price_spike"
OUTLIER = "outlier"
OHLC_PARTIAL = "ohlc_partial"
OHLC_INCONSISTENT = "ohlc_inconsistent"

CHECKS: tuple[str, ...] = (
    SCHEMA,
    MISSING_KEY,
    MISSING_SYMBOL,
    DUPLICATE_TIMESTAMP,
    NON_MONOTONIC,
    OFF_CALENDAR,
    CALENDAR_GAP,
    LONG_GAP,
    NON_FINITE,
    NON_POSITIVE,
    STALE_PRICE,
    SPLIT_JUMP,
    PRICE_SPIKE,
    OUTLIER,
    OHLC_PARTIAL,
    OHLC_INCONSISTENT,
)

# Errors that forward filling can repair (a missing or unusable price, filled from the last good one).
# Under ``forward_fill`` an ``off_calendar`` bar is repaired too, by dropping it: nothing is invented.
FILLABLE_CHECKS: frozenset[str] = frozenset({CALENDAR_GAP, NON_FINITE, NON_POSITIVE})

# Checks whose severity a policy may not lower: ignoring them would make the cleaned table silently
# differ from the input (rows dropped or de-duplicated without an error).
STRUCTURAL_CHECKS: frozenset[str] = frozenset({SCHEMA, MISSING_KEY, DUPLICATE_TIMESTAMP})

OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low")

# Scale factor that makes the median absolute deviation a consistent estimator of a normal sigma.
_MAD_TO_SIGMA = 1.4826
# Mean absolute deviation to sigma for a normal variable, sqrt(pi / 2): the fallback when MAD is 0.
_MEAN_AD_TO_SIGMA = math.sqrt(math.pi / 2.0)


@dataclass(frozen=True)
class Finding:
    """Offending bars of one check at one default severity.

    Attributes
    ----------
    check : str
        Check name (one of ``CHECKS``).
    severity : str
        Default severity, ``"error"`` or ``"warning"``, before the policy's overrides.
    symbols : ndarray of shape (n_items,)
        Symbol of each offending bar (object dtype).
    dates : ndarray of shape (n_items,)
        Timestamp of each offending bar (``datetime64[ns]``); NaT where no date applies.
    details : Mapping[str, str]
        Optional one-line detail per symbol.
    """

    check: str
    severity: str
    symbols: np.ndarray
    dates: np.ndarray
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return len(self.symbols) == 0


@dataclass(frozen=True)
class CheckParams:
    """Thresholds the value checks need (a plain copy of the policy's numbers)."""

    max_gap_bdays: int
    stale_bars: int
    outlier_z: float
    jump_threshold: float
    reversal_bars: int
    reversal_fraction: float
    split_ratios: Sequence[int]
    split_tolerance: float
    ohlc_tolerance: float


def _finding(
    check: str, severity: str, frame: pd.DataFrame, mask: np.ndarray, details: Mapping[str, str] | None = None
) -> Finding:
    return Finding(
        check=check,
        severity=severity,
        symbols=frame["symbol"].to_numpy(dtype=object)[mask],
        dates=frame["date"].to_numpy(dtype="datetime64[ns]")[mask],
        details=dict(details or {}),
    )


def _fmt_date(value: np.datetime64 | pd.Timestamp) -> str:
    stamp = pd.Timestamp(value)
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
