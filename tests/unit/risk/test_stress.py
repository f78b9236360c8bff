"""Stress tests: historical replay checked against the bundled prices, each hypothetical shock against a hand
computation, reverse stress hitting its limit, and the typed errors."""

from __future__ import annotations

import json
import math
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio_engine.adapters.market_data.bundled import BundledSource, load_sectors
from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk.measures import tail_risk
from portfolio_engine.risk.stress import (
    DEFAULT_SCENARIOS,
    HistoricalScenario,
    correlation_shock,
    equity_shock,
    factor_shock,
    replay_scenario,
    replay_scenarios,
    reverse_equity_shock,
    reverse_scenario_multiple,
    reverse_stress_linear,
    reverse_volatility_stress,
    scenario_shock,
    sector_shock,
    stress_table,
    volatility_shock,
)

WEIGHTS = pd.Series({"AAPL": 0.3, "JPM": 0.3, "XOM": 0.2, "USMV": 0.2})  # USMV trades from 2014 only


@lru_cache(maxsize=1)
def _prices() -> pd.DataFrame:
    bars = BundledSource().fetch(["AAPL", "JPM", "XOM", "USMV", "^GSPC"])
    return bars.pivot(index="date", columns="symbol", values="adj_close")


def _returns() -> pd.DataFrame:
    """Simple daily returns from the bundled prices; NaN where an asset has no price (USMV before 2014)."""
    return _prices().pct_change().iloc[1:]


def _window_growth(start: str, end: str) -> pd.DataFrame:
    """Each price over the window divided by its price on the eve of the window (the last close before it)."""
    prices = _prices()
    eve = prices.loc[: pd.Timestamp(start) - pd.Timedelta(days=1)].iloc[-1]
    return prices.loc[start:end] / eve


# --- historical replay --------------------------------------------------------------------------------------------


def test_default_scenarios_are_the_issue_windows() -> None:
    windows = {s.name: (s.start, s.end) for s in DEFAULT_SCENARIOS}
    assert windows == {
        "gfc": (date(2008, 9, 1), date(2009, 3, 31)),
        "covid": (date(2020, 2, 1), date(2020, 3, 31)),
        "2022": (date(2022, 1, 1), date(2022, 12, 31)),
        "dotcom": (date(2000, 3, 1), date(2002, 10, 31)),
        "us_downgrade_2011": (date(2011, 8, 1), date(2011, 8, 31)),
        "q4_2018": (date(2018, 10, 1), date(2018, 12, 31)),
    }


def test_covid_replay_matches_the_raw_prices() -> None:
    # Given the bundled prices over 2020-02-01..2020-03-31 (every asset trades)
    growth = _window_growth("2020-02-01", "2020-03-31")[WEIGHTS.index]
    # When today's weights are replayed
    replay = replay_scenario(WEIGHTS, _returns(), "covid")
    # Then the buy-and-hold return is sum_i w_i (P_i(end) / P_i(eve) - 1), from prices, by hand
    value = 1.0 + (growth - 1.0) @ WEIGHTS
    assert replay.cumulative_return == pytest.approx(float(value.iloc[-1] - 1.0), abs=1e-12)
    assert replay.status == "ok" and replay.n_days == len(growth) and replay.missing_assets == ()
    # And the worst day and drawdown are those of that value path; the rebalanced return compounds w' r
    daily = value / value.shift(1).fillna(1.0) - 1.0
    assert replay.worst_day == daily.idxmin()
    assert replay.worst_day_return == pytest.approx(daily.min(), abs=1e-12)
    peak, deepest = 1.0, 0.0
    for v in value:
        peak = max(peak, v)
        deepest = max(deepest, 1.0 - v / peak)
    assert replay.max_drawdown == pytest.approx(deepest, abs=1e-12)
    asset_daily = growth / growth.shift(1).fillna(1.0) - 1.0
    assert replay.fixed_weight_return == pytest.approx(float(np.prod(1.0 + asset_daily @ WEIGHTS) - 1.0), abs=1e-12)
    assert replay.cumulative_return == pytest.approx(float(replay.asset_returns @ WEIGHTS), abs=1e-14)


