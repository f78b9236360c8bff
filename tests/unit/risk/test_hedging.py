"""Hedge proposals: closed forms for the limit that binds, bisection cross-checks, the cheapest choice, failures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.risk.hedging import HedgeRiskModel, propose_hedge
from portfolio_engine.risk.limits import evaluate_limits, parse_limit

ASSETS = ["a", "b", "c", "d"]
W = pd.Series([0.4, 0.3, 0.2, 0.1], index=ASSETS)
W_MINVAR = pd.Series([0.1, 0.2, 0.3, 0.4], index=ASSETS)


def _market(seed: int = 11, n: int = 1000) -> tuple[pd.DataFrame, pd.Series]:
    """One-factor daily returns of four assets and their index (seeded)."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0.0002, 0.012, n)
    returns = np.outer(factor, [1.3, 1.0, 0.7, 0.4]) + rng.normal(0.0, 0.008, (n, 4))
    dates = pd.bdate_range("2019-01-01", periods=n)
    index = pd.Series(factor + rng.normal(0.0, 0.002, n), index=dates, name="index")
    return pd.DataFrame(returns, index=dates, columns=ASSETS), index


@pytest.fixture(scope="module")
def market() -> tuple[pd.DataFrame, pd.Series]:
    return _market()


def _daily_vol(returns: pd.DataFrame, w: pd.Series) -> float:
    return float(np.std(returns.to_numpy() @ w.to_numpy(), ddof=1))


def test_scaling_exposure_to_a_volatility_limit_is_closed_form(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a portfolio whose volatility is above its limit, and no index or min-variance target
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="normal")
    sigma = _daily_vol(returns, W) * math.sqrt(252)
    limit = 0.8 * sigma

    # When proposing a hedge
    plan = propose_hedge(W, model, {"max_volatility": limit})

    # Then exposure is scaled by s = L / sigma, the rest to cash, and the limit binds
    (scale,) = plan.proposals
    assert scale.kind == "scale_exposure" and scale.feasible and plan.chosen is scale
    assert scale.parameter == pytest.approx(0.8, rel=1e-12)
    assert scale.limits_after["max_volatility"] == pytest.approx(limit, rel=1e-12)
    assert scale.limits_after["max_volatility"] <= limit
    assert scale.cash == pytest.approx(0.2, rel=1e-12) and scale.turnover == pytest.approx(0.2, rel=1e-12)
    pd.testing.assert_series_equal(scale.weights, W * scale.parameter, check_names=False)
    assert plan.limits_before["max_volatility"] == pytest.approx(sigma, rel=1e-12)
    assert plan.risk_before["volatility"] == pytest.approx(sigma, rel=1e-12)
    assert plan.executed is False and [b.limit for b in plan.breaches] == ["max_volatility"]


def test_historical_var_scaling_closed_form_equals_bisection(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given historical 10-day VaR and 1-day CVaR limits that are both breached
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="historical")
    w = model.aligned(W)
    var10 = model.measure(parse_limit("max_var_99_10d", 1.0), w)
    cvar1 = model.measure(parse_limit("max_cvar_95_1d", 1.0), w)
    limits = {"max_var_99_10d": 0.7 * var10, "max_cvar_95_1d": 0.9 * cvar1}

    # When solving in closed form and by bisection
    closed = propose_hedge(W, model, limits).proposals[0]
    bisected = propose_hedge(W, model, limits, closed_form=False).proposals[0]

    # Then both keep s = min(L / m) = 0.7 (buy-and-hold horizon returns are linear in the weights)
    assert closed.note.startswith("closed form") and bisected.note == "bisection on s"
    assert closed.parameter == pytest.approx(0.7, rel=1e-12)
    assert bisected.parameter == pytest.approx(closed.parameter, abs=1e-9)
    assert closed.limits_after["max_var_99_10d"] == pytest.approx(limits["max_var_99_10d"], rel=1e-12)
    assert closed.limits_after["max_cvar_95_1d"] < limits["max_cvar_95_1d"]


