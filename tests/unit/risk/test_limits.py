"""Risk limits: names, severity bands, every limit kind breached on measured data, and the alert model."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.optimization.spec import PortfolioSpec
from portfolio_engine.risk.alerts import Alert, alerts_from_breaches
from portfolio_engine.risk.hedging import HedgeRiskModel
from portfolio_engine.risk.limits import (
    FIXED_LIMITS,
    Breach,
    evaluate_limits,
    parse_limit,
    parse_limits,
    valid_limit_names,
)
from portfolio_engine.risk.monitor import RiskMonitor

ASSETS = ["a", "b", "c", "d"]
SECTORS = {"a": "tech", "b": "tech", "c": "energy", "d": "health"}


def _market(seed: int = 7, n: int = 1000) -> tuple[pd.DataFrame, pd.Series]:
    """One-factor daily returns of four assets and their index (seeded)."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0.0003, 0.011, n)
    returns = np.outer(factor, [1.3, 1.0, 0.7, 0.4]) + rng.normal(0.0, 0.007, (n, 4))
    dates = pd.bdate_range("2020-01-01", periods=n)
    index = pd.Series(factor + rng.normal(0.0, 0.002, n), index=dates, name="index")
    return pd.DataFrame(returns, index=dates, columns=ASSETS), index


# ------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("name", "kind", "level", "horizon"),
    [
        ("max_var_95_1d", "var", 0.95, 1),
        ("max_var_99_10d", "var", 0.99, 10),
        ("max_cvar_97.5_5d", "cvar", 0.975, 5),
        ("max_cvar_99_10d", "cvar", 0.99, 10),
    ],
)
def test_tail_limits_are_parsed_from_their_names(name: str, kind: str, level: float, horizon: int) -> None:
    spec = parse_limit(name, 0.05)
    assert (spec.kind, spec.level, spec.horizon, spec.threshold) == (kind, level, horizon, 0.05)
    assert spec.tail == (level, horizon)


def test_every_fixed_limit_parses_to_its_kind() -> None:
    specs = parse_limits(dict.fromkeys(FIXED_LIMITS, 0.3))
    assert {n: s.kind for n, s in specs.items()} == dict(FIXED_LIMITS)
    with pytest.raises(SpecificationError, match="not a VaR/CVaR limit"):
        _ = specs["max_weight"].tail


def test_an_unknown_limit_lists_the_valid_names() -> None:
    with pytest.raises(SpecificationError, match="max_leverage") as info:
        parse_limit("max_leverage", 2.0)
    for name in valid_limit_names():
        assert name in info.value.hint
    assert "max_var_<L>_<h>d" in info.value.hint and "max_sector_weight" in info.value.hint


@pytest.mark.parametrize(
    ("name", "threshold", "match"),
    [
        ("max_var_100_1d", 0.1, "outside"),
        ("max_var_40_1d", 0.1, "outside"),
        ("max_cvar_99_0d", 0.1, "horizon 0"),
        ("max_volatility", 0.0, "> 0"),
        ("max_volatility", -0.2, "-0.2"),
        ("max_volatility", math.nan, "nan"),
        ("max_weight", "lots", "lots"),
        ("max_var_95_1day", 0.1, "Unknown"),
    ],
)
def test_invalid_limits_are_specification_errors(name: str, threshold: object, match: str) -> None:
    with pytest.raises(SpecificationError, match=match):
        parse_limit(name, threshold)  # type: ignore[arg-type]


def test_a_portfolio_specification_limits_parse() -> None:
    spec = PortfolioSpec(limits={"max_drawdown": 0.2, "max_cvar_99_10d": 0.12})
    assert set(parse_limits(spec.limits)) == {"max_drawdown", "max_cvar_99_10d"}


