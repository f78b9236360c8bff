"""Optimize on real curated prices: spec resolution, regime-aware moments and policies, holdings, rebalancing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import (
    DEFAULT_UNIVERSE,
    FACTOR_ETFS,
    BundledSource,
    load_ff3_monthly,
    load_sectors,
)
from portfolio_engine.contracts import DetectRegimeOutput, OptimizeInput
from portfolio_engine.exceptions import EmptyDataError, InfeasibleError, SpecificationError
from portfolio_engine.optimization import blend_moments, fama_french_model, regime_conditional_moments
from portfolio_engine.pipeline.optimize import bundled_spec, optimize_portfolio, price_returns, regime_posterior
from portfolio_engine.pipeline.portfolios import Book
from portfolio_engine.records.views import Holdings

STOCKS = ["JNJ", "KO", "PG", "XOM", "MSFT"]
SYMBOLS = [*STOCKS, "^GSPC"]


def _spec(**overrides: object) -> dict:
    base = {
        "name": "test",
        "method": "max_sharpe",
        "risk_free_rate": 0.02,
        "constraints": {"weight_bounds": [0.0, 0.4]},
        "regime_policies": {"turbulent": {"method": "min_variance"}},
    }
    return {**base, **overrides}


def _task(world: dict, run_id: str, spec: dict | None, regime: DetectRegimeOutput | None = None) -> OptimizeInput:
    return OptimizeInput(
        run_id=run_id,
        source="bundled",
        symbols=SYMBOLS,
        index_symbol="^GSPC",
        spec=spec,
        feature_key=world["feature_key"],
        regime=regime if regime is not None else world["regime"],
    )


@pytest.fixture
def lake(world: dict) -> ParquetLake:
    """The module's lake (holdings come from the store's book, given to each call)."""
    return world["lake"]


FLAT = Book("test")  # a portfolio the store holds nothing of yet


def _held(weights: dict[str, float], as_of: str = "2022-12-28", regime: str | None = None) -> Book:
    """The book of a portfolio holding ``weights`` (set at stream version 3)."""
    return Book("test", holdings=Holdings(weights=weights, as_of=as_of, regime=regime, version=3))


def test_regime_aware_moments_blend_the_states_by_the_next_period_probabilities(world: dict, lake: ParquetLake) -> None:
    out = optimize_portfolio(_task(world, "o1", _spec()), lake=lake, registry=world["registry"], book=FLAT)
    regime = world["regime"]
    assert out.regime_aware and out.regime == regime.regime
    assert out.method == ("min_variance" if regime.regime == "turbulent" else "max_sharpe")
    # The stored moments are exactly the posterior-weighted per-state moments blended by the forecast.
    stored = lake.get_json(out.result_key)
    posterior = regime_posterior(world["registry"], regime, lake, world["feature_key"])
    returns = price_returns(lake, "bundled", STOCKS, "1d")
    common = returns.index.intersection(posterior.index)
    per_state = regime_conditional_moments(returns.loc[common], posterior.loc[common])
    expected = blend_moments(per_state, pd.Series(regime.next_probabilities))
    assert stored["moments"]["assets"] == STOCKS and stored["spec_in_force"]["method"] == out.method
    assert np.allclose(stored["moments"]["mu"], expected.mu.loc[STOCKS], rtol=1e-12)
    assert np.allclose(np.array(stored["moments"]["cov"]), expected.cov.loc[STOCKS, STOCKS], rtol=1e-12)
    weights = pd.Series(out.target_weights)
    assert weights.sum() == pytest.approx(1.0) and weights.between(-1e-9, 0.4 + 1e-9).all()
    assert sum(out.risk_contributions.values()) == pytest.approx(1.0)


def test_the_policy_of_the_state_in_force_changes_the_method(world: dict, lake: ParquetLake) -> None:
    calm = world["regime"].model_copy(update={"regime": "calm"})
    turbulent = world["regime"].model_copy(update={"regime": "turbulent"})
    spec = _spec()
    assert optimize_portfolio(
        _task(world, "c1", spec, calm), lake=lake, registry=world["registry"], book=FLAT
    ).method == ("max_sharpe")
    out = optimize_portfolio(_task(world, "t1", spec, turbulent), lake=lake, registry=world["registry"], book=FLAT)
    assert out.method == "min_variance" and out.regime == "turbulent"


def test_without_a_regime_the_spec_estimators_run_on_the_lookback(world: dict, lake: ParquetLake) -> None:
    unavailable = DetectRegimeOutput(
        run_id="x", portfolio="default", available=False, model_name="market", symbol="^GSPC"
    )
    spec = _spec(method="min_variance", lookback_days=252, estimators={"mean": "historical", "covariance": "sample"})
    out = optimize_portfolio(_task(world, "n1", spec, unavailable), lake=lake, registry=world["registry"], book=FLAT)
    assert not out.regime_aware and out.regime is None
    returns = price_returns(lake, "bundled", STOCKS, "1d").iloc[-252:]
    cov = returns.cov().to_numpy() * 252
    stored = np.array(lake.get_json(out.result_key)["moments"]["cov"])
    assert np.allclose(stored, cov, rtol=1e-10)
    # regime_aware: false ignores an available regime too
    out = optimize_portfolio(
        _task(world, "n2", {**spec, "regime_aware": False}), lake=lake, registry=world["registry"], book=FLAT
    )
    assert not out.regime_aware and np.allclose(np.array(lake.get_json(out.result_key)["moments"]["cov"]), cov)


def test_holdings_persist_and_the_rule_decides_whether_to_trade(world: dict, lake: ParquetLake) -> None:
    spec = _spec(method="min_variance", regime_policies={})
    first = optimize_portfolio(_task(world, "h1", spec), lake=lake, registry=world["registry"], book=FLAT)
    assert first.decision.rebalance and first.decision.reason == "initial" and first.holdings == first.target_weights
    # Same data, same target: no drift, nothing to gain, no trade.
    book = _held(first.holdings, as_of=str(first.as_of))  # what the run's commit stored
    second = optimize_portfolio(_task(world, "h2", spec), lake=lake, registry=world["registry"], book=book)
    assert not second.decision.rebalance and second.decision.drift == pytest.approx(0.0, abs=1e-9)
    # Holdings far from the target (all in one stock) with a 0-bp cost: the drift triggers a trade.
    book = _held({"XOM": 1.0}, as_of="2022-12-28")
    free = {**spec, "method_params": {"rebalance": {"drift_threshold": 0.05, "cost_bps": 0.0}}}
    third = optimize_portfolio(_task(world, "h3", free), lake=lake, registry=world["registry"], book=book)
    assert third.decision.rebalance and third.decision.reason == "drift" and third.holdings == third.target_weights
    # The same far holdings with a prohibitive cost: the rule keeps them.
    book = _held({"XOM": 1.0}, as_of="2022-12-28")
    dear = {**spec, "method_params": {"rebalance": {"drift_threshold": 0.05, "cost_bps": 1e6}}}
    fourth = optimize_portfolio(_task(world, "h4", dear), lake=lake, registry=world["registry"], book=book)
    assert not fourth.decision.rebalance and fourth.decision.reason == "cost_exceeds_benefit"
    assert fourth.holdings["XOM"] == pytest.approx(1.0)


def test_old_holdings_drift_with_the_returns_since_their_date(world: dict, lake: ParquetLake) -> None:
    book = _held({"XOM": 0.5, "KO": 0.5}, as_of="2022-11-30")
    spec = _spec(method="min_variance", regime_policies={}, method_params={"rebalance": {"drift_threshold": 10.0}})
    out = optimize_portfolio(_task(world, "d1", spec), lake=lake, registry=world["registry"], book=book)
    returns = price_returns(lake, "bundled", ["XOM", "KO"], "1d").loc["2022-12-01":]
    grown = 0.5 * (1 + returns).prod()
    assert out.holdings["XOM"] == pytest.approx(grown["XOM"] / grown.sum(), rel=1e-9)


def test_the_bundled_default_spec_is_regime_aware_with_a_defensive_turbulent_policy() -> None:
    spec = bundled_spec("default")
    assert spec is not None and spec.regime_aware and spec.for_regime("turbulent").method == "min_variance"
    assert bundled_spec("no-such-portfolio") is None


def test_bad_inputs_are_typed_errors(world: dict, lake: ParquetLake) -> None:
    registry = world["registry"]
    with pytest.raises(SpecificationError, match="No specification for portfolio 'ghost'"):
        optimize_portfolio(_task(world, "e1", None).model_copy(update={"portfolio": "ghost"}), lake=lake,
                           registry=registry, book=FLAT)  # fmt: skip
    with pytest.raises(SpecificationError, match="AMZN"):
        optimize_portfolio(_task(world, "e2", _spec(universe=["AMZN", "KO"])), lake=lake, registry=registry, book=FLAT)
    with pytest.raises(SpecificationError, match=r"budget 1\.0 lies outside what the weight bounds allow"):
        spec = _spec(method="min_variance", regime_policies={}, constraints={"weight_bounds": [0.0, 0.1]})
        optimize_portfolio(_task(world, "e3", spec), lake=lake, registry=registry, book=FLAT)
    staples = {"weight_bounds": [0.0, 0.4], "groups": {"staples": ["KO", "PG"]}, "group_bounds": {"staples": [0.9, 1]}}
    with pytest.raises(InfeasibleError) as info:
        spec = _spec(method="min_variance", regime_policies={}, constraints=staples)
        optimize_portfolio(_task(world, "e4", spec), lake=lake, registry=registry, book=FLAT)
    assert "group_bounds" in info.value.constraints
    with pytest.raises(EmptyDataError, match="no curated prices"):
        price_returns(ParquetLake(str(Path(lake.uri).parent / "empty")), "bundled", ["KO"], "1d")


def test_holdings_of_an_asset_that_left_the_universe_are_sold(world: dict, lake: ParquetLake) -> None:
    book = _held({"AMZN": 0.5, "KO": 0.5}, as_of="2022-12-28")
    spec = _spec(method="min_variance", regime_policies={})
    out = optimize_portfolio(_task(world, "u1", spec), lake=lake, registry=world["registry"], book=book)
    assert out.decision.rebalance and out.decision.reason == "universe_changed: sell ['AMZN']"
    assert "AMZN" not in out.holdings and out.holdings == out.target_weights


def test_the_bundled_default_narrows_to_a_small_run_and_records_every_change(world: dict, lake: ParquetLake) -> None:
    # GIVEN a run on five of the default's 20 stocks (one a sector but Staples; 5 x 15% < 100%)
    # WHEN the bundled default is optimized
    out = optimize_portfolio(_task(world, "f1", None), lake=lake, registry=world["registry"], book=FLAT)
    # THEN it holds those five, with only the weight cap widened (to 2/5 = 40%): 4 sectors x 35% still reach
    # the budget, so the sector caps and the max_sector_weight limit stay
    assert out.portfolio == "default" and sorted(out.target_weights) == sorted(STOCKS)
    assert max(out.target_weights.values()) <= 0.4 + 1e-9 and sum(out.target_weights.values()) == pytest.approx(1.0)
    cap = 0.1 if out.policy == "turbulent" else 0.15
    assert out.adaptations[0].startswith("universe narrowed to the run's 5 symbols of the spec's 20 (JNJ, KO")
    assert out.adaptations[1:] == [
        "groups with no asset in the universe dropped: Financials, Consumer Discretionary, Industrials",
        f"weight cap {cap:.3g} -> 0.4 (5 assets cannot be fully invested under {cap:.3g} each)",
        "limit max_weight 0.15 -> 0.4 (follows the widened cap)",
    ]
    # AND the run's stored result says the same, with the limits the risk stage will grade against
    stored = lake.get_json(out.result_key)
    assert stored["adaptations"] == out.adaptations
    assert stored["spec_in_force"]["limits"]["max_sector_weight"] == 0.35
    assert stored["spec_in_force"]["limits"]["max_weight"] == 0.4


@pytest.fixture(scope="module")
def full_lake(tmp_path_factory: pytest.TempPathFactory) -> ParquetLake:
    """The bundled 20 stocks, the index and the factor ETFs (ingested for attribution), 2016-2022."""
    lake = ParquetLake(str(tmp_path_factory.mktemp("full") / "lake"))
    symbols = [*DEFAULT_UNIVERSE, *FACTOR_ETFS, "^GSPC"]
    lake.write_bars(BundledSource().fetch(symbols, start=date(2016, 1, 1), end=date(2022, 12, 28)), "bundled",
                    zone="curated")  # fmt: skip
    return lake


def test_on_the_full_universe_the_default_keeps_its_caps_and_the_factor_etfs_stay_out(
    world: dict, full_lake: ParquetLake
) -> None:
    # GIVEN a run whose validated symbols are the 20 stocks, the index and the five factor ETFs
    task = OptimizeInput(
        run_id="full1", source="bundled", symbols=[*DEFAULT_UNIVERSE, *FACTOR_ETFS, "^GSPC"], index_symbol="^GSPC"
    )
    # WHEN the bundled default is optimized
    out = optimize_portfolio(task, lake=full_lake, registry=world["registry"], book=FLAT)
    # THEN it holds its own 20 stocks only, and nothing of its spec was changed
    assert sorted(out.target_weights) == sorted(DEFAULT_UNIVERSE) and out.adaptations == []
    default = bundled_spec("default")
    assert default is not None
    stored = full_lake.get_json(out.result_key)
    assert stored["spec_in_force"]["constraints"] == default.to_dict()["constraints"]
    assert stored["spec_in_force"]["limits"] == default.limits and default.limits["max_sector_weight"] == 0.35
    # AND every sector holds at most the 35% the risk stage grades it against
    sectors = pd.Series(load_sectors())
    by_sector = pd.Series(out.target_weights).groupby(sectors).sum()
    assert by_sector.max() <= 0.35 + 1e-8 and max(out.target_weights.values()) <= 0.15 + 1e-8


def test_a_user_spec_is_never_adapted(world: dict, lake: ParquetLake) -> None:
    # GIVEN the default's own spec, passed inline (a user's spec): it is used as written
    default = bundled_spec("default")
    assert default is not None
    # THEN symbols the run lacks fail, naming them
    with pytest.raises(SpecificationError, match=r"holds \['AAPL', 'AMD'"):
        optimize_portfolio(_task(world, "f2", default.to_dict()), lake=lake, registry=world["registry"], book=FLAT)
    # AND caps no portfolio of its universe can meet fail, naming the constraint
    mine = {**default.to_dict(), "universe": STOCKS}
    with pytest.raises(SpecificationError, match="weight bounds allow"):
        optimize_portfolio(_task(world, "f3", mine), lake=lake, registry=world["registry"], book=FLAT)


def test_the_output_says_which_regime_policy_applied(world: dict, lake: ParquetLake) -> None:
    calm = world["regime"].model_copy(update={"regime": "calm"})
    turbulent = world["regime"].model_copy(update={"regime": "turbulent"})
    registry = world["registry"]
    out = optimize_portfolio(_task(world, "p1", _spec(), turbulent), lake=lake, registry=registry, book=FLAT)
    assert (out.regime_role, out.policy, out.method) == ("turbulent", "turbulent", "min_variance")
    assert lake.get_json(out.result_key)["policy"] == {
        "state": "turbulent", "role": "turbulent", "key": "turbulent", "n_states": 2
    }  # fmt: skip
    out = optimize_portfolio(_task(world, "p2", _spec(), calm), lake=lake, registry=registry, book=FLAT)
    assert (out.regime_role, out.policy, out.method) == ("calm", None, "max_sharpe")
    assert out.adaptations == []  # a user's spec


def test_factor_exposure_bounds_bind_on_the_spec_factor_model(world: dict, lake: ParquetLake) -> None:
    registry = world["registry"]
    base = _spec(method="min_variance", regime_policies={}, method_params={"factor_model": {"kind": "fama_french"}})
    free = optimize_portfolio(_task(world, "ff1", base), lake=lake, registry=registry, book=FLAT)
    returns = price_returns(lake, "bundled", STOCKS, "1d")
    loadings = fama_french_model(returns, load_ff3_monthly()).loadings_
    beta = float(pd.Series(free.target_weights) @ loadings["Mkt-RF"])
    # Cap the market beta 0.03 below the unconstrained portfolio's: the bound binds exactly.
    bounded = {
        **base,
        "constraints": {"weight_bounds": [0.0, 0.4], "factor_exposure_bounds": {"Mkt-RF": [None, beta - 0.03]}},
    }
    out = optimize_portfolio(_task(world, "ff2", bounded), lake=lake, registry=registry, book=FLAT)
    assert float(pd.Series(out.target_weights) @ loadings["Mkt-RF"]) == pytest.approx(beta - 0.03, abs=1e-7)
    assert out.volatility > free.volatility
    for kind in ({"kind": "pca", "n_factors": 2}, {"kind": "macro"}):
        spec = {**base, "method_params": {"factor_model": kind}}
        assert (
            optimize_portfolio(
                _task(world, f"k-{kind['kind']}", spec), lake=lake, registry=registry, book=FLAT
            ).volatility
            > 0
        )


@pytest.mark.parametrize(
    ("method_params", "constraints", "match"),
    [
        ({}, {"factor_exposure_bounds": {"Mkt-RF": [0, 1]}}, "need a factor model"),
        ({"factor_model": {"kind": "astrology"}}, {}, "astrology"),
        ({"factor_model": {"kind": "pca", "factors": ["x"]}}, {}, "do not apply"),
        ({"factor_model": {"kind": "fama_french"}}, {"factor_exposure_bounds": {"UMD": [0, 1]}}, "UMD"),
    ],
)
def test_factor_model_mistakes_are_specification_errors(
    world: dict, lake: ParquetLake, method_params: dict, constraints: dict, match: str
) -> None:
    spec = _spec(method="min_variance", regime_policies={}, method_params=method_params, constraints=constraints)
    with pytest.raises(SpecificationError, match=match):
        optimize_portfolio(_task(world, "fe", spec), lake=lake, registry=world["registry"], book=FLAT)


def test_etf_factors_must_be_in_the_lake(world: dict, lake: ParquetLake) -> None:
    spec = _spec(
        method="min_variance", regime_policies={}, method_params={"factor_model": {"kind": "etf", "symbols": ["MTUM"]}}
    )
    with pytest.raises(EmptyDataError, match="MTUM") as info:
        optimize_portfolio(_task(world, "etf", spec), lake=lake, registry=world["registry"], book=FLAT)
    assert "--benchmarks" in info.value.hint


def test_a_regime_change_switches_to_the_new_policy_whatever_the_cost(world: dict, lake: ParquetLake) -> None:
    turbulent = world["regime"].model_copy(update={"regime": "turbulent"})
    book = _held({"XOM": 1.0}, as_of="2022-12-28", regime="calm")
    dear = _spec(method_params={"rebalance": {"drift_threshold": 0.05, "cost_bps": 1e6}})
    out = optimize_portfolio(_task(world, "rc1", dear, turbulent), lake=lake, registry=world["registry"], book=book)
    assert out.method == "min_variance" and out.decision.rebalance and out.decision.reason == "regime_change"
    assert out.decision.cost > 0 and out.holdings == out.target_weights


def test_optimize_proposes_and_says_which_holdings_it_decided_on(world: dict, lake: ParquetLake) -> None:
    # GIVEN a portfolio holding XOM, set at its stream's version 3
    spec = _spec(method="min_variance", regime_policies={})
    book = _held({"XOM": 1.0}, as_of="2022-12-28")
    # WHEN it is optimized
    out = optimize_portfolio(_task(world, "w1", spec), lake=lake, registry=world["registry"], book=book)
    # THEN the proposal is stored under the run's id, the holdings it started from and their version are named
    # (the commit checks that version is still the store's), and nothing but the proposal is written
    assert lake.exists(out.result_key) and out.result_key.endswith("/w1.json")
    assert out.holdings_before == {"weights": {"XOM": 1.0}, "as_of": "2022-12-28", "regime": None}
    assert out.holdings_version == 3 and out.spec_version is None  # an inline spec has no stored version
    assert not lake.exists("portfolios/test/holdings.json")