def test_a_drawdown_limit_is_met_by_bisection_at_the_smallest_cut(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a replayed maximum drawdown above its limit (compounding: not homogeneous in the scale)
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="normal")
    before = model.measure(parse_limit("max_drawdown", 1.0), model.aligned(W))
    limit = 0.6 * before

    # When proposing
    scale = propose_hedge(W, model, {"max_drawdown": limit}).proposals[0]

    # Then the drawdown of s w (computed here by a loop) equals the limit, and a scale 1e-7 higher breaks it
    def drawdown(s: float) -> float:
        value, peak, worst = 1.0, 1.0, 0.0
        for r in returns.to_numpy() @ (s * W.to_numpy()):
            value *= 1.0 + r
            peak = max(peak, value)
            worst = max(worst, 1.0 - value / peak)
        return worst

    assert scale.feasible and scale.note == "bisection on s"
    assert drawdown(scale.parameter) == pytest.approx(limit, rel=1e-9)
    assert drawdown(scale.parameter) <= limit * (1 + 1e-12)
    assert drawdown(scale.parameter + 1e-7) > limit


def test_the_index_hedge_solves_the_volatility_quadratic(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given the index's moments and a volatility limit the beta hedge can reach
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="normal")
    rp = returns.to_numpy() @ W.to_numpy()
    cov = np.cov(rp, index.to_numpy())
    beta, var_p, var_m = cov[0, 1] / cov[1, 1], cov[0, 0], cov[1, 1]
    limit = 0.7 * math.sqrt(var_p * 252)

    # When proposing
    plan = propose_hedge(W, model, {"max_volatility": limit})
    hedge = next(p for p in plan.proposals if p.kind == "index_hedge")

    # Then h is the smaller root of var_p - 2 h beta var_m + h^2 var_m = L^2 / 252, and beta drops by h
    expected_h = beta - math.sqrt(beta**2 - (var_p - limit**2 / 252) / var_m)
    assert hedge.feasible and hedge.parameter == pytest.approx(expected_h, rel=1e-9)
    assert hedge.index_weight == -hedge.parameter and hedge.turnover == hedge.parameter
    assert hedge.risk_after["beta"] == pytest.approx(beta - expected_h, rel=1e-9)
    assert hedge.limits_after["max_volatility"] == pytest.approx(limit, rel=1e-9)
    pd.testing.assert_series_equal(hedge.weights, W, check_names=False)
    assert plan.risk_before["beta"] == pytest.approx(beta, rel=1e-9)


def test_an_index_hedge_cannot_remove_idiosyncratic_risk(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a volatility limit below the residual volatility left by the full beta hedge
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="normal")
    cov = np.cov(returns.to_numpy() @ W.to_numpy(), index.to_numpy())
    residual = math.sqrt((cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]) * 252)

    # When proposing
    plan = propose_hedge(W, model, {"max_volatility": 0.9 * residual})
    hedge = next(p for p in plan.proposals if p.kind == "index_hedge")

    # Then the index hedge reports the full hedge at h = beta as infeasible, and scaling is chosen
    assert not hedge.feasible and "infeasible" in hedge.note
    assert hedge.parameter == pytest.approx(cov[0, 1] / cov[1, 1], rel=1e-9)
    assert hedge.limits_after["max_volatility"] == pytest.approx(residual, rel=1e-9)
    assert plan.chosen is not None and plan.chosen.kind == "scale_exposure"


def test_moving_toward_min_variance_solves_the_blend_quadratic(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given min-variance weights with lower volatility, and a limit between the two
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="normal")
    sigma = returns.cov().to_numpy()
    w, m = W.to_numpy(), W_MINVAR.to_numpy()
    a, b, c = w @ sigma @ w, w @ sigma @ m, m @ sigma @ m
    limit_daily = math.sqrt(0.5 * (a + c))
    assert c < limit_daily**2 < a

    # When proposing
    plan = propose_hedge(W, model, {"max_volatility": limit_daily * math.sqrt(252)}, min_variance_weights=W_MINVAR)
    blend = next(p for p in plan.proposals if p.kind == "toward_min_variance")

    # Then t is the root in [0, 1] of (1-t)^2 a + 2 t (1-t) b + t^2 c = L^2
    qa, qb, qc = a - 2 * b + c, 2 * (b - a), a - limit_daily**2
    roots = np.roots([qa, qb, qc])
    expected_t = min(r.real for r in roots if abs(r.imag) < 1e-12 and 0 <= r.real <= 1)
    assert blend.feasible and blend.parameter == pytest.approx(expected_t, abs=1e-9)
    assert blend.turnover == pytest.approx(expected_t * np.abs(m - w).sum(), abs=1e-9)
    pd.testing.assert_series_equal(blend.weights, (1 - blend.parameter) * W + blend.parameter * W_MINVAR)


