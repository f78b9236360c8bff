"""Walk-forward backtest engine: policies decide on past data, holdings drift daily, trades pay costs.

Timing (see :mod:`portfolio_engine.backtest.windows`): the decision at ``t`` sees the returns strictly before
``t`` and trades at the close of ``t``; day ``t``'s return accrues to the weights held before the trade, the new
target earns from ``t + 1``. Between decisions the holdings drift with the returns (no trading); cash
(``1 - sum w``) earns the daily risk-free rate. The cost of a rebalance, a fraction ``c`` of the value at the
close of ``t``, enters day ``t`` as ``costs[t] = c * (1 + gross[t])`` so that ``net = gross - costs`` is the
day's return after costs; the target weights are fractions of the value after costs.

Fan-out. The holdings after a decision are its target, which depends only on the history before it (for a
policy that ignores ``context.current_weights`` and ``context.previous_target``). :func:`run_window` therefore
recomputes the target of the decision before its block, drifts it to the block's first decision with the same
arithmetic as the single run, and needs nothing from other tasks: :func:`merge_results` of every window equals
:func:`run_backtest` bit for bit. A state trigger (:class:`~portfolio_engine.backtest.windows.DriftTrigger`) makes
the decision dates depend on the path, so it runs in one process only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from portfolio_engine.backtest._costs import Impact, TransactionCosts
from portfolio_engine.backtest._policies import DecisionContext, Policy, SpecPolicy
from portfolio_engine.backtest._result import BacktestResult, merge_results
from portfolio_engine.backtest.windows import DriftTrigger, EstimationWindow, WalkForwardWindow
from portfolio_engine.exceptions import RiskInputError, SpecificationError

__all__ = [
    "BacktestResult",
    "DecisionContext",
    "Impact",
    "Policy",
    "SpecPolicy",
    "TransactionCosts",
    "merge_results",
    "run_backtest",
    "run_window",
]


@dataclass
class _Inputs:
    returns: pd.DataFrame
    values: np.ndarray
    rf: np.ndarray
    policy: Policy
    window: EstimationWindow
    costs: TransactionCosts
    probabilities: pd.DataFrame | None


@dataclass
class _Book:
    """Mutable accumulation of one run (daily rows from ``first`` on, and decision records)."""

    first: int
    gross: dict[int, float] = field(default_factory=dict)
    cost: dict[int, float] = field(default_factory=dict)
    cash: dict[int, float] = field(default_factory=dict)
    decisions: list[int] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)
    pre_trade: list[np.ndarray] = field(default_factory=list)


def _check_returns(returns: object) -> pd.DataFrame:
    if not isinstance(returns, pd.DataFrame) or returns.empty:
        raise RiskInputError(
            f"returns must be a non-empty DataFrame (dates x assets); got {type(returns).__name__} "
            f"of shape {getattr(returns, 'shape', None)}.",
            hint="Pivot prices to one column per asset and take pct_change().dropna().",
        )
    index = returns.index
    if not isinstance(index, pd.DatetimeIndex) or not (index.is_monotonic_increasing and index.is_unique):
        raise RiskInputError(
            "returns must be indexed by increasing, distinct dates.", hint="Use returns.sort_index() on a date index."
        )
    values = returns.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        bad = returns.columns[~np.isfinite(values).all(axis=0)].tolist()
        raise RiskInputError(
            f"returns hold NaN or infinite values in {bad}.",
            hint="Drop the dates before every asset trades (dropna()) or restrict the universe.",
        )
    # A fresh frame, laid out the same way whatever the caller's was (a view, a pickled copy, a Parquet
    # read): reductions sum in layout order, and windows run in other processes must reproduce the single
    # run bit for bit (benchmarks/bench_backtest.py checks it on a process pool).
    return pd.DataFrame(np.ascontiguousarray(values), index=index, columns=returns.columns)


def _risk_free(rate: float | pd.Series, index: pd.Index) -> np.ndarray:
    if isinstance(rate, pd.Series):
        aligned = rate.reindex(index).to_numpy(dtype="float64")
    elif isinstance(rate, int | float) and not isinstance(rate, bool):
        aligned = np.full(len(index), float(rate))
    else:
        raise SpecificationError(f"risk_free_rate must be a float or a Series; got {rate!r:.80}.", hint="e.g. 0.0001.")
    if not np.isfinite(aligned).all():
        raise RiskInputError(
            "risk_free_rate has no finite daily rate on some trading dates.",
            hint="Give a daily rate (not annual) for every date of the returns, e.g. forward-filled.",
        )
    return aligned


def _weights(raw: object, assets: pd.Index, what: str) -> np.ndarray:
    if not isinstance(raw, pd.Series):
        raise RiskInputError(
            f"{what} must be a Series of weights indexed by asset; got {type(raw).__name__} {raw!r:.120}.",
            hint="Return e.g. pd.Series({'AAPL': 0.5, 'MSFT': 0.5}).",
        )
    unknown = [a for a in raw.index if a not in assets]
    if unknown or not raw.index.is_unique:
        raise RiskInputError(
            f"{what} names assets not in the returns (or repeats one): {unknown or raw.index.tolist()}.",
            hint=f"Weights may only cover the returns' columns: {assets.tolist()}.",
        )
    numeric = pd.to_numeric(raw, errors="coerce").astype("float64")
    if not np.isfinite(numeric.to_numpy()).all():
        raise RiskInputError(
            f"{what} holds NaN or infinite weights: {raw[~np.isfinite(numeric.to_numpy())].to_dict()}.",
            hint="Check the policy: an optimizer that failed should raise, not return NaN.",
        )
    return numeric.reindex(assets, fill_value=0.0).to_numpy(dtype="float64")


def _positions(dates: Sequence[pd.Timestamp] | pd.DatetimeIndex, calendar: pd.Index) -> list[int]:
    index = pd.DatetimeIndex(list(dates))
    if len(index) == 0:
        raise SpecificationError("No decision dates given.", hint="Build them with calendar_schedule(returns.index).")
    positions = calendar.get_indexer(index)
    if (positions < 0).any():
        missing = [str(d.date()) for d in index[positions < 0][:5]]
        raise SpecificationError(
            f"Decision dates {missing} are not trading dates of the returns.",
            hint="Derive the schedule from returns.index (calendar_schedule / signal_schedule).",
        )
    if not (np.diff(positions) > 0).all():
        raise SpecificationError("Decision dates must be increasing and distinct.", hint="Sort and deduplicate them.")
    return positions.tolist()


def _decide(inp: _Inputs, position: int, current: np.ndarray | None, previous: np.ndarray | None) -> np.ndarray:
    date = inp.returns.index[position]
    start, stop = inp.window.bounds(position, date.date())
    assets = inp.returns.columns
    probabilities = None
    if inp.probabilities is not None:
        known = int(inp.probabilities.index.searchsorted(date, side="left"))
        probabilities = inp.probabilities.iloc[known - 1] if known > 0 else None
    context = DecisionContext(
        date=date,
        current_weights=None if current is None else pd.Series(current, index=assets),
        previous_target=None if previous is None else pd.Series(previous, index=assets),
        regime_probabilities=probabilities,
    )
    # A copy: a policy that writes into its history must not change the data later decisions see.
    history = inp.returns.iloc[start:stop].copy()
    return _weights(inp.policy(history, context), assets, f"The policy's weights at {date.date()}")


def _hold(inp: _Inputs, weights: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily gross returns, asset weights and cash weight at each close of rows ``[start, stop]`` held untouched.

    Values compound from ``weights`` (and cash ``1 - sum``) at the open of ``start``; every run prices a holding
    period with this same arithmetic from its first day, which makes fan-out windows match the single run.
    """
    growth = np.cumprod(1.0 + inp.values[start : stop + 1], axis=0)
    assets = weights * growth
    cash = (1.0 - weights.sum()) * np.cumprod(1.0 + inp.rf[start : stop + 1])
    value = assets.sum(axis=1) + cash
    gross = value / np.concatenate([[1.0], value[:-1]]) - 1.0
    return gross, assets / value[:, None], cash / value