# ------------------------------------------------------------------------------------- severity
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0899, None),  # just below the 10% warning band of 0.10
        (0.0900001, "warning"),  # just inside the band [(1 - 0.1) L, L]
        (0.10, "warning"),  # at the limit: still within it
        (0.1000001, "breach"),
        (0.15, "breach"),  # 1.5 L is still a breach
        (0.1500001, "critical"),
    ],
)
def test_severity_bands_around_a_limit(value: float, expected: str | None) -> None:
    breaches = evaluate_limits({"max_volatility": 0.10}, {"max_volatility": value})
    assert [b.severity for b in breaches] == ([expected] if expected else [])


def test_the_bands_are_configurable() -> None:
    measured = {"max_weight": 0.16}
    assert evaluate_limits({"max_weight": 0.2}, measured) == []
    wide = evaluate_limits({"max_weight": 0.2}, measured, warning_fraction=0.25)
    assert [b.severity for b in wide] == ["warning"]
    strict = evaluate_limits({"max_weight": 0.1}, measured, critical_multiple=1.2)
    assert [b.severity for b in strict] == ["critical"]
    with pytest.raises(SpecificationError, match="warning_fraction"):
        evaluate_limits({"max_weight": 0.1}, measured, warning_fraction=1.0)
    with pytest.raises(SpecificationError, match="critical_multiple"):
        evaluate_limits({"max_weight": 0.1}, measured, critical_multiple=1.0)


def test_breaches_come_most_severe_first_and_name_the_limit_value_and_threshold() -> None:
    limits = {"max_weight": 0.2, "max_volatility": 0.1, "max_gross_leverage": 1.5}
    measured = {"max_weight": 0.25, "max_volatility": 0.2, "max_gross_leverage": 1.45, "extra": 9.0}
    breaches = evaluate_limits(limits, measured)
    assert [(b.limit, b.severity) for b in breaches] == [
        ("max_volatility", "critical"),
        ("max_weight", "breach"),
        ("max_gross_leverage", "warning"),
    ]
    first = breaches[0].to_dict()
    assert first["ratio"] == pytest.approx(2.0) and first["threshold"] == 0.1 and first["value"] == 0.2
    assert "max_volatility" in first["message"] and "0.2" in first["message"] and "0.1" in first["message"]
    assert "<=" in breaches[2].message and breaches[2].within_limit


def test_missing_or_invalid_measured_values_are_typed_errors() -> None:
    with pytest.raises(RiskInputError, match="max_beta"):
        evaluate_limits({"max_beta": 1.0, "max_weight": 0.3}, {"max_weight": 0.1})
    with pytest.raises(RiskInputError, match="nan"):
        evaluate_limits({"max_weight": 0.3}, {"max_weight": math.nan})
    with pytest.raises(RiskInputError, match=r"-0\.1"):
        evaluate_limits({"max_weight": 0.3}, {"max_weight": -0.1})