def test_gfc_replay_reports_the_missing_asset_or_proxies_it_by_the_index() -> None:
    growth = _window_growth("2008-09-01", "2009-03-31")
    held = ["AAPL", "JPM", "XOM"]
    by_stocks = float(((growth[held] - 1.0) @ WEIGHTS[held]).iloc[-1])
    # Without a proxy, USMV (no data before 2014) is missing and held as cash
    alone = replay_scenario(WEIGHTS, _returns(), "gfc")
    assert alone.status == "partial" and alone.missing_assets == ("USMV",) and alone.missing_weight == 0.2
    assert alone.cumulative_return == pytest.approx(by_stocks, abs=1e-12)
    # With the S&P 500 as proxy, USMV moves with the index
    proxied = replay_scenario(WEIGHTS, _returns(), "gfc", proxy=_returns()["^GSPC"])
    assert proxied.status == "ok" and proxied.proxied_assets == ("USMV",) and proxied.missing_assets == ()
    index_term = 0.2 * float(growth["^GSPC"].iloc[-1] - 1.0)
    assert proxied.cumulative_return == pytest.approx(by_stocks + index_term, abs=1e-12)


def test_replay_all_default_scenarios_and_table() -> None:
    results = replay_scenarios(WEIGHTS, _returns(), proxy=_returns()["^GSPC"])
    assert [r.name for r in results] == [s.name for s in DEFAULT_SCENARIOS]
    table = stress_table(results)
    assert table.loc["dotcom", "cumulative_return"] == pytest.approx(results[3].cumulative_return)
    assert table.loc["2022", "proxied_assets"] == ""  # USMV trades in 2022
    payload = json.loads(json.dumps([r.to_dict() for r in results]))
    assert payload[1]["name"] == "covid" and payload[1]["loss"] == pytest.approx(-results[1].cumulative_return)


def test_replay_of_a_window_without_data_is_flagged() -> None:
    replay = replay_scenario(WEIGHTS, _returns(), ("future", "2030-01-01", "2030-06-30"))
    assert replay.status == "no_data" and replay.n_days == 0 and math.isnan(replay.cumulative_return)
    assert replay.to_dict()["cumulative_return"] is None
    with pytest.raises(RiskError, match="no data"):
        reverse_scenario_multiple(WEIGHTS, replay, 0.1)


# --- hypothetical shocks ---------------------------------------------------------------------------------------------

MIXED = pd.Series({"EQ1": 0.5, "EQ2": 0.3, "BOND": 0.2})


def test_equity_shock_uniform_and_beta_scaled() -> None:
    uniform = equity_shock(MIXED, -0.20, equities=["EQ1", "EQ2"])
    assert uniform.loss == pytest.approx(0.20 * (0.5 + 0.3), abs=1e-15)
    assert uniform.asset_shocks["BOND"] == 0.0
    scaled = equity_shock(MIXED, -0.20, equities=["EQ1", "EQ2"], betas={"EQ1": 1.2, "EQ2": 0.8})
    assert scaled.loss == pytest.approx(0.20 * (0.5 * 1.2 + 0.3 * 0.8), abs=1e-15)
    assert scaled.contributions.sum() == pytest.approx(scaled.portfolio_return, abs=1e-15)
    assert equity_shock(MIXED).loss == pytest.approx(0.20, abs=1e-15)  # every asset an equity by default


def test_sector_shock_hits_only_the_sector() -> None:
    weights = pd.Series({"XOM": 0.25, "CVX": 0.15, "AAPL": 0.4, "KO": 0.2})
    result = sector_shock(weights, load_sectors(), "Energy", -0.30)
    assert result.loss == pytest.approx(0.30 * (0.25 + 0.15), abs=1e-15)
    assert result.asset_shocks["AAPL"] == 0.0


