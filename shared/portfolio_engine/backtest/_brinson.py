"""Brinson-Fachler sector attribution per period, linked over periods by Carino's logarithmic smoothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, EmptyDataError, SpecificationError

#: Largest accepted ``|sum(weights) - 1|`` per period: the effects add up to the active return only if both weight
#: vectors have the same sum.
WEIGHT_SUM_TOLERANCE = 1e-9

EFFECTS = ("allocation", "selection", "interaction")


@dataclass(frozen=True, eq=False)
class BrinsonAttribution:
    """Brinson-Fachler effects by period and sector, and their multi-period link.

    Attributes
    ----------
    allocation, selection, interaction : DataFrame of shape (n_periods, n_sectors)
    portfolio_return, benchmark_return, active_return : Series of shape (n_periods,)
        ``R_p = sum w_p r_p``, ``R_b = sum w_b r_b``, ``R_p - R_b``.
    linked : DataFrame of shape (n_sectors, 3)
        Each sector's effects over all periods (columns allocation, selection, interaction), linked by ``linking``.
    linking : str
        ``"carino"`` (they add up to the compounded active return ``prod(1 + R_p) - prod(1 + R_b)``) or ``"sum"``
        (plain sums; they add up to ``sum_t (R_p,t - R_b,t)``).
    """

    allocation: pd.DataFrame
    selection: pd.DataFrame
    interaction: pd.DataFrame
    portfolio_return: pd.Series
    benchmark_return: pd.Series
    active_return: pd.Series
    linked: pd.DataFrame
    linking: str

    def by_period(self) -> pd.DataFrame:
        """DataFrame of shape (n_periods, 4): the three effects summed over sectors, and the active return."""
        out = pd.DataFrame({name: getattr(self, name).sum(axis=1) for name in EFFECTS})
        out["active"] = self.active_return
        return out

    def total(self) -> pd.Series:
        """The linked effects summed over sectors, and their total (the linked active return)."""
        sums = self.linked.sum(axis=0)
        sums["total"] = float(sums.sum())
        return sums


def _frame(value: pd.DataFrame | pd.Series, name: str) -> pd.DataFrame:
    if isinstance(value, pd.Series):
        return value.to_frame().T.reset_index(drop=True)
    if isinstance(value, pd.DataFrame):
        return value
    raise DataError(
        f"{name} must be a Series (one period) or a DataFrame (periods x sectors); got {type(value).__name__}.",
        hint="Index the columns by sector.",
    )


def _check_weights(weights: pd.DataFrame, name: str) -> np.ndarray:
    values = weights.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise DataError(f"{name} has NaN or infinite weights.", hint="Use 0.0 for sectors not held.")
    gap = np.abs(values.sum(axis=1) - 1.0)
    if (gap > WEIGHT_SUM_TOLERANCE).any():
        bad = int(np.argmax(gap))
        raise DataError(
            f"{name} must sum to 1 in every period; period {weights.index[bad]!r} sums to {values[bad].sum()!r}.",
            hint="Normalise the weights (weights.div(weights.sum(axis=1), axis=0)); hold cash as its own sector.",
        )
    return values


def _fill_returns(returns: np.ndarray, weights: np.ndarray, fallback: np.ndarray, name: str) -> np.ndarray:
    # A sector with zero weight needs no return; one with weight must have a finite return.
    missing = ~np.isfinite(returns)
    if (missing & (weights != 0.0)).any():
        raise DataError(
            f"{name} is NaN for a sector with a non-zero weight.",
            hint="Give every held sector a return (NaN is allowed only where the weight is 0).",
        )
    return np.where(missing, fallback, returns)


def _carino_factor(r: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    r, b = np.asarray(r, dtype="float64"), np.asarray(b, dtype="float64")
    diff = r - b
    same = np.abs(diff) < 1e-15
    safe = np.where(same, 1.0, diff)
    return np.where(same, 1.0 / (1.0 + r), (np.log1p(r) - np.log1p(b)) / safe)


def brinson_fachler(
    portfolio_weights: pd.DataFrame | pd.Series,
    portfolio_returns: pd.DataFrame | pd.Series,
    benchmark_weights: pd.DataFrame | pd.Series,
    benchmark_returns: pd.DataFrame | pd.Series,
    *,
    linking: Literal["carino", "sum"] = "carino",
) -> BrinsonAttribution:
    """Brinson-Fachler allocation, selection and interaction by sector, per period and linked over periods.

    For sector ``i`` in a period, with portfolio weight and return ``w_i``, ``r_i``, benchmark ``v_i``, ``b_i`` and
    benchmark return ``B = sum v_i b_i``:

    * allocation ``(w_i - v_i)(b_i - B)``; selection ``v_i (r_i - b_i)``; interaction ``(w_i - v_i)(r_i - b_i)``;

    and the three summed over sectors equal ``R_p - B`` exactly, since both weight vectors sum to 1. A sector the
    portfolio does not hold may have a NaN portfolio return (taken as ``b_i``: no selection); a sector the benchmark
    does not hold may have a NaN benchmark return (taken as ``r_i``: the whole effect is allocation).

    Multi-period linking (``"carino"``): with per-period factors ``k_t = (ln(1 + R_t) - ln(1 + B_t)) / (R_t - B_t)``
    (``1 / (1 + R_t)`` when equal) and ``k`` the same on the compounded returns, each effect is linked as
    ``sum_t effect_t k_t / k``; the linked effects add up to ``prod(1 + R_t) - prod(1 + B_t)``.

    Parameters
    ----------
    portfolio_weights, benchmark_weights : DataFrame of shape (n_periods, n_sectors), or Series of shape (n_sectors,)
        Sector weights at the start of each period, each row summing to 1 (within 1e-9).
    portfolio_returns, benchmark_returns : DataFrame or Series of the same shape
        Each sector's return over the period within the portfolio / the benchmark.
    linking : {"carino", "sum"}, default "carino"

    Returns
    -------
    BrinsonAttribution

    Raises
    ------
    EmptyDataError
        No period or no sector.
    DataError
        Tables with different periods or sectors, NaN weights, rows not summing to 1, or a NaN return where the weight
        is not zero.
    SpecificationError
        Unknown ``linking``.

    References
    ----------
    Brinson, G. P. and Fachler, N. (1985), "Measuring non-U.S. equity portfolio performance", Journal of Portfolio
    Management 11(3), 73-76.
    Carino, D. R. (1999), "Combining attribution effects over time", Journal of Performance Measurement 3(4), 5-14.
    """
    if linking not in ("carino", "sum"):
        raise SpecificationError(f"linking must be 'carino' or 'sum'; got {linking!r}.", hint="Use 'carino'.")
    tables = {
        "portfolio_weights": _frame(portfolio_weights, "portfolio_weights"),
        "portfolio_returns": _frame(portfolio_returns, "portfolio_returns"),
        "benchmark_weights": _frame(benchmark_weights, "benchmark_weights"),
        "benchmark_returns": _frame(benchmark_returns, "benchmark_returns"),
    }
    first = tables["portfolio_weights"]
    if first.shape[0] == 0 or first.shape[1] == 0:
        raise EmptyDataError(f"portfolio_weights is empty (shape {first.shape}).", hint="Pass at least one period.")
    for name, table in tables.items():
        if not (table.index.equals(first.index) and table.columns.equals(first.columns)):
            raise DataError(
                f"{name} has other periods or sectors than portfolio_weights ({table.shape} vs {first.shape}).",
                hint="Align them: table.reindex(index=portfolio_weights.index, columns=portfolio_weights.columns).",
            )
    wp = _check_weights(tables["portfolio_weights"], "portfolio_weights")
    wb = _check_weights(tables["benchmark_weights"], "benchmark_weights")
    rp_raw = tables["portfolio_returns"].to_numpy(dtype="float64")
    rb_raw = tables["benchmark_returns"].to_numpy(dtype="float64")
    rb = _fill_returns(rb_raw, wb, np.where(np.isfinite(rp_raw), rp_raw, 0.0), "benchmark_returns")
    rp = _fill_returns(rp_raw, wp, rb, "portfolio_returns")
    total_p, total_b = (wp * rp).sum(axis=1), (wb * rb).sum(axis=1)
    active_weight = wp - wb
    effects = {
        "allocation": active_weight * (rb - total_b[:, None]),
        "selection": wb * (rp - rb),
        "interaction": active_weight * (rp - rb),
    }
    if linking == "carino":
        cumulative_p, cumulative_b = float(np.prod(1.0 + total_p) - 1.0), float(np.prod(1.0 + total_b) - 1.0)
        scale = _carino_factor(total_p, total_b) / float(_carino_factor(cumulative_p, cumulative_b))
    else:
        scale = np.ones(len(total_p))
    index, sectors = first.index, first.columns
    linked = pd.DataFrame({k: (v * scale[:, None]).sum(axis=0) for k, v in effects.items()}, index=sectors)
    frames = {k: pd.DataFrame(v, index=index, columns=sectors) for k, v in effects.items()}
    return BrinsonAttribution(
        allocation=frames["allocation"],
        selection=frames["selection"],
        interaction=frames["interaction"],
        portfolio_return=pd.Series(total_p, index=index, name="portfolio"),
        benchmark_return=pd.Series(total_b, index=index, name="benchmark"),
        active_return=pd.Series(total_p - total_b, index=index, name="active"),
        linked=linked,
        linking=linking,
    )


def sector_weights_and_returns(
    weights: pd.DataFrame, returns: pd.DataFrame, sectors: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Asset weights and returns per period -> sector weights and sector returns (weight-averaged in each sector).

    Parameters
    ----------
    weights : DataFrame of shape (n_periods, n_assets)
        Weights at the start of each period.
    returns : DataFrame of shape (n_periods, n_assets)
        Each asset's return over the period (NaN allowed where the weight is 0).
    sectors : mapping of asset to sector

    Returns
    -------
    (DataFrame, DataFrame) of shape (n_periods, n_sectors)
        Sector weights ``sum w_i``, and sector returns ``sum w_i r_i / sum w_i`` (NaN where a sector has no weight,
        which :func:`brinson_fachler` accepts).

    Raises
    ------
    DataError
        Different periods or assets, an asset without a sector, or a NaN return of a held asset.
    """
    if not (weights.index.equals(returns.index) and weights.columns.equals(returns.columns)):
        raise DataError("weights and returns must have the same periods and assets.", hint="Reindex one on the other.")
    unknown = [str(a) for a in weights.columns if a not in sectors]
    if unknown:
        raise DataError(f"No sector for asset(s) {unknown}.", hint="Add them to the sector mapping (or 'Other').")
    w = weights.to_numpy(dtype="float64")
    r = returns.to_numpy(dtype="float64")
    if (~np.isfinite(r) & (w != 0)).any() or not np.isfinite(w).all():
        raise DataError("A held asset has a NaN return, or a weight is NaN.", hint="Fill or drop those assets.")
    labels = pd.Index([sectors[a] for a in weights.columns])
    contribution = pd.DataFrame(np.where(w != 0, w * r, 0.0), index=weights.index, columns=labels)
    sector_w = pd.DataFrame(w, index=weights.index, columns=labels).T.groupby(level=0, sort=True).sum().T
    sector_c = contribution.T.groupby(level=0, sort=True).sum().T
    with np.errstate(invalid="ignore", divide="ignore"):
        sector_r = sector_c / sector_w.where(sector_w.abs() > 0)
    return sector_w, sector_r
