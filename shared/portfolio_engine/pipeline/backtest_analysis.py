"""What AggregateBacktest adds to the metrics table: regimes, attribution and the out-of-sample analysis.

* regimes: the state the regime-aware policy chose at each decision, as a one-hot step frame over the days;
* Fama-French attribution of the strategy's net daily returns on the lake's ``ff3_monthly`` table;
* Brinson-Fachler by sector (the lake's ``sectors`` table) against the equal-weight benchmark, one period per
  rebalance (from a decision's close to the next decision's close), linked by Carino;
* in-sample promises against the realised holding periods (:func:`in_vs_out_of_sample`);
* one row of figures per walk-forward window (:func:`window_results`, :func:`windows_json`).

The risk-free rate of a request is resolved here too (:func:`risk_free_yields`, :func:`daily_risk_free`).

Each piece that cannot be computed (no reference table, too few months) is skipped with its reason, which is
logged and stored; the rest of the result stands.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.backtest.analysis import in_vs_out_of_sample, window_results
from portfolio_engine.backtest.attribution import (
    brinson_fachler,
    factor_attribution,
    fama_french_attribution,
    sector_weights_and_returns,
)
from portfolio_engine.backtest.engine import BacktestResult
from portfolio_engine.backtest.windows import EstimationWindow
from portfolio_engine.contracts.backtest import BacktestRequest
from portfolio_engine.exceptions import DataError, EmptyDataError, LakeError, OptimizationError
from portfolio_engine.pipeline.risk_checks import sector_map
from portfolio_engine.ports import Lake

logger = logging.getLogger(__name__)

CASH = "cash"
OTHER = "Other"
TREASURY_TABLE = "treasury_curve"
TREASURY_3M = "3month"
TRADING_DAYS = 252


def clean_number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def table_json(frame: pd.DataFrame | pd.Series) -> dict[str, Any]:
    """A table as ``{row: {column: value}}`` (a Series as ``{row: value}``), NaN as None, dates as ISO days."""

    def label(value: Any) -> str:
        return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)

    if isinstance(frame, pd.Series):
        return {label(k): clean_number(v) for k, v in frame.items()}
    return {label(r): {str(c): clean_number(v) for c, v in row.items()} for r, row in frame.iterrows()}


def regime_frame(regimes: Mapping[str, str | None], dates: pd.DatetimeIndex) -> pd.DataFrame:
    """The state chosen at each decision as a one-hot step frame over ``dates``.

    Parameters
    ----------
    regimes : mapping of ISO date to state name or None
        None marks a decision taken before the regime model had enough history (no state).
    dates : DatetimeIndex of shape (n_days,)

    Returns
    -------
    DataFrame of shape (n_days, n_states)
        1.0 in the column of the state in force (chosen at the last decision on or before the day), 0.0 elsewhere;
        NaN rows before the first decision and while no state is known. Columns in order of first appearance.
    """
    chosen = pd.Series(
        [s if s is not None else np.nan for s in regimes.values()], index=pd.DatetimeIndex(list(regimes)), dtype=object
    ).sort_index()
    states = list(dict.fromkeys(s for s in chosen if isinstance(s, str)))
    # A state holds from its decision to the next one; days before the first decision have no state.
    in_force = chosen.reindex(chosen.index.union(dates)).ffill().reindex(dates)
    frame = pd.DataFrame({s: (in_force == s).astype("float64") for s in states}, index=dates)
    return frame.where(in_force.map(lambda v: isinstance(v, str)), np.nan)


def _whole_months(returns: pd.Series, calendar: pd.DatetimeIndex) -> pd.Series:
    """``returns`` without its first and last calendar months when the calendar shows them partial."""
    days = pd.DatetimeIndex(returns.index)
    first, last = days[0], days[-1]
    keep = np.ones(len(days), dtype=bool)
    if (calendar[calendar.to_period("M") == first.to_period("M")] < first).any():
        keep &= days.to_period("M") != first.to_period("M")
    if (last + pd.offsets.BDay(1)).month == last.month:  # the data end before the month does
        keep &= days.to_period("M") != last.to_period("M")
    return returns.loc[keep]


def fama_french(lake: Lake, net_returns: pd.Series, calendar: pd.DatetimeIndex) -> tuple[dict[str, Any] | None, str]:
    """The strategy's Fama-French attribution as JSON, or None and the reason it is skipped.

    The JSON holds ``summary`` (``FactorAttribution.summary()``: beta, annual factor mean and contribution by
    factor, alpha, residual, total), ``r_squared`` and ``months`` (whole calendar months in the regression).
    """
    try:
        factors = lake.read_reference("ff3_monthly")
    except LakeError as exc:
        return None, f"Fama-French attribution skipped: no ff3_monthly reference table in the lake ({exc.message})"
    trimmed = _whole_months(net_returns, calendar)
    if trimmed.empty:
        return None, "Fama-French attribution skipped: no whole month of returns"
    try:
        attribution = fama_french_attribution(trimmed, factors)
    except DataError as exc:  # too few months in common with the factors, or a degenerate regression
        return None, f"Fama-French attribution skipped: {exc.message}"
    return {
        "summary": table_json(attribution.summary()),
        "r_squared": clean_number(attribution.r_squared),
        "months": attribution.n_observations,
    }, ""


def _periods(result: BacktestResult) -> list[tuple[pd.Timestamp, pd.DatetimeIndex]]:
    """Each decision with its holding days: after its close up to and including the next decision (or the end)."""
    days = pd.DatetimeIndex(result.net_returns.index)
    decisions = list(result.decision_dates)
    out = []
    for k, decided in enumerate(decisions):
        end = decisions[k + 1] if k + 1 < len(decisions) else days[-1]
        held = days[(days > decided) & (days <= end)]
        if len(held):
            out.append((decided, held))
    return out


def _with_cash(weights: pd.DataFrame) -> pd.DataFrame:
    cash = 1.0 - weights.sum(axis=1)
    return weights.assign(**{CASH: cash.where(cash.abs() > 1e-12, 0.0)})


def brinson_by_sector(
    result: BacktestResult, benchmark: BacktestResult, returns: pd.DataFrame, sectors: Mapping[str, str]
) -> Any:
    """Brinson-Fachler of ``result`` against ``benchmark`` by sector, one period per rebalance, Carino-linked.

    Each period starts at a decision's close with the target weights (cash, at zero return, as its own sector)
    and holds them, untraded, to the next decision's close: the period return of an asset is its compounded daily
    return over the holding days, so a portfolio's period return is its compounded gross daily return.

    Parameters
    ----------
    result, benchmark : BacktestResult
        Runs on the same decision dates.
    returns : DataFrame of shape (n_days, n_assets)
        The assets' daily returns the runs used.
    sectors : mapping of asset to sector
        Assets without one are put in ``Other``.

    Returns
    -------
    BrinsonAttribution

    Raises
    ------
    DataError
        From :func:`brinson_fachler` (e.g. a held asset without a return).
    """
    periods = _periods(result)
    growth = pd.DataFrame(np.log1p(returns.to_numpy(dtype="float64")), index=returns.index, columns=returns.columns)
    period_returns = pd.DataFrame({d: np.expm1(growth.loc[held].sum(axis=0)) for d, held in periods}).T.reindex(
        columns=result.weights.columns
    )
    period_returns[CASH] = 0.0
    dates = pd.DatetimeIndex([d for d, _ in periods])
    mapping = {**{str(a): sectors.get(str(a), OTHER) for a in returns.columns}, CASH: CASH}
    tables = [
        sector_weights_and_returns(_with_cash(run.weights.loc[dates]), period_returns.set_axis(dates), mapping)
        for run in (result, benchmark)
    ]
    (wp, rp), (wb, rb) = tables
    columns = wp.columns.union(wb.columns)
    if not (wp.get(CASH, pd.Series(0.0)).any() or wb.get(CASH, pd.Series(0.0)).any()):
        columns = columns.drop(CASH)  # fully invested on both sides: no cash sector to report
    wp, wb = wp.reindex(columns=columns, fill_value=0.0), wb.reindex(columns=columns, fill_value=0.0)
    return brinson_fachler(wp, rp.reindex(columns=columns), wb, rb.reindex(columns=columns))


def etf_factors(lake: Lake, request: BacktestRequest, net_returns: pd.Series) -> tuple[dict[str, Any] | None, str]:
    """The strategy's daily attribution on the factor ETFs' returns as JSON, or None and the reason it is skipped."""
    etfs = list(request.factor_etfs)
    if not etfs:
        return None, "ETF factor attribution skipped: no factor ETFs requested"
    try:
        bars = lake.read_bars(request.source, etfs, zone="curated", interval=request.interval)
        prices = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    except EmptyDataError:
        prices = pd.DataFrame()
    missing = [e for e in etfs if e not in prices.columns]
    if missing:
        return None, (
            f"ETF factor attribution skipped: no curated prices for {missing} "
            f"(curate them: `spe data ingest --symbols {','.join(etfs)}` then `spe data validate`)"
        )
    factors = prices[etfs].pct_change(fill_method=None).iloc[1:]
    try:
        attribution = factor_attribution(net_returns, factors)
    except DataError as exc:  # too few days in common, or collinear factors
        return None, f"ETF factor attribution skipped: {exc.message}"
    return {
        "summary": table_json(attribution.summary()),
        "r_squared": clean_number(attribution.r_squared),
        "days": attribution.n_observations,
    }, ""


def attribution_json(
    lake: Lake, result: BacktestResult, equal: BacktestResult, returns: pd.DataFrame, *, request: BacktestRequest
) -> tuple[dict[str, Any], list[str]]:
    """Factor (Fama-French, ETFs) and Brinson-Fachler results as JSON, and the reasons for the parts skipped."""
    out: dict[str, Any] = {}
    skipped: list[str] = []
    factor, reason = fama_french(lake, result.net_returns, pd.DatetimeIndex(returns.index))
    if factor is not None:
        out["fama_french"] = factor
    else:
        skipped.append(reason)
    etf, reason = etf_factors(lake, request, result.net_returns)
    if etf is not None:
        out["etf_factors"] = etf
    else:
        skipped.append(reason)
    sectors = sector_map(lake, [str(a) for a in returns.columns])
    if not sectors:
        skipped.append("Brinson-Fachler skipped: no sectors reference table in the lake (or none of the assets)")
    else:
        try:
            brinson = brinson_by_sector(result, equal, returns, sectors)
        except DataError as exc:
            skipped.append(f"Brinson-Fachler skipped: {exc.message}")
        else:
            out["brinson"] = {
                "benchmark": "equal_weight",
                "total": table_json(brinson.total()),
                "linked": table_json(brinson.linked),
                "by_period": table_json(brinson.by_period()),
            }
    for reason in skipped:
        logger.info("backtest attribution skipped", extra={"reason": reason})
    return out, skipped


def oos_json(
    result: BacktestResult, returns: pd.DataFrame, window: EstimationWindow
) -> tuple[dict[str, Any] | None, str]:
    """The in-sample against out-of-sample summary (``InOutOfSample.summary()``), or None and why (logged)."""
    try:
        return table_json(in_vs_out_of_sample(result, returns, window=window).summary()), ""
    except (DataError, OptimizationError) as exc:
        reason = f"out-of-sample analysis skipped: {exc.message}"
        logger.info("backtest out-of-sample analysis skipped", extra={"reason": reason})
        return None, reason


def risk_free_yields(lake: Lake, risk_free: float | str, calendar: pd.DatetimeIndex) -> float | pd.Series:
    """A request's annual risk-free rate: the constant itself, or the 3-month Treasury yield on ``calendar``.

    Parameters
    ----------
    lake : Lake
        Holds the ``treasury_curve`` reference table (column ``3month``, annual yields in decimal, by date).
    risk_free : float or "treasury_3m"
    calendar : DatetimeIndex of shape (n_days,)
        The backtest's trading days.

    Returns
    -------
    float or Series of shape (n_days,)
        The constant, or the yields forward-filled onto ``calendar`` (a quote holds until the next one, so
        holidays, gaps and days after the table ends take the last yield published).

    Raises
    ------
    EmptyDataError
        No ``treasury_curve`` table, no ``3month`` column, or no yield on or before the first day.
    """
    if not isinstance(risk_free, str):
        return float(risk_free)
    try:
        table = lake.read_reference(TREASURY_TABLE)
    except LakeError as exc:
        raise EmptyDataError(
            f"risk_free 'treasury_3m' needs the {TREASURY_TABLE} reference table; none in the lake ({exc.message}).",
            hint="Run `spe run` (it stores the reference tables) or pass a constant rate, e.g. 0.02.",
        ) from exc
    if "date" in table.columns:
        table = table.set_index("date")
    if TREASURY_3M not in table.columns:
        raise EmptyDataError(
            f"The {TREASURY_TABLE} table has no {TREASURY_3M!r} column; got {list(table.columns)}.",
            hint="Store load_treasury_curve() as the table, or pass a constant rate.",
        )
    quotes = table[TREASURY_3M].astype("float64").dropna()
    quotes.index = pd.DatetimeIndex(quotes.index)
    quotes = quotes.sort_index()
    yields = quotes.reindex(quotes.index.union(calendar)).ffill().reindex(calendar)
    if yields.isna().any():
        raise EmptyDataError(
            f"No 3-month Treasury yield on or before {yields.index[yields.isna()][0].date()} (the table starts "
            f"{quotes.index[0].date() if len(quotes) else 'nowhere'}).",
            hint="Start the backtest later, or pass a constant rate.",
        )
    return yields.rename("risk_free")


def daily_risk_free(annual: float | pd.Series) -> float | pd.Series:
    """Annual rates as daily ones for the engine's cash: ``(1 + y) ** (1 / 252) - 1``."""
    return (1.0 + annual) ** (1.0 / TRADING_DAYS) - 1.0


def windows_json(results: list[BacktestResult], names: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`window_results` as JSON: ``{window: {figure: value}}``, dates as ISO days, NaN as None."""
    frame = window_results(results, names=names)
    out: dict[str, dict[str, Any]] = {}
    for name, row in frame.iterrows():
        out[str(name)] = {
            "start": pd.Timestamp(row["start"]).date().isoformat(),
            "end": pd.Timestamp(row["end"]).date().isoformat(),
            "days": int(row["days"]),
            **{str(k): clean_number(v) for k, v in row.drop(["start", "end", "days"]).items()},
        }
    return out


def windows_frame(stored: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """:func:`windows_json` read back as a table, one row per window (None as NaN)."""
    frame = pd.DataFrame.from_dict(dict(stored), orient="index").rename_axis("window")
    numbers = [c for c in frame.columns if c not in ("start", "end")]
    return frame.astype(dict.fromkeys(numbers, "float64")).astype({"days": "int64"})