def test_factor_shock_is_loadings_times_factor_moves() -> None:
    loadings = pd.DataFrame({"market": [1.1, 0.9, 0.1], "rates": [-0.2, 0.3, 2.0]}, index=["EQ1", "EQ2", "BOND"])
    result = factor_shock(MIXED, loadings, {"market": -0.1, "rates": -0.02})
    by_hand = {"EQ1": 1.1 * -0.1 + -0.2 * -0.02, "EQ2": 0.9 * -0.1 + 0.3 * -0.02, "BOND": 0.1 * -0.1 + 2.0 * -0.02}
    for asset, value in by_hand.items():
        assert result.asset_shocks[asset] == pytest.approx(value, abs=1e-15)
    assert result.portfolio_return == pytest.approx(sum(MIXED[a] * v for a, v in by_hand.items()), abs=1e-15)
    # A factor left out is not shocked
    assert factor_shock(MIXED, loadings, {"market": -0.1}).asset_shocks["BOND"] == pytest.approx(-0.01)


def test_scenario_shock_applies_a_return_vector() -> None:
    result = scenario_shock(MIXED, {"EQ1": -0.1, "OTHER": -0.9})
    assert result.loss == pytest.approx(0.05, abs=1e-15)


def _cov() -> pd.DataFrame:
    return _returns()[["AAPL", "JPM", "XOM"]].loc["2015":].cov()


def test_volatility_x2_doubles_the_parametric_var() -> None:
    weights = pd.Series({"AAPL": 0.5, "JPM": 0.3, "XOM": 0.2})
    cov = _cov()
    mean = pd.Series({"AAPL": 1e-3, "JPM": 5e-4, "XOM": 2e-4})
    result = volatility_shock(weights, cov, mean=mean, level=0.99, horizon=10)
    sigma = math.sqrt(weights @ cov @ weights)
    z = stats.norm.ppf(0.99)
    drift = 10 * float(mean @ weights)
    assert result.base_var == pytest.approx(-drift + z * math.sqrt(10) * sigma, rel=1e-13)
    assert result.stressed_var == pytest.approx(-drift + z * math.sqrt(10 * 4 * sigma**2), rel=1e-13)
    assert result.stressed_volatility == pytest.approx(2 * sigma * math.sqrt(252), rel=1e-13)
    np.testing.assert_allclose(result.stressed_cov.to_numpy(), 4 * cov.to_numpy(), rtol=1e-15)


def test_correlations_to_one_make_volatility_the_weighted_sum_of_volatilities() -> None:
    weights = pd.Series({"AAPL": 0.5, "JPM": 0.3, "XOM": 0.2})
    cov = _cov()
    vols = np.sqrt(np.diag(cov.to_numpy()))
    result = correlation_shock(weights, cov, level=0.95)
    assert result.stressed_var == pytest.approx(stats.norm.ppf(0.95) * float(vols @ weights), rel=1e-13)
    assert result.stressed_cvar == pytest.approx(stats.norm.pdf(stats.norm.ppf(0.95)) / 0.05 * float(vols @ weights))
    np.testing.assert_allclose(np.diag(result.stressed_cov), np.diag(cov), rtol=1e-15)
    assert result.stressed_var > result.base_var
    assert json.loads(json.dumps(result.to_dict()))["name"] == "correlation_1"


# --- reverse stress ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("betas", [None, {"EQ1": 1.3, "EQ2": 0.7}])
def test_reverse_equity_shock_reaches_the_limit(betas: dict[str, float] | None) -> None:
    result = reverse_equity_shock(MIXED, 0.12, equities=["EQ1", "EQ2"], betas=betas)
    exposure = 0.5 + 0.3 if betas is None else 0.5 * 1.3 + 0.3 * 0.7
    assert result.shock == pytest.approx(-0.12 / exposure, rel=1e-14)
    replayed = equity_shock(MIXED, result.shock, equities=["EQ1", "EQ2"], betas=betas)
    assert abs(replayed.loss - 0.12) < 1e-9


