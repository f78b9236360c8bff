"""Drawdowns of a return series: the drawdown path, the current and the maximum drawdown, and how long it lasted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskError, RiskInputError


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@dataclass(frozen=True, eq=False)
class DrawdownStats:
    """Drawdowns of a wealth path that starts at 1 before the first return.

    Wealth is ``W_t = prod_{u <= t} (1 + r_u)`` with ``W_0 = 1``; the drawdown is ``1 - W_t / max_{u <= t} W_u``
    (a positive fraction; the running peak includes the starting 1, so a loss on the first day is a drawdown).

    Attributes
    ----------
    drawdown : Series of shape (n_observations,)
        Drawdown after each return.
    current : float
        The last drawdown.
    maximum : float
        The largest drawdown (0.0 for a path that never falls).
    peak_date, trough_date, recovery_date : object or None
        Dates of the maximum drawdown's peak (None when the peak is the starting value, before the first return),
        its trough, and the first date the wealth got back to the peak (None if it has not).
    duration : int
        Periods from the peak to the recovery, or to the last return if there is none yet (0 without a drawdown).
    recovered : bool
        Whether the maximum drawdown has been recovered.
    """

    drawdown: pd.Series
    current: float
    maximum: float
    peak_date: Any
    trough_date: Any
    recovery_date: Any
    duration: int
    recovered: bool

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        """JSON-ready dictionary; the drawdown path only when ``include_series`` (date -> value)."""
        out: dict[str, Any] = {
            "current": float(self.current),
            "maximum": float(self.maximum),
            "peak_date": _iso(self.peak_date),
            "trough_date": _iso(self.trough_date),
            "recovery_date": _iso(self.recovery_date),
            "duration": int(self.duration),
            "recovered": bool(self.recovered),
        }
        if include_series:
            out["drawdown"] = {str(_iso(k)): float(v) for k, v in self.drawdown.items()}
        return out


def drawdown(returns: pd.Series) -> DrawdownStats:
    """Drawdown path, current and maximum drawdown, and the maximum drawdown's duration.

    Parameters
    ----------
    returns : Series of shape (n_observations,)
        Simple returns of the portfolio (per period), in date order.

    Returns
    -------
    DrawdownStats

    Raises
    ------
    RiskInputError
        Not a Series, a NaN or infinite value, or a return <= -1.
    RiskError
        An empty series.
    """
    if not isinstance(returns, pd.Series):
        raise RiskInputError(
            f"drawdown needs a Series of portfolio returns; got {type(returns).__name__}.",
            hint="Pass e.g. returns @ weights (a Series indexed by date).",
        )
    values = returns.to_numpy(dtype="float64")
    if values.size == 0:
        raise RiskError("drawdown got an empty return series.", hint="Pass at least one return.")
    if not np.isfinite(values).all() or (values <= -1.0).any():
        raise RiskInputError(
            "drawdown needs finite simple returns > -1; got NaN, infinite or <= -1 values.",
            hint="Drop missing dates (returns.dropna()) and pass simple, not log, returns.",
        )
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + values)))
    peaks = np.maximum.accumulate(wealth)
    path = 1.0 - wealth / peaks
    series = pd.Series(path[1:], index=returns.index, name="drawdown")
    maximum = float(path.max())
    if maximum <= 0.0:
        return DrawdownStats(series, float(path[-1]), 0.0, None, None, None, 0, True)
    trough = int(np.argmax(path))  # first time the maximum is reached
    peak = int(np.flatnonzero(wealth[: trough + 1] == peaks[trough])[-1])
    after = np.flatnonzero(wealth[trough + 1 :] >= peaks[trough])
    recovered = after.size > 0
    end = trough + 1 + int(after[0]) if recovered else len(wealth) - 1

    def date(position: int) -> Any:
        return None if position == 0 else returns.index[position - 1]

    return DrawdownStats(
        drawdown=series,
        current=float(path[-1]),
        maximum=maximum,
        peak_date=date(peak),
        trough_date=date(trough),
        recovery_date=date(end) if recovered else None,
        duration=end - peak,
        recovered=recovered,
    )