def _simulate(
    inp: _Inputs,
    decisions: list[int],
    *,
    start_weights: np.ndarray,
    start: int,
    first: int,
    stop: int,
    trigger: DriftTrigger | None = None,
    previous: np.ndarray | None = None,
) -> _Book:
    """Hold ``start_weights`` from the open of row ``start``, run through row ``stop - 1``, record from ``first``."""
    book = _Book(first=first)
    weights, opening, begin = start_weights, start_weights, start
    pending = list(decisions)
    while begin < stop:
        end = pending[0] if pending else stop - 1
        gross, closing, cash = _hold(inp, weights, begin, end)
        if trigger is not None and previous is not None:
            fired = np.flatnonzero(trigger.fired(closing, weights))
            # A drift seen at a close triggers the next date's decision, if that comes before the scheduled one.
            if len(fired) and begin + fired[0] + 1 < min(end, stop - 1):
                end = begin + int(fired[0]) + 1
                pending.insert(0, end)
                gross, closing, cash = gross[: end - begin + 1], closing[: end - begin + 1], cash[: end - begin + 1]
        for offset in range(end - begin + 1):
            if begin + offset >= first:
                book.gross[begin + offset] = float(gross[offset])
                book.cost[begin + offset] = 0.0
                book.cash[begin + offset] = float(cash[offset])
        if not pending or pending[0] != end:
            break
        pending.pop(0)
        current = closing[-2] if end > begin else opening
        target = _decide(inp, end, current, previous)
        trades = target - closing[-1]
        book.cost[end] = inp.costs.cost(trades) * (1.0 + book.gross[end])
        book.cash[end] = 1.0 - float(target.sum())
        book.decisions.append(end)
        book.targets.append(target)
        book.pre_trade.append(closing[-1])
        weights, opening, previous, begin = target, target, target, end + 1
    return book