def test_reverse_scenario_multiple_reaches_the_limit() -> None:
    replay = replay_scenario(WEIGHTS, _returns(), "covid")
    result = reverse_scenario_multiple(WEIGHTS, replay, 0.10)
    assert result.multiplier == pytest.approx(0.10 / replay.loss, rel=1e-14)
    assert result.asset_shocks is not None
    assert abs(scenario_shock(WEIGHTS, result.asset_shocks).loss - 0.10) < 1e-9


@pytest.mark.parametrize(("measure", "method", "horizon"), [("var", "normal", 10), ("cvar", "normal", 1)])
def test_reverse_volatility_stress_matches_the_closed_form(measure: str, method: str, horizon: int) -> None:
    returns = _returns()[["AAPL", "JPM", "XOM"]].loc["2015":]
    weights = pd.Series({"AAPL": 0.5, "JPM": 0.3, "XOM": 0.2})
    portfolio = returns @ weights
    limit = 0.15
    result = reverse_volatility_stress(weights, returns, limit, measure=measure, method=method, horizon=horizon)
    # Closed form: -h mu + sqrt(k) sqrt(h) sigma c = L with c = z (VaR) or phi(z) / (1 - alpha) (CVaR)
    z = stats.norm.ppf(0.95)
    c = z if measure == "var" else stats.norm.pdf(z) / 0.05
    k = ((limit + horizon * portfolio.mean()) / (math.sqrt(horizon) * portfolio.std() * c)) ** 2
    assert result.multiplier == pytest.approx(k, rel=1e-9)
    assert abs(result.value - limit) < 1e-9


@pytest.mark.parametrize("method", ["historical", "student_t", "cornish_fisher"])
def test_reverse_volatility_stress_hits_the_limit_for_every_method(method: str) -> None:
    returns = _returns()[["AAPL", "JPM", "XOM"]].loc["2015":]
    weights = pd.Series({"AAPL": 0.5, "JPM": 0.3, "XOM": 0.2})
    result = reverse_volatility_stress(weights, returns, 0.05, method=method, level=0.99)
    # Rescaling the returns about their means by sqrt(k) and measuring again gives the limit
    centre = returns.mean()
    scaled = centre + math.sqrt(result.multiplier) * (returns - centre)
    again = tail_risk(weights, scaled, level=0.99, method=method, dof=result.details.get("dof"))
    assert abs(again.var - 0.05) < 1e-9
    if method == "historical":  # the empirical quantile is affine-equivariant: k in closed form
        portfolio = returns @ weights
        q = tail_risk(weights, returns, level=0.99).var + portfolio.mean()
        assert result.multiplier == pytest.approx(((0.05 + portfolio.mean()) / q) ** 2, rel=1e-9)


# --- typed errors -----------------------------------------------------------------------------------------------------


