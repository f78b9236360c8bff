"""RegimeAwarePolicy: point-in-time refits, regime switching, fan-out equality, typed errors."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest import (
    EstimationWindow,
    RegimeAwarePolicy,
    SpecPolicy,
    TransactionCosts,
    calendar_schedule,
    merge_results,
    run_backtest,
    run_window,
    split_windows,
)
from portfolio_engine.backtest._policies import DecisionContext
from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.regime import HMMRegimeDetector
from portfolio_engine.regime.definition import RegimeModelSpec

SPEC = PortfolioSpec(
    method="max_sharpe",
    lookback_days=252,
    estimators={"covariance": "ledoit_wolf"},
    regime_policies={"turbulent": {"method": "min_variance"}},
)
WINDOW = EstimationWindow("rolling", 252)
COSTS = TransactionCosts(cost_bps=10.0)


@pytest.fixture(scope="module")
def bundled() -> tuple[pd.DataFrame, pd.Series]:
    from portfolio_engine.adapters.market_data.bundled import BundledSource

    bars = BundledSource().fetch(["AAPL", "MSFT", "JNJ", "^GSPC"], start=date(2005, 1, 1), end=date(2009, 12, 31))
    prices = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index()
    returns = prices.pct_change().dropna()
    returns.index = pd.DatetimeIndex(returns.index)
    return returns[["AAPL", "MSFT", "JNJ"]], returns["^GSPC"]


def _policy(index: pd.Series, spec: PortfolioSpec = SPEC) -> RegimeAwarePolicy:
    return RegimeAwarePolicy(spec, index_returns=index, min_history=252)


def test_refit_uses_only_data_before_the_anchor(bundled):
    # Given the bundled index
    _returns, index = bundled
    policy = _policy(index)
    # When the model of a mid-2008 decision is fitted
    anchor = policy.anchor(pd.Timestamp("2008-06-30"))
    model = policy.model_at(anchor)
    # Then the anchor is the first trading day of 2008, and the model equals an HMM fitted on features
    # computed independently (log returns, 21-day annualised std) from the returns strictly before it
    assert anchor == pd.Timestamp("2008-01-02")
    before = index.loc[index.index < anchor]
    logret = np.log(1.0 + before)
    frame = pd.DataFrame({"logret_1d": logret, "vol_21d": logret.rolling(21).std(ddof=1) * np.sqrt(252.0)}).dropna()
    reference = HMMRegimeDetector(n_states=2, n_restarts=3, random_state=0).fit(frame)
    assert model.n_obs_ == len(frame) == len(before) - 20
    np.testing.assert_allclose(model.transmat_, reference.transmat_, rtol=1e-10)
    assert policy.anchor(pd.Timestamp("2008-01-02")) == anchor
    assert policy.refit_dates == [anchor]


def test_decisions_do_not_look_ahead(bundled):
    # Given a backtest on the bundled data
    returns, index = bundled
    schedule = calendar_schedule(returns.index, "monthly", min_history=252)
    base = run_backtest(returns, _policy(index), schedule, window=WINDOW, costs=COSTS)
    # When every return (assets and index) from a decision date t on is changed
    t = schedule[30]
    rng = np.random.default_rng(7)
    shocked_returns = returns.copy()
    after = shocked_returns.index >= t
    shocked_returns.loc[after] = rng.normal(0.0, 0.05, size=(int(after.sum()), returns.shape[1]))
    shocked_index = index.copy()
    shocked_index.loc[shocked_index.index >= t] = rng.normal(-0.01, 0.06, size=int((index.index >= t).sum()))
    shocked = run_backtest(shocked_returns, _policy(shocked_index), schedule, window=WINDOW, costs=COSTS)
    # Then every decision up to and including t is unchanged, and later ones differ
    upto = base.weights.index <= t
    pd.testing.assert_frame_equal(base.weights.loc[upto], shocked.weights.loc[upto], check_exact=True)
    assert not np.allclose(base.weights.loc[~upto].to_numpy(), shocked.weights.loc[~upto].to_numpy())


def test_fallback_before_min_history_is_the_spec_policy(bundled):
    # Given a policy needing more index history than a 2006 decision has
    returns, index = bundled
    policy = RegimeAwarePolicy(SPEC, index_returns=index, min_history=2000)
    t = pd.Timestamp("2006-06-30")
    history = returns.loc[returns.index < t].iloc[-252:]
    context = DecisionContext(date=t)
    # When it decides
    weights = policy(history, context)
    # Then it returns the spec's own estimators' target, and records no regime
    pd.testing.assert_series_equal(weights, SpecPolicy(SPEC)(history, context))
    assert policy.regimes[t] is None and policy.refit_dates == []


def test_fanned_out_windows_equal_the_single_run(bundled):
    # Given the schedule split into 3 windows, each run with its own fresh policy
    returns, index = bundled
    schedule = calendar_schedule(returns.index, "monthly", min_history=252)
    single = run_backtest(returns, _policy(index), schedule, window=WINDOW, costs=COSTS)
    # When the windows are merged
    parts = [
        run_window(returns, _policy(index), task, window=WINDOW, costs=COSTS) for task in split_windows(schedule, 3)
    ]
    merged = merge_results(parts)
    # Then the merged result is the single run bit for bit
    pd.testing.assert_series_equal(merged.net_returns, single.net_returns, check_exact=True)
    pd.testing.assert_frame_equal(merged.weights, single.weights, check_exact=True)
    assert merged.decision_dates.equals(single.decision_dates)


def _two_regime_market() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Index alternating 126-day calm (0.5 %/day) and turbulent (3 %/day) blocks; asset A has the best mean."""
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2000-01-03", periods=1512)
    turbulent = (np.arange(len(dates)) // 126) % 2 == 1
    index = pd.Series(np.where(turbulent, 0.03, 0.005) * rng.standard_normal(len(dates)), index=dates)
    noise = 0.01 * rng.standard_normal((len(dates), 3))
    assets = pd.DataFrame(0.5 * index.to_numpy()[:, None] + noise, index=dates, columns=["A", "B", "C"])
    assets["A"] += 0.004
    return assets, index, pd.Series(np.where(turbulent, "turbulent", "calm"), index=dates)


def test_policy_in_force_switches_with_the_regime():
    # Given a market with known regimes, calm: max Sharpe (A dominates), turbulent: capped minimum variance
    assets, index, truth = _two_regime_market()
    spec = PortfolioSpec(
        method="max_sharpe",
        lookback_days=252,
        estimators={"covariance": "sample"},
        regime_policies={"turbulent": {"method": "min_variance", "constraints": {"weight_bounds": [0.0, 0.34]}}},
    )
    policy = _policy(index, spec)
    schedule = calendar_schedule(assets.index, "monthly", min_history=504)
    # When it runs
    result = run_backtest(assets, policy, schedule, window=WINDOW)
    # Then the state at each decision is the true state of the day before, for decisions 21+ days into a block
    regimes = pd.Series(policy.regimes).dropna()  # the first decisions fall back (under a year of history)
    assert len(regimes) >= len(schedule) - 12
    position = assets.index.get_indexer(regimes.index)
    settled = (position - 1) % 126 >= 21
    expected = truth.iloc[position - 1].to_numpy()
    assert (regimes.to_numpy()[settled] == expected[settled]).mean() >= 0.9
    assert set(regimes) == {"calm", "turbulent"}
    # And the target follows the policy in force: capped in turbulence, concentrated in A when calm
    weights = result.weights
    calm, rough = regimes.index[regimes == "calm"], regimes.index[regimes == "turbulent"]
    assert (weights.loc[rough].max(axis=1) <= 0.34 + 1e-6).all()
    assert (weights.loc[calm, "A"] > 0.5).all()


def test_with_four_states_the_turbulent_policy_applies_to_the_highest_variance_state():
    # Given a 4-state HMM (states state_0..state_3, calmest first) refitted each year on 2003-2009 S&P 500 data,
    # and a spec whose defensive policy is keyed by role: `turbulent`
    from portfolio_engine.adapters.market_data.bundled import BundledSource

    bars = BundledSource().fetch(["AAPL", "MSFT", "JNJ", "^GSPC"], start=date(2003, 1, 1), end=date(2009, 12, 31))
    returns = bars.pivot(index="date", columns="symbol", values="adj_close").sort_index().pct_change().dropna()
    returns.index = pd.DatetimeIndex(returns.index)
    capped = {"method": "min_variance", "constraints": {"weight_bounds": [0, 0.34]}}
    spec = PortfolioSpec.from_dict({**SPEC.to_dict(), "regime_policies": {"turbulent": capped}})
    policy = RegimeAwarePolicy(
        spec, index_returns=returns["^GSPC"], regime_spec=RegimeModelSpec(n_states=4, n_restarts=2), min_history=504
    )
    assets = returns[["AAPL", "MSFT", "JNJ"]]
    # When it runs monthly
    result = run_backtest(assets, policy, calendar_schedule(assets.index, "monthly", min_history=252), window=WINDOW)
    # Then the 2008 crisis decisions fall in state_3, and there (only) the capped minimum-variance policy holds
    regimes = pd.Series(policy.regimes).dropna()
    rough = regimes.index[regimes == "state_3"]
    assert set(regimes) <= {"state_0", "state_1", "state_2", "state_3"} and pd.Timestamp("2008-11-28") in rough
    assert (result.weights.loc[rough].max(axis=1) <= 0.34 + 1e-6).all()
    assert (result.weights.loc[regimes.index[regimes != "state_3"]].max(axis=1) > 0.34 + 1e-3).all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"index_returns": [0.01, 0.02]}, RiskInputError),
        ({"index_returns": pd.Series(dtype=float)}, RiskInputError),
        ({"index_returns": pd.Series([0.01, np.nan], index=pd.bdate_range("2020-01-01", periods=2))}, RiskInputError),
        ({"refit_every": "not-an-offset"}, SpecificationError),
        ({"min_history": 1}, SpecificationError),
        ({"regime_spec": RegimeModelSpec(model="hybrid")}, SpecificationError),
        ({"regime_spec": RegimeModelSpec(features=("rsi_14",))}, SpecificationError),
        ({"regime_spec": {"n_states": 2}}, SpecificationError),
    ],
)
def test_invalid_arguments_raise_typed_errors(kwargs, error):
    # Given valid defaults, When one argument is invalid, Then a typed error names it
    arguments = {"index_returns": pd.Series([0.01, -0.02], index=pd.bdate_range("2020-01-01", periods=2))}
    arguments.update(kwargs)
    with pytest.raises(error):
        RegimeAwarePolicy(SPEC, **arguments)


def test_universe_missing_from_history_raises(bundled):
    # Given a spec naming an asset the returns lack, When a regime decision runs, Then SpecificationError
    returns, index = bundled
    policy = _policy(index, SPEC.model_copy(update={"universe": ["AAPL", "XOM"]}))
    t = pd.Timestamp("2008-06-30")
    with pytest.raises(SpecificationError, match="XOM"):
        policy(returns.loc[returns.index < t].iloc[-252:], DecisionContext(date=t))
