"""PortfolioSpec: YAML/JSON round trips, validation messages, regime policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import Constraints, PortfolioSpec
from portfolio_engine.optimization.regime_roles import RegimePolicy, regime_roles
from portfolio_engine.optimization.spec_fitting import FittedSpec, fit_caps_to_universe, narrow_universe

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


# ---------------------------------------------------------------- regime policies by role
ROLES = {
    "calm": {"method": "max_sharpe"},
    "normal": {"method": "risk_parity"},
    "turbulent": {"method": "min_variance", "constraints": {"weight_bounds": [0.0, 0.3]}},
}
FOUR = ("state_0", "state_1", "state_2", "state_3")


@pytest.mark.parametrize(
    ("state_names", "expected"),
    [
        (("calm", "turbulent"), {"calm": "max_sharpe", "turbulent": "min_variance"}),
        (("calm", "normal", "turbulent"), {"calm": "max_sharpe", "normal": "risk_parity", "turbulent": "min_variance"}),
        (
            FOUR,
            {"state_0": "max_sharpe", "state_1": "risk_parity", "state_2": "risk_parity", "state_3": "min_variance"},
        ),
    ],
)
def test_policies_apply_by_volatility_rank_whatever_the_number_of_states(
    state_names: tuple[str, ...], expected: dict[str, str]
) -> None:
    # Given policies keyed by role, and models of 2, 3 and 4 states named calmest first (as the HMM names them)
    spec = PortfolioSpec.from_dict({"method": "hrp", "regime_policies": ROLES})
    # When the spec in force is asked for each state
    # Then the calmest state gets `calm`, the most turbulent `turbulent`, the states between `normal`
    for state, method in expected.items():
        in_force, policy = spec.in_force(state, state_names)
        assert in_force.method == method and policy.state == state and policy.n_states == len(state_names)
        assert policy.key == policy.role == regime_roles(state_names)[state]
    assert spec.for_regime("state_3", FOUR).constraints.weight_bounds == (0.0, 0.3)


def test_an_exact_state_key_wins_over_the_role_and_the_run_can_say_which_applied() -> None:
    spec = PortfolioSpec.from_dict({"regime_policies": {"turbulent": {"method": "hrp"}, "state_2": {"method": "hrp"}}})
    # state_2 of four is `normal` by rank, but has its own policy; state_1 has none (the spec's own settings)
    assert spec.regime_policy("state_2", FOUR) == RegimePolicy("state_2", "normal", "state_2", 4)
    assert spec.regime_policy("state_1", FOUR) == RegimePolicy("state_1", "normal", None, 4)
    assert spec.for_regime("state_1", FOUR) is spec
    assert spec.regime_policy("state_3", FOUR).describe() == (
        "regime state_3 (turbulent: highest variance of 4 states): policy 'turbulent'"
    )
    assert spec.regime_policy("state_1", FOUR).describe() == (
        "regime state_1 (normal: between the calmest and the most turbulent of 4 states): no policy, "
        "the spec's own settings"
    )
    assert spec.regime_policy(None) == RegimePolicy() and RegimePolicy().describe().startswith("no regime")
    # Without the model's states a role-named state still finds its policy; a bare state_<i> only its own key
    assert spec.regime_policy("turbulent").key == "turbulent" and spec.regime_policy("state_3").key is None
    # regime_aware: false applies none, but still says where the regime stood
    off = PortfolioSpec.from_dict({**spec.to_dict(), "regime_aware": False})
    assert off.in_force("state_3", FOUR) == (off, RegimePolicy("state_3", "turbulent", None, 4))
    with pytest.raises(SpecificationError, match=r"'calm' is not one of the model's states \['state_0'"):
        spec.regime_policy("calm", FOUR)


def test_a_single_state_has_no_role() -> None:
    assert regime_roles(["state_0"]) == {"state_0": None}
    spec = PortfolioSpec.from_dict({"regime_policies": {"turbulent": {"method": "hrp"}}})
    assert spec.regime_policy("state_0", ["state_0"]).key is None


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [("turbulant", "Did you mean 'turbulent'?"), ("Calm", "Did you mean 'calm'?"), ("bear", None), ("state_x", None)],
)
def test_a_misspelled_policy_key_is_refused_when_the_spec_is_read(key: str, suggestion: str | None) -> None:
    with pytest.raises(SpecificationError) as caught:
        PortfolioSpec.from_yaml(f"regime_policies:\n  {key}: {{method: min_variance}}\n")
    assert f"regime_policies key {key!r} names no regime" in caught.value.message
    assert "calm, normal, turbulent" in caught.value.hint and "state_0" in caught.value.hint
    assert (suggestion in caught.value.hint) if suggestion else "Did you mean" not in caught.value.hint


def test_policy_keys_are_checked_against_a_model_before_a_spec_is_saved() -> None:
    spec = PortfolioSpec.from_dict({"regime_policies": {"normal": {"method": "hrp"}, "state_3": {"method": "hrp"}}})
    spec.check_regime_policies(FOUR)  # normal: state_1 and state_2; state_3 exists
    with pytest.raises(SpecificationError) as caught:
        spec.check_regime_policies(["calm", "turbulent"])  # a 2-state model has no state between, no state_3
    assert "['normal', 'state_3'] match no state" in caught.value.message
    assert caught.value.hint == "For this model use one of ['calm', 'turbulent']."
    with pytest.raises(SpecificationError, match=r"\['state_3'\] match no state"):
        spec.check_regime_policies(["calm", "normal", "turbulent"])


# ---------------------------------------------------------------- the bundled default on a run's universe
DEFAULT = PortfolioSpec.from_yaml(
    Path("shared/portfolio_engine/resources/portfolios/default.yaml").read_text(encoding="utf-8")
)
SECTORS = json.loads(Path("shared/portfolio_engine/resources/bundled/sectors.json").read_text(encoding="utf-8"))


def test_the_default_universe_is_its_own_list_of_the_bundled_stocks() -> None:
    assert DEFAULT.universe == sorted(SECTORS)
    assert {a for members in DEFAULT.constraints.groups.values() for a in members} == set(SECTORS)


def test_on_the_full_universe_no_cap_is_widened() -> None:
    # Given the bundled 20 stocks, where 20 x 15% and seven sectors at 35% reach a fully invested portfolio
    for state in (None, "calm", "turbulent"):
        in_force = DEFAULT.for_regime(state)
        # When the caps are fitted / Then nothing changes: Health Care keeps 35%, and so does max_sector_weight
        fitted = fit_caps_to_universe(in_force, sorted(SECTORS))
        assert fitted == FittedSpec(in_force) and fitted.spec.limits["max_sector_weight"] == 0.35
        assert fitted.spec.constraints.group_bounds["Health Care"] == (None, 0.35)
    assert narrow_universe(DEFAULT, [*sorted(SECTORS), "MTUM", "QUAL"]) == FittedSpec(DEFAULT)


def test_on_three_stocks_only_the_weight_cap_widens_and_every_change_is_recorded() -> None:
    # Given a run on AAPL, JPM, XOM: 3 x 15% < 100%, but three sectors at 35% still reach 105%
    narrowed = narrow_universe(DEFAULT, ["AAPL", "JPM", "XOM", "MTUM"])
    assert narrowed.spec.universe == ["AAPL", "JPM", "XOM"]
    assert narrowed.adaptations == (
        "universe narrowed to the run's 3 symbols of the spec's 20 (AAPL, JPM, XOM); the run lacks AMD, BAC, BBY, "
        "CVX, GE, HD, JNJ, KO, ...; the run's MTUM not in the spec's universe, left out",
    )
    fitted = fit_caps_to_universe(narrowed.spec, ["AAPL", "JPM", "XOM"])
    assert fitted.adaptations == (
        "groups with no asset in the universe dropped: Consumer Discretionary, Industrials, Health Care, "
        "Consumer Staples",
        "weight cap 0.15 -> 0.667 (3 assets cannot be fully invested under 0.15 each)",
        "limit max_weight 0.15 -> 0.667 (follows the widened cap)",
        "regime_policies['turbulent']: weight cap 0.1 -> 0.667 (3 assets cannot be fully invested under 0.1 each)",
    )
    spec = fitted.spec
    assert spec.constraints.weight_bounds == (0.0, pytest.approx(2 / 3)) and spec.limits["max_weight"] == 2 / 3
    assert spec.constraints.group_bounds == {
        g: (None, 0.35) for g in ("Information Technology", "Financials", "Energy")
    }
    assert spec.limits["max_sector_weight"] == 0.35  # no sector cap was widened, so the limit stays
    assert spec.for_regime("turbulent").constraints.weight_bounds == (0.0, pytest.approx(2 / 3))


def test_on_one_sector_the_sector_cap_widens_and_its_limit_follows() -> None:
    # Given two tech stocks: 2 x 15% < 100% and the tech cap of 35% cannot reach the budget either
    fitted = fit_caps_to_universe(narrow_universe(DEFAULT, ["AAPL", "MSFT"]).spec, ["AAPL", "MSFT"])
    assert "group cap Information Technology 0.35 -> 1 (the caps reach only 35.0% of the budget on these 2 assets)" in (
        fitted.adaptations
    )
    assert fitted.spec.constraints.group_bounds == {"Information Technology": (None, 1.0)}
    assert fitted.spec.limits["max_sector_weight"] == 1.0 and fitted.spec.limits["max_weight"] == 1.0
    # And the widened spec is solvable: the group caps now reach the budget
    assert fitted.spec.constraints.resolve(["AAPL", "MSFT"]).upper.sum() >= 1.0


def test_a_run_sharing_no_stock_with_the_default_holds_its_own_symbols() -> None:
    narrowed = narrow_universe(DEFAULT, ["ZZZ"])
    assert narrowed.spec.universe == ["ZZZ"]
    assert narrowed.adaptations == (
        "universe replaced by the run's 1 symbols (ZZZ): the run has none of the spec's 20",
    )
    # A spec without a universe takes the run's symbols as they are (nothing to record)
    assert narrow_universe(PortfolioSpec(), ["A", "B"]) == FittedSpec(PortfolioSpec())