def test_stress_inputs_raise_typed_errors() -> None:
    returns = _returns()
    with pytest.raises(RiskInputError, match="Unknown scenario 'lehman'"):
        replay_scenario(WEIGHTS, returns, "lehman")
    with pytest.raises(RiskInputError, match="after it ends"):
        replay_scenario(WEIGHTS, returns, HistoricalScenario("x", date(2020, 2, 1), date(2020, 1, 1)))
    with pytest.raises(RiskInputError, match="DatetimeIndex"):
        replay_scenario(WEIGHTS, returns.reset_index(drop=True), "covid")
    with pytest.raises(RiskInputError, match="TSLA"):
        replay_scenario(pd.Series({"AAPL": 0.5, "TSLA": 0.5}), returns, "covid")
    with pytest.raises(RiskInputError, match=r"sum to 0\.9"):
        equity_shock(pd.Series({"EQ1": 0.9}))
    with pytest.raises(RiskInputError, match="NaN"):
        scenario_shock(pd.Series({"EQ1": float("nan")}), {"EQ1": -0.1})
    with pytest.raises(RiskInputError, match="betas lack"):
        equity_shock(MIXED, betas={"EQ1": 1.0})
    with pytest.raises(RiskInputError, match="Unknown sector 'Utilities'"):
        sector_shock(pd.Series({"XOM": 1.0}), load_sectors(), "Utilities", -0.1)
    with pytest.raises(RiskInputError, match="sectors lack"):
        sector_shock(MIXED, load_sectors(), "Energy", -0.1)
    loadings = pd.DataFrame({"market": [1.0, 1.0]}, index=["EQ1", "EQ2"])
    with pytest.raises(RiskInputError, match="loadings lack"):
        factor_shock(MIXED, loadings, {"market": -0.1})
    with pytest.raises(RiskInputError, match="'value'"):
        factor_shock(MIXED, loadings.reindex(MIXED.index).fillna(0.0), {"value": -0.1})
    weights3 = pd.Series({"AAPL": 0.5, "JPM": 0.3, "XOM": 0.2})
    with pytest.raises(RiskInputError, match="correlation must lie"):
        correlation_shock(weights3, _cov(), correlation=-0.9)
    with pytest.raises(RiskInputError, match="factor must be > 0"):
        volatility_shock(weights3, _cov(), factor=-2.0)
    with pytest.raises(RiskInputError, match="limit"):
        reverse_equity_shock(MIXED, 0.0)
    with pytest.raises(RiskError, match="does not lose"):
        reverse_stress_linear(MIXED, {"EQ1": 0.1}, 0.1)  # a rise is no loss for a long portfolio
    with pytest.raises(RiskInputError, match="horizon"):
        reverse_volatility_stress(weights3, returns[weights3.index].dropna(), 0.1, horizon=0)
    with pytest.raises(RiskInputError, match="'tail'"):
        reverse_volatility_stress(weights3, returns[weights3.index].dropna(), 0.1, measure="tail")
    steady_loss = pd.DataFrame({"A": [-0.01] * 5 + [-0.0101] * 5}, index=pd.bdate_range("2020-01-01", periods=10))
    with pytest.raises(RiskError, match="no volatility"):
        reverse_volatility_stress(pd.Series({"A": 1.0}), steady_loss, 0.005)


def test_cash_earns_nothing_in_a_replay() -> None:
    # Given half the weights and budget 0.5: the other half sits in cash
    full = replay_scenario(WEIGHTS, _returns(), "q4_2018")
    half = replay_scenario(WEIGHTS / 2, _returns(), "q4_2018", budget=0.5)
    # Then the buy-and-hold return is exactly half
    assert half.cumulative_return == pytest.approx(full.cumulative_return / 2, abs=1e-15)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: replay_scenario(WEIGHTS, _returns(), ("x", "2020-13-45", "2021-01-01")), "scenario must be"),
        (lambda: replay_scenario(WEIGHTS, _returns(), 42), "scenario must be"),
        (lambda: replay_scenario(WEIGHTS, _returns(), "covid", proxy=[0.0]), "proxy must be"),
        (lambda: replay_scenario(WEIGHTS, _returns().astype(object).assign(AAPL="x"), "covid"), "non-numeric"),
        (lambda: scenario_shock(MIXED, {"EQ1": "down"}), "asset_returns"),
        (lambda: scenario_shock(MIXED, {"EQ1": float("inf")}), "infinite"),
        (lambda: equity_shock(MIXED, float("nan")), "finite return"),
        (lambda: factor_shock(MIXED, np.eye(3), {"m": 0.1}), "DataFrame"),
        (lambda: factor_shock(MIXED, pd.DataFrame({"m": [1.0, np.nan, 1.0]}, index=MIXED.index), {"m": 0.1}), "NaN"),
        (lambda: volatility_shock(MIXED, pd.DataFrame(np.eye(3))), "weights name assets"),
        (lambda: volatility_shock(MIXED, np.eye(3)), "square DataFrame"),
        (lambda: reverse_stress_linear(MIXED, {"EQ1": float("inf")}, 0.1), "infinite"),
        (lambda: reverse_volatility_stress(MIXED, _returns(), 0.1, method="garch"), "garch"),
    ],
)
def test_other_stress_errors_are_typed(call: object, match: str) -> None:
    with pytest.raises(RiskInputError, match=match):
        call()  # type: ignore[operator]
