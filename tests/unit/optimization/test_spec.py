"""PortfolioSpec: YAML/JSON round trips, validation messages, regime policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import Constraints, PortfolioSpec

YAML = """
name: core-equity
universe: [AAPL, MSFT, JNJ, XOM]
method: max_sharpe
risk_free_rate: 0.02
estimators: {mean: ewma, covariance: ledoit_wolf, options: {halflife: 63}}
lookback_days: 504
constraints:
  weight_bounds: [0.0, 0.4]
  groups: {tech: [AAPL, MSFT]}
  group_bounds: {tech: [null, 0.5]}
  transaction_cost_bps: 5
  ucits: true
regime_policies:
  turbulent: {method: min_variance, constraints: {weight_bounds: [0.0, 0.3]}}
limits: {max_drawdown: 0.2, var_95: 0.03}
"""


def test_yaml_reads_every_section() -> None:
    spec = PortfolioSpec.from_yaml(YAML)
    assert spec.method == "max_sharpe" and spec.universe == ["AAPL", "MSFT", "JNJ", "XOM"]
    assert spec.estimators.mean == "ewma" and spec.estimators.options == {"halflife": 63}
    assert spec.constraints.weight_bounds == (0.0, 0.4)
    assert spec.constraints.group_bounds == {"tech": (None, 0.5)}
    assert spec.constraints.ucits_limits == (0.05, 0.10, 0.40)
    assert spec.limits == {"max_drawdown": 0.2, "var_95": 0.03}
    assert spec.regime_aware and spec.lookback_days == 504


def test_round_trips_through_dict_yaml_and_json() -> None:
    spec = PortfolioSpec.from_yaml(YAML)
    assert PortfolioSpec.from_dict(spec.to_dict()) == spec
    assert PortfolioSpec.from_yaml(spec.to_yaml()) == spec
    assert PortfolioSpec.from_json(json.dumps(spec.to_dict())) == spec
    # And the JSON form is plain JSON (open bounds are null, tuples are lists)
    assert json.loads(json.dumps(spec.to_dict()))["constraints"]["group_bounds"] == {"tech": [None, 0.5]}


def test_python_construction_equals_yaml() -> None:
    spec = PortfolioSpec(
        name="x",
        method="target_return",
        target_return=0.08,
        constraints=Constraints(long_only=False, weight_bounds=(-0.2, 0.5)),
    )
    assert PortfolioSpec.from_yaml(spec.to_yaml()) == spec


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"methd": "min_variance"}, "Unknown field(s) ['methd']"),
        ({"constraints": {"max_weight": 0.1}}, "Unknown field(s) ['max_weight']"),
        ({"method": "max_return"}, "method: Input should be 'min_variance'"),
        ({"method": "target_return"}, "method='target_return' needs target_return; got None"),
        ({"method": "target_risk"}, "method='target_risk' needs target_volatility; got None"),
        ({"target_volatility": -0.1}, "target_volatility: Input should be greater than 0"),
        ({"cvar_alpha": 1.5}, "cvar_alpha: Input should be less than 1"),
        ({"cvar_alpha": 0.05}, "cvar_alpha: Input should be greater than or equal to 0.5"),
        ({"universe": ["A", "B", "A"]}, "universe is empty or repeats ['A']"),
        ({"limits": {"max_drawdown": "high"}}, "limits.max_drawdown: Input should be a valid number"),
        ({"limits": {"var": float("inf")}}, "limits must be finite numbers; got {'var': inf}"),
        ({"estimators": {"covariance": "magic"}}, "estimators.covariance='magic' is unknown"),
        ({"estimators": {"mean": "historical", "covariance": "sample", "options": {"span": 3}}}, "options ['span']"),
        ({"regime_policies": {"calm": {"universe": ["A"]}}}, "regime_policies['calm'] overrides ['universe']"),
        ({"regime_policies": {"calm": {"metod": "hrp"}}}, "regime_policies['calm']: Invalid PortfolioSpec"),
        ({"regime_policies": {"calm": {"constraints": {"weight_bounds": [0.5, 0.1]}}}}, "regime_policies['calm']"),
    ],
)
def test_invalid_specs_raise_specification_error_naming_the_problem(data: dict, needle: str) -> None:
    with pytest.raises(SpecificationError) as caught:
        PortfolioSpec.from_dict(data)
    assert needle in str(caught.value)


def test_the_core_reads_no_files(tmp_path: Path) -> None:
    # Given a spec file / When its path (not its text) is passed / Then the error says to read it first
    path = tmp_path / "spec.yaml"
    path.write_text(YAML, encoding="utf-8")
    for reader in (PortfolioSpec.from_yaml, PortfolioSpec.from_json):
        with pytest.raises(SpecificationError, match="must be given as text; got PosixPath") as caught:
            reader(path)  # type: ignore[arg-type]
        assert "read_text" in caught.value.hint
    assert PortfolioSpec.from_yaml(path.read_text(encoding="utf-8")) == PortfolioSpec.from_yaml(YAML)


def test_text_that_is_not_a_mapping_or_not_yaml() -> None:
    with pytest.raises(SpecificationError, match=r"must be a mapping; got str 'spec\.yaml'"):
        PortfolioSpec.from_yaml("spec.yaml")
    with pytest.raises(SpecificationError, match="not valid YAML"):
        PortfolioSpec.from_yaml("a: [1, 2")
    with pytest.raises(SpecificationError, match="not valid JSON"):
        PortfolioSpec.from_json("{'a': 1}")


def test_regime_policy_overrides_method_and_merges_constraints() -> None:
    spec = PortfolioSpec.from_yaml(YAML)
    turbulent = spec.for_regime("turbulent")
    assert turbulent.method == "min_variance"
    assert turbulent.constraints.weight_bounds == (0.0, 0.3)
    assert turbulent.constraints.group_bounds == spec.constraints.group_bounds  # merged, not replaced
    assert turbulent.regime_policies == {} and turbulent.name == spec.name
    assert spec.for_regime("calm") is spec and spec.for_regime(None) is spec
    assert PortfolioSpec.from_dict({**spec.to_dict(), "regime_aware": False}).for_regime("turbulent").method == (
        "max_sharpe"
    )