def _result(inp: _Inputs, book: _Book) -> BacktestResult:
    dates = inp.returns.index
    rows = sorted(book.gross)
    days = dates[rows]
    gross = pd.Series([book.gross[r] for r in rows], index=days, name="gross_return")
    costs = pd.Series([book.cost[r] for r in rows], index=days, name="cost")
    decision_dates = pd.DatetimeIndex(dates[book.decisions], name="date")
    assets = inp.returns.columns
    targets = np.vstack(book.targets) if book.targets else np.empty((0, len(assets)))
    pre_trade = np.vstack(book.pre_trade) if book.pre_trade else np.empty((0, len(assets)))
    return BacktestResult(
        gross_returns=gross,
        costs=costs,
        net_returns=(gross - costs).rename("net_return"),
        cash=pd.Series([book.cash[r] for r in rows], index=days, name="cash"),
        weights=pd.DataFrame(targets, index=decision_dates, columns=assets),
        pre_trade_weights=pd.DataFrame(pre_trade, index=decision_dates, columns=assets),
        turnover=pd.Series(np.abs(targets - pre_trade).sum(axis=1), index=decision_dates, name="turnover"),
        decision_dates=decision_dates,
    )


def _inputs(
    returns: pd.DataFrame,
    policy: Policy,
    window: EstimationWindow,
    costs: TransactionCosts,
    risk_free_rate: float | pd.Series,
    regime_probabilities: pd.DataFrame | None,
) -> _Inputs:
    data = _check_returns(returns)
    if not callable(policy):
        raise SpecificationError(
            f"policy must be callable as policy(history, context); got {type(policy).__name__}.",
            hint="Pass a function or SpecPolicy(spec).",
        )
    if regime_probabilities is not None and not isinstance(regime_probabilities, pd.DataFrame):
        raise RiskInputError(
            f"regime_probabilities must be a DataFrame (dates x states); got {type(regime_probabilities).__name__}.",
            hint="Pass the filtered probabilities, one row per date, columns named by state.",
        )
    return _Inputs(
        returns=data,
        values=data.to_numpy(dtype="float64"),
        rf=_risk_free(risk_free_rate, data.index),
        policy=policy,
        window=window,
        costs=costs,
        probabilities=None if regime_probabilities is None else regime_probabilities.sort_index(),
    )


