"""The walk-forward engine: hand-computed buy-and-hold, exact costs, no look-ahead, exact fan-out, typed errors."""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest.engine import (
    BacktestResult,
    DecisionContext,
    SpecPolicy,
    TransactionCosts,
    merge_results,
    run_backtest,
    run_window,
)
from portfolio_engine.backtest.windows import DriftTrigger, EstimationWindow, calendar_schedule, split_windows
from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.optimization import PortfolioSpec

ASSETS = ["a", "b", "c"]


def synthetic_returns(n_days: int = 130, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal([0.0004, 0.0002, 0.0001], [0.012, 0.008, 0.004], size=(n_days, 3))
    return pd.DataFrame(values, index=pd.bdate_range("2023-01-02", periods=n_days), columns=ASSETS)


def constant(weights: dict[str, float]):  # a policy
    target = pd.Series(weights)

    def policy(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        return target

    return policy


def inverse_volatility(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
    """A data-dependent policy: 95 % invested, inversely to each asset's volatility over the history."""
    inverse = 1.0 / history.std()
    return 0.95 * inverse / inverse.sum()


def test_constant_weights_without_costs_match_a_hand_computed_buy_and_hold_between_month_ends() -> None:
    # Given returns, a constant 50/30/10 policy (10 % cash at a daily 1 bp) and month-end decisions
    returns = synthetic_returns()
    target = {"a": 0.5, "b": 0.3, "c": 0.1}
    rf = 1e-4
    schedule = calendar_schedule(returns.index, "monthly", min_history=20)
    # When the backtest runs without costs
    result = run_backtest(
        returns, constant(target), schedule, window=EstimationWindow("rolling", 20), risk_free_rate=rf
    )
    # Then the value path equals buying shares at each decision's close and holding them to the next one
    prices = (1.0 + returns).cumprod()
    positions = [returns.index.get_loc(d) for d in schedule]
    w = np.array([target[a] for a in ASSETS])
    value, path, turnovers = 1.0, [], []
    shares, cash = np.zeros(3), 1.0  # all cash at the open of the first decision date
    for row in range(positions[0], len(returns)):
        cash *= 1.0 + rf
        new_value = float(shares @ prices.iloc[row].to_numpy()) + cash
        path.append(new_value / value - 1.0)
        value = new_value
        if row in positions:
            held = shares * prices.iloc[row].to_numpy() / value
            turnovers.append(np.abs(w - held).sum())
            shares = value * w / prices.iloc[row].to_numpy()
            cash = value * (1.0 - w.sum())
    assert result.decision_dates.equals(schedule)
    np.testing.assert_allclose(result.gross_returns.to_numpy(), path, rtol=0, atol=1e-14)
    assert result.gross_returns.iloc[0] == pytest.approx(rf, abs=1e-15)  # the first day is held in cash
    np.testing.assert_allclose(result.turnover.to_numpy(), turnovers, rtol=0, atol=1e-14)
    assert result.turnover.iloc[0] == pytest.approx(0.9)
    assert (result.costs == 0).all() and result.net_returns.equals(result.gross_returns.rename("net_return"))
    np.testing.assert_allclose(result.cash.loc[schedule].to_numpy(), 0.1, atol=1e-15)
    np.testing.assert_allclose(result.weights.to_numpy(), np.tile(w, (len(schedule), 1)), atol=0)


def test_net_return_is_gross_minus_costs_exactly_and_costs_follow_the_stated_formula() -> None:
    # Given 10 bps plus a square-root impact
    returns = synthetic_returns()
    costs = TransactionCosts(cost_bps=10.0, impact="sqrt", impact_coefficient=0.02)
    schedule = calendar_schedule(returns.index, "weekly", min_history=20)
    # When a data-dependent policy runs
    result = run_backtest(returns, inverse_volatility, schedule, window=EstimationWindow("rolling", 20), costs=costs)
    # Then net == gross - costs bit for bit every day, costs sit only on decision dates
    assert ((result.gross_returns - result.costs).to_numpy() == result.net_returns.to_numpy()).all()
    assert (result.costs.drop(schedule) == 0).all()
    trades = (result.weights - result.pre_trade_weights).abs()
    expected = (10e-4 * trades.sum(axis=1) + 0.02 * (trades**1.5).sum(axis=1)) * (1 + result.gross_returns[schedule])
    np.testing.assert_allclose(result.costs[schedule].to_numpy(), expected.to_numpy(), rtol=1e-13)
    np.testing.assert_allclose(result.turnover.to_numpy(), trades.sum(axis=1).to_numpy(), rtol=1e-13)
    assert result.total_costs > 0


def test_quadratic_impact_and_cost_validation() -> None:
    trades = np.array([0.1, -0.2, 0.0])
    assert TransactionCosts(5.0, "quadratic", 0.5).cost(trades) == pytest.approx(5e-4 * 0.3 + 0.5 * (0.01 + 0.04))
    with pytest.raises(SpecificationError, match="cost_bps"):
        TransactionCosts(cost_bps=-1.0)
    with pytest.raises(SpecificationError, match="'cubic'"):
        TransactionCosts(impact="cubic")  # type: ignore[arg-type]


def test_changing_returns_from_t_on_leaves_every_decision_up_to_t_and_every_return_before_t_unchanged() -> None:
    # Given a data-dependent policy with weekly decisions, and a copy of the returns perturbed from decision t on
    returns = synthetic_returns()
    schedule = calendar_schedule(returns.index, "weekly", min_history=20)
    t = schedule[6]
    perturbed = returns.copy()
    rng = np.random.default_rng(1)
    perturbed.loc[t:] += rng.normal(0.0, 0.02, size=perturbed.loc[t:].shape)
    seen: list[pd.Timestamp] = []

    def policy(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        seen.append(history.index[-1])
        assert history.index[-1] < context.date
        return inverse_volatility(history, context)

    kwargs = {"window": EstimationWindow("expanding", 20), "costs": TransactionCosts(cost_bps=5.0)}
    # When both run
    base = run_backtest(returns, policy, schedule, **kwargs)
    moved = run_backtest(perturbed, policy, schedule, **kwargs)
    # Then every decision up to and including t is identical, and so is every daily figure before t
    pd.testing.assert_frame_equal(base.weights.loc[:t], moved.weights.loc[:t], check_exact=True)
    before = base.gross_returns.index < t
    assert base.net_returns[before].equals(moved.net_returns[before])
    # ...while day t's return (held on the old weights) and later decisions do change
    assert base.gross_returns[t] != moved.gross_returns[t]
    assert not np.allclose(base.weights.loc[schedule[7] :], moved.weights.loc[schedule[7] :])
    # The decision at t saw the previous trading date last
    assert seen[6] == returns.index[returns.index.get_loc(t) - 1]


@pytest.mark.parametrize("n_windows", [1, 2, 3, 7, 100])
def test_fanned_out_windows_merge_to_the_single_run_bit_for_bit(n_windows: int) -> None:
    # Given costs with impact, cash at a risk-free rate per date, and a data-dependent policy
    returns = synthetic_returns()
    rf = pd.Series(np.linspace(1e-5, 2e-4, len(returns)), index=returns.index)
    kwargs = {
        "window": EstimationWindow("rolling", 15),
        "costs": TransactionCosts(cost_bps=8.0, impact="quadratic", impact_coefficient=0.1),
        "risk_free_rate": rf,
    }
    schedule = calendar_schedule(returns.index, "weekly", min_history=15)
    single = run_backtest(returns, inverse_volatility, schedule, **kwargs)
    # When the schedule is split into windows run independently (in reverse order, through their JSON form)
    tasks = split_windows(schedule, n_windows)
    parts = [run_window(returns, inverse_volatility, type(t).from_dict(t.to_dict()), **kwargs) for t in tasks[::-1]]
    merged = merge_results(parts)
    # Then the merge equals the single run exactly
    assert_same(merged, single)


def assert_same(left: BacktestResult, right: BacktestResult) -> None:
    for name in ("gross_returns", "costs", "net_returns", "cash", "turnover"):
        pd.testing.assert_series_equal(getattr(left, name), getattr(right, name), check_exact=True, check_freq=False)
    for name in ("weights", "pre_trade_weights"):
        pd.testing.assert_frame_equal(getattr(left, name), getattr(right, name), check_exact=True, check_freq=False)
    assert left.decision_dates.equals(right.decision_dates)


def test_drift_trigger_adds_a_decision_the_day_after_the_drift_exceeds_the_threshold() -> None:
    # Given a constant 50/50 policy rebalanced monthly, plus a 1 % drift trigger
    returns = synthetic_returns(seed=3)[["a", "c"]]
    schedule = calendar_schedule(returns.index, "monthly", min_history=5)
    result = run_backtest(
        returns,
        constant({"a": 0.5, "c": 0.5}),
        schedule,
        window=EstimationWindow("rolling", 5),
        trigger=DriftTrigger(0.01),
    )
    extra = result.decision_dates.difference(schedule)
    assert len(extra) > 0 and set(schedule) <= set(result.decision_dates)
    # Then, replaying by hand, each holding period's drift first exceeds 1 % at the close before the next decision
    dates = result.decision_dates
    for start, nxt in itertools.pairwise(dates):
        block = returns.loc[start:nxt].iloc[1:]
        weight = 0.5 * (1 + block).cumprod()
        drift = (weight.div(weight.sum(axis=1), axis=0) - 0.5).abs().max(axis=1)
        crossed = drift.index[(drift > 0.01).to_numpy()]
        if nxt in extra:
            assert crossed[0] == returns.index[returns.index.get_loc(nxt) - 1]
        else:
            assert len(crossed) == 0 or crossed[0] >= returns.index[returns.index.get_loc(nxt) - 1]


def test_regime_probabilities_reach_the_policy_only_once_known() -> None:
    # Given probabilities that switch to "turbulent" on the decision date itself
    returns = synthetic_returns()
    schedule = calendar_schedule(returns.index, "monthly", min_history=20)
    switch = schedule[1]
    probabilities = pd.DataFrame({"calm": 1.0, "turbulent": 0.0}, index=returns.index)
    probabilities.loc[switch:, ["calm", "turbulent"]] = [0.1, 0.9]
    regimes: dict[pd.Timestamp, str | None] = {}

    def policy(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        regimes[context.date] = context.regime
        return pd.Series({"a": 1.0})

    run_backtest(returns, policy, schedule, window=EstimationWindow("rolling", 20), regime_probabilities=probabilities)
    # Then the decision on the switch date still sees "calm"; the next one sees "turbulent"
    assert [regimes[d] for d in schedule[:3]] == ["calm", "calm", "turbulent"]


def test_typed_errors_with_hints() -> None:
    returns = synthetic_returns()
    schedule = calendar_schedule(returns.index, "monthly", min_history=20)
    window = EstimationWindow("rolling", 20)
    with pytest.raises(RiskInputError, match="non-empty DataFrame") as info:
        run_backtest(returns.iloc[:0], inverse_volatility, schedule)
    assert info.value.hint
    with pytest.raises(SpecificationError, match="needs 60 rows") as info:
        run_backtest(returns, inverse_volatility, schedule, window=EstimationWindow("rolling", 60))
    assert "min_history" in info.value.hint
    with pytest.raises(RiskInputError, match="'zzz'"):
        run_backtest(returns, constant({"a": 0.5, "zzz": 0.5}), schedule, window=window)
    with pytest.raises(RiskInputError, match="NaN"):
        run_backtest(returns, constant({"a": float("nan")}), schedule, window=window)
    with pytest.raises(RiskInputError, match=r"\['b'\]"):
        bad = returns.copy()
        bad.iloc[3, 1] = np.nan
        run_backtest(bad, inverse_volatility, schedule, window=window)
    with pytest.raises(SpecificationError, match="not trading dates"):
        run_backtest(returns, inverse_volatility, [pd.Timestamp("2023-01-07")], window=window)


def test_spec_policy_on_bundled_data_fans_out_exactly() -> None:
    # Given three bundled stocks (2015-2016) and a min-variance spec on a 120-day window
    from portfolio_engine.adapters.market_data.bundled import BundledSource

    bars = BundledSource().fetch(["AAPL", "MSFT", "JNJ"], start=date(2015, 1, 1), end=date(2016, 12, 31))
    prices = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    returns = prices.pct_change().dropna()
    returns.index = pd.DatetimeIndex(returns.index)
    spec = PortfolioSpec(method="min_variance", lookback_days=120, estimators={"covariance": "sample"})
    schedule = calendar_schedule(returns.index, "monthly", min_history=120)
    kwargs = {"window": EstimationWindow("rolling", 120), "costs": TransactionCosts(cost_bps=10.0)}
    # When it runs in one process and as 4 windows
    single = run_backtest(returns, SpecPolicy(spec), schedule, **kwargs)
    merged = merge_results([run_window(returns, SpecPolicy(spec), t, **kwargs) for t in split_windows(schedule, 4)])
    # Then the weights are fully invested, long-only, and the merge is exact
    np.testing.assert_allclose(single.weights.sum(axis=1), 1.0, atol=1e-8)
    assert (single.weights.to_numpy() > -1e-8).all()
    assert_same(merged, single)
    assert len(single.gross_returns) == len(returns.loc[schedule[0] :])