def test_the_cheapest_feasible_proposal_is_chosen_and_none_breaks_another_limit(
    market: tuple[pd.DataFrame, pd.Series],
) -> None:
    # Given volatility, VaR, concentration and tracking-error limits, with all three families available
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="historical")
    w = model.aligned(W)
    vol = model.measure(parse_limit("max_volatility", 1.0), w)
    te = model.measure(parse_limit("max_tracking_error", 1.0), w)
    limits = {"max_volatility": 0.85 * vol, "max_var_99_1d": 0.5, "max_weight": 0.45, "max_tracking_error": 1.2 * te}

    # When proposing
    plan = propose_hedge(W, model, limits, min_variance_weights=W_MINVAR)

    # Then every feasible proposal is within every limit, and the chosen one has the lowest turnover
    feasible = [p for p in plan.proposals if p.feasible]
    assert {p.kind for p in plan.proposals} == {"scale_exposure", "index_hedge", "toward_min_variance"}
    assert len(feasible) >= 2
    for proposal in feasible:
        assert all(b.within_limit for b in evaluate_limits(limits, proposal.limits_after)), proposal.kind
    assert plan.chosen is min(feasible, key=lambda p: p.turnover)
    assert plan.chosen.kind in plan.message
    json.dumps(plan.to_dict())  # JSON-ready


def test_a_leveraged_book_is_hedged_most_cheaply_with_the_index(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a 150/50 book: scaling it trades (1 - s) x 2.0 of gross exposure
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="normal")
    book = pd.Series([0.9, 0.6, -0.3, -0.2], index=ASSETS)
    vol = model.measure(parse_limit("max_volatility", 1.0), model.aligned(book))

    # When its volatility must come down 15%
    plan = propose_hedge(book, model, {"max_volatility": 0.85 * vol}, min_variance_weights=W_MINVAR)

    # Then scaling costs 0.15 x 2.0 = 0.30 and the cheaper index hedge is chosen
    scale = next(p for p in plan.proposals if p.kind == "scale_exposure")
    assert scale.turnover == pytest.approx(0.30, rel=1e-12)
    assert plan.chosen is not None and plan.chosen.kind == "index_hedge" and plan.chosen.turnover < 0.30


def test_an_index_hedge_that_would_breach_tracking_error_is_rejected(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a volatility limit the index hedge meets at h ~ 0.18, and a tracking-error limit 5% above today's
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="normal")
    w = model.aligned(W)
    vol = model.measure(parse_limit("max_volatility", 1.0), w)
    te = model.measure(parse_limit("max_tracking_error", 1.0), w)
    alone = propose_hedge(W, model, {"max_volatility": 0.85 * vol})
    hedge_alone = next(p for p in alone.proposals if p.kind == "index_hedge")
    assert hedge_alone.feasible and model.measure(parse_limit("max_tracking_error", 1.0), w, -hedge_alone.parameter) > (
        1.05 * te
    )

    # When both limits apply
    both = propose_hedge(W, model, {"max_volatility": 0.85 * vol, "max_tracking_error": 1.05 * te})

    # Then shorting the index (which raises tracking error with h) is no longer a solution
    hedge = next(p for p in both.proposals if p.kind == "index_hedge")
    assert not hedge.feasible
    assert both.chosen is not None and both.chosen.kind == "scale_exposure"


def test_when_no_proposal_works_the_plan_says_so(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given a tiny volatility AND tracking-error limit: cash lowers one and raises the other
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="normal")
    plan = propose_hedge(W, model, {"max_volatility": 0.01, "max_tracking_error": 0.01}, min_variance_weights=W_MINVAR)
    assert plan.chosen is None and len(plan.proposals) == 3
    assert not any(p.feasible for p in plan.proposals)
    assert plan.message.startswith("No proposal brings every limit within bounds")


def test_nothing_is_proposed_within_limits_and_unmeasurable_limits_are_named(
    market: tuple[pd.DataFrame, pd.Series],
) -> None:
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="normal")
    limits = {"max_volatility": 5.0, "max_current_drawdown": 0.1, "max_beta": 1.0, "max_sector_weight": 0.5}
    plan = propose_hedge(W, model, limits)
    assert plan.proposals == () and plan.chosen is None and "no hedge needed" in plan.message
    assert set(plan.unaddressed) == {"max_current_drawdown", "max_beta", "max_sector_weight"}
    assert "not a function of the weights" in plan.unaddressed["max_current_drawdown"]