def run_backtest(
    returns: pd.DataFrame,
    policy: Policy,
    decision_dates: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    *,
    window: EstimationWindow | None = None,
    costs: TransactionCosts | None = None,
    risk_free_rate: float | pd.Series = 0.0,
    trigger: DriftTrigger | None = None,
    regime_probabilities: pd.DataFrame | None = None,
    initial_weights: pd.Series | None = None,
) -> BacktestResult:
    """Walk forward through ``returns``, rebalancing to the policy's target on each decision date.

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_assets)
        Daily simple returns, indexed by increasing trading dates (the calendar), no NaN.
    policy : callable
        ``policy(history, context) -> Series`` (see :class:`Policy`); ``history`` is the window of rows strictly
        before the decision date.
    decision_dates : DatetimeIndex
        Scheduled decisions, trading dates of ``returns`` (see ``calendar_schedule``, ``signal_schedule``).
    window : EstimationWindow, optional
        History each decision sees; default expanding with at least 252 rows.
    costs : TransactionCosts, optional
        Default: no costs.
    risk_free_rate : float or Series, default 0.0
        Daily rate earned by cash, one number or one per date.
    trigger : DriftTrigger, optional
        Extra decisions when the holdings drift from the last target (single process only).
    regime_probabilities : DataFrame of shape (n_dates, n_states), optional
        Row ``d`` known at the close of ``d``; a decision at ``t`` gets the last row dated before ``t``.
    initial_weights : Series, optional
        Holdings at the open of the first decision date (default: all cash).

    Returns
    -------
    BacktestResult
        Daily series from the first decision date to the last date of ``returns``.

    Raises
    ------
    RiskInputError
        Empty or non-finite returns, an unsorted index, a policy returning weights for unknown assets or NaN.
    SpecificationError
        Decision dates outside the calendar or unsorted, a window longer than the history before a decision.
    """
    inp = _inputs(
        returns, policy, window or EstimationWindow(), costs or TransactionCosts(), risk_free_rate, regime_probabilities
    )
    positions = _positions(decision_dates, inp.returns.index)
    start_weights = (
        np.zeros(inp.values.shape[1])
        if initial_weights is None
        else _weights(initial_weights, inp.returns.columns, "initial_weights")
    )
    book = _simulate(
        inp,
        positions,
        start_weights=start_weights,
        start=positions[0],
        first=positions[0],
        stop=len(inp.returns),
        trigger=trigger,
    )
    return _result(inp, book)


def run_window(
    returns: pd.DataFrame,
    policy: Policy,
    task: WalkForwardWindow,
    *,
    window: EstimationWindow | None = None,
    costs: TransactionCosts | None = None,
    risk_free_rate: float | pd.Series = 0.0,
    regime_probabilities: pd.DataFrame | None = None,
    initial_weights: pd.Series | None = None,
) -> BacktestResult:
    """Run one fan-out window of :func:`~portfolio_engine.backtest.windows.split_windows`, independently.

    The window recomputes the target of ``task.previous`` (with ``context.current_weights = None``), drifts it
    to its first decision and reports the days from its first decision up to (excluding) ``task.end``.
    ``merge_results`` over every window equals :func:`run_backtest` with the same arguments bit for bit, for a
    policy that ignores ``context.current_weights`` and ``context.previous_target``. Parameters are those of
    :func:`run_backtest` (``initial_weights`` matters only to the first window).

    Returns
    -------
    BacktestResult

    Raises
    ------
    RiskInputError, SpecificationError
        As :func:`run_backtest`; also a window whose dates are not trading dates.
    """
    inp = _inputs(
        returns, policy, window or EstimationWindow(), costs or TransactionCosts(), risk_free_rate, regime_probabilities
    )
    calendar = inp.returns.index
    positions = _positions(task.decisions, calendar)
    stop = len(calendar) if task.end is None else _positions([task.end], calendar)[0]
    if task.previous is None:
        start = positions[0]
        start_weights = (
            np.zeros(inp.values.shape[1])
            if initial_weights is None
            else _weights(initial_weights, inp.returns.columns, "initial_weights")
        )
        previous = None
    else:
        before = _positions([task.previous], calendar)[0]
        previous = _decide(inp, before, None, None)
        start, start_weights = before + 1, previous
    book = _simulate(
        inp, positions, start_weights=start_weights, start=start, first=positions[0], stop=stop, previous=previous
    )
    return _result(inp, book)