# ------------------------------------------------------------ every limit kind, measured and breached
def test_every_limit_kind_is_measured_against_an_independent_computation_and_breached() -> None:
    # Given four assets, their index, a sector map, and a 30/30/25/15 portfolio
    returns, index = _market()
    w = np.array([0.3, 0.3, 0.25, 0.15])
    weights = pd.Series(w, index=ASSETS)
    normal = HedgeRiskModel.from_returns(returns, index, sector_map=SECTORS, tail_method="normal", with_mean=True)
    historical = HedgeRiskModel.from_returns(returns, index, sector_map=SECTORS, tail_method="historical")
    rp = returns.to_numpy() @ w

    # When each limit is measured by the model, and independently here
    mean, std = rp.mean(), rp.std(ddof=1)
    loss_10d = stats.norm(loc=-10 * mean, scale=std * math.sqrt(10))
    var_normal = loss_10d.ppf(0.99)
    cvar_normal = loss_10d.expect(lambda x: x, lb=var_normal) / 0.01
    # Historical 1-day at 95% on 1000 days: VaR is the 51st largest loss, CVaR the mean of the 50 largest.
    losses = np.sort(-rp)[::-1]
    peak, worst, value = 1.0, 0.0, 1.0
    for r in rp:
        value *= 1 + r
        peak = max(peak, value)
        worst = max(worst, 1 - value / peak)
    expected = {
        "max_var_99_10d": var_normal,
        "max_cvar_99_10d": cvar_normal,
        "max_volatility": std * math.sqrt(252),
        "max_weight": 0.3,
        "max_sector_weight": 0.6,
        "max_gross_leverage": 1.0,
        "max_tracking_error": np.std(rp - index.to_numpy(), ddof=1) * math.sqrt(252),
        "max_beta": np.cov(rp, index.to_numpy())[0, 1] / index.var(),
        "max_drawdown": worst,
    }
    measured = {n: normal.measure(parse_limit(n, 1.0), normal.aligned(weights)) for n in expected}
    for name, value in expected.items():
        assert measured[name] == pytest.approx(value, rel=1e-9), name
    historical_measured = {
        "max_var_95_1d": historical.measure(parse_limit("max_var_95_1d", 1.0), w),
        "max_cvar_95_1d": historical.measure(parse_limit("max_cvar_95_1d", 1.0), w),
    }
    assert historical_measured == pytest.approx({"max_var_95_1d": losses[50], "max_cvar_95_1d": losses[:50].mean()})

    # And the current drawdown comes from the monitor, fed the same days
    monitor = RiskMonitor(weights, {"max_current_drawdown": 0.5}, rebalance="fixed")
    last = monitor.run(returns)[-1]
    measured["max_current_drawdown"] = last.drawdown
    all_measured = {**measured, **historical_measured}

    # Then limits set at 80% of each value are all breached, and at 60% all critical
    breached = evaluate_limits({n: 0.8 * v for n, v in all_measured.items()}, all_measured)
    assert {b.limit for b in breached} == set(all_measured) and {b.severity for b in breached} == {"breach"}
    kinds = {parse_limit(b.limit, 1.0).kind for b in breached}
    assert kinds == {*FIXED_LIMITS.values(), "var", "cvar"}
    critical = evaluate_limits({n: 0.6 * v for n, v in all_measured.items()}, all_measured)
    assert {b.severity for b in critical} == {"critical"}


# ------------------------------------------------------------------------------------------ alerts
def test_an_alert_from_a_breach_carries_its_figures_and_keys() -> None:
    breach = Breach("max_var_95_1d", 0.031, 0.025, "breach")
    as_of = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)
    alert = Alert.from_breach("core-equity", breach, run_id="run-1", as_of=as_of)
    assert (alert.portfolio, alert.limit, alert.value, alert.threshold, alert.severity) == (
        "core-equity",
        "max_var_95_1d",
        0.031,
        0.025,
        "breach",
    )
    assert alert.dedup_key == "core-equity/max_var_95_1d/breach" and alert.stream_key == "core-equity/max_var_95_1d"
    assert "core-equity" in alert.message and "0.031" in alert.message and "0.025" in alert.message
    document = json.loads(json.dumps(alert.to_dict()))
    assert document["as_of"] == "2024-03-01T15:30:00+00:00" and document["dedup_key"] == alert.dedup_key
    assert alert.rank == 2 and alert.title == "BREACH core-equity: max_var_95_1d"


def test_alerts_from_breaches_drop_warnings_unless_asked() -> None:
    breaches = [Breach("max_weight", 0.35, 0.2, "critical"), Breach("max_beta", 0.95, 1.0, "warning")]
    assert [a.limit for a in alerts_from_breaches("p", breaches)] == ["max_weight"]
    assert [a.limit for a in alerts_from_breaches("p", breaches, min_severity="warning")] == ["max_weight", "max_beta"]
    with pytest.raises(RiskInputError, match="urgent"):
        alerts_from_breaches("p", breaches, min_severity="urgent")  # type: ignore[arg-type]


def test_an_alert_needs_a_known_severity_and_names() -> None:
    with pytest.raises(RiskInputError, match="severe"):
        Alert("p", "max_weight", 0.3, 0.2, "severe", "m")  # type: ignore[arg-type]
    with pytest.raises(RiskInputError, match="portfolio=''"):
        Alert("", "max_weight", 0.3, 0.2, "breach", "m")