def test_a_negative_beta_gets_no_index_hedge(market: tuple[pd.DataFrame, pd.Series]) -> None:
    returns, index = market
    model = HedgeRiskModel.from_returns(returns, -index, tail_method="normal")
    plan = propose_hedge(W, model, {"max_volatility": 0.05})
    hedge = next(p for p in plan.proposals if p.kind == "index_hedge")
    assert not hedge.feasible and "beta" in hedge.note and hedge.parameter == 0.0


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (pd.Series([0.5, np.nan, 0.3, 0.2], index=ASSETS), "NaN"),
        (pd.Series([0.5, 0.5], index=["a", "zzz"]), "zzz"),
        (pd.Series([0.5, 0.3, 0.3, 0.1], index=ASSETS), "1.2"),
    ],
)
def test_bad_weights_are_typed_errors(market: tuple[pd.DataFrame, pd.Series], weights: pd.Series, match: str) -> None:
    model = HedgeRiskModel.from_returns(market[0], tail_method="normal")
    with pytest.raises(RiskInputError, match=match):
        propose_hedge(weights, model, {"max_volatility": 0.1})


def test_bad_models_limits_and_targets_are_typed_errors(market: tuple[pd.DataFrame, pd.Series]) -> None:
    returns, _ = market
    model = HedgeRiskModel.from_returns(returns, tail_method="normal")
    with pytest.raises(SpecificationError, match="max_risk"):
        propose_hedge(W, model, {"max_risk": 0.1})
    with pytest.raises(RiskInputError, match="min_variance_weights"):
        propose_hedge(W, model, {"max_volatility": 0.01}, min_variance_weights=pd.Series({"a": 0.5, "q": 0.5}))
    with pytest.raises(RiskInputError, match="needs scenarios"):
        HedgeRiskModel(covariance=returns.cov(), tail_method="historical")
    with pytest.raises(RiskInputError, match="symmetric"):
        HedgeRiskModel(covariance=returns.cov() + np.triu(np.full((4, 4), 1e-3), 1))
    holed = returns.cov()
    holed.iloc[0, 0] = np.nan
    with pytest.raises(RiskInputError, match="NaN"):
        HedgeRiskModel(covariance=holed)


def test_an_index_hedge_without_index_scenarios_is_not_replayed(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given index moments but no index returns to replay, and a historical VaR limit
    returns, index = market
    full = HedgeRiskModel.from_returns(returns, index, tail_method="historical")
    model = HedgeRiskModel(
        covariance=full.covariance,
        index_covariance=full.index_covariance,
        index_variance=full.index_variance,
        scenarios=returns,
        tail_method="historical",
    )
    var = model.measure(parse_limit("max_var_95_1d", 1.0), model.aligned(W))

    # When proposing, the index hedge is reported as not computable instead of failing the plan
    plan = propose_hedge(W, model, {"max_var_95_1d": 0.9 * var})
    hedge = next(p for p in plan.proposals if p.kind == "index_hedge")
    assert not hedge.feasible and "index_scenarios" in hedge.note
    assert plan.chosen is not None and plan.chosen.kind == "scale_exposure"


def test_the_hedge_model_measures_what_risk_measures_reports(market: tuple[pd.DataFrame, pd.Series]) -> None:
    # Given the same returns, measured by the hedger's model and by portfolio_engine.risk.measures
    from portfolio_engine.risk import measures

    returns, index = market
    model = HedgeRiskModel.from_returns(returns, index, tail_method="historical")
    w = model.aligned(W)
    portfolio = measures.portfolio_returns(W, returns)

    def ours(name: str) -> float:
        return model.measure(parse_limit(name, 1.0), w)

    # Then historical VaR/CVaR (same scenarios and quantile convention), drawdown, volatility, TE and beta agree
    for level, horizon in ((0.99, 10), (0.95, 1)):
        tail = measures.tail_risk(W, returns, level=level, horizon=horizon, method="historical")
        assert ours(f"max_var_{round(level * 100)}_{horizon}d") == pytest.approx(tail.var, rel=1e-12)
        assert ours(f"max_cvar_{round(level * 100)}_{horizon}d") == pytest.approx(tail.cvar, rel=1e-12)
    assert ours("max_drawdown") == pytest.approx(measures.drawdown(portfolio).maximum, rel=1e-12)
    assert ours("max_volatility") == pytest.approx(measures.annualized_volatility(portfolio), rel=1e-12)
    assert ours("max_tracking_error") == pytest.approx(measures.tracking_error(portfolio, index), rel=1e-9)
    assert ours("max_beta") == pytest.approx(measures.beta(portfolio, index), rel=1e-9)
