"""Constraints: validation on construction and against a universe, cvxpy translation, infeasibility diagnosis."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization import Constraints, conflicting_families, cvxpy_constraints
from portfolio_engine.optimization._cvx_constraints import CvxInputs, binding_families

ASSETS = ("A", "B", "C", "D")


def _cov(n: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, n)) @ (np.eye(n) + 0.3 * rng.standard_normal((n, n))) * 0.01
    return np.cov(x, rowvar=False) * 252


# --- construction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"weight_bounds": (0.5, 0.2)}, "weight_bounds has lo > hi: (0.5, 0.2)"),
        ({"asset_bounds": {"A": (0.3, 0.1)}}, "asset_bounds['A'] has lo > hi"),
        ({"net_leverage": (float("nan"), 1.0)}, "net_leverage holds NaN"),
        ({"weight_bounds": (-0.1, 0.5)}, "long_only=True but negative lower bounds {'weight_bounds': -0.1}"),
        ({"groups": {"tech": ["A"]}, "group_bounds": {"energy": (0, 0.2)}}, "name groups ['energy']"),
        ({"groups": {"tech": []}}, "groups ['tech'] have no members"),
        ({"ucits": (0.1, 0.05, 0.4)}, "ucits must be (small, big, total)"),
        ({"transaction_cost_bps": -5.0}, "transaction_cost_bps must be finite and >= 0; got -5.0"),
        ({"max_turnover": -0.1}, "max_turnover must be >= 0; got -0.1"),
        ({"risk_budgets": {"A": 0.0}}, "risk_budgets must be finite and > 0"),
        ({"gross_leverage": 0.0}, "gross_leverage must be > 0; got 0.0"),
    ],
)
def test_invalid_values_raise_specification_error_naming_field_and_value(kwargs: dict, needle: str) -> None:
    # Given constraint values that cannot hold / When constructing / Then the error names field and value
    with pytest.raises(SpecificationError) as caught:
        Constraints(**kwargs)
    assert needle in str(caught.value)
    assert caught.value.hint


def test_unknown_field_is_rejected_by_name() -> None:
    with pytest.raises(SpecificationError) as caught:
        Constraints.model_validate({"max_weight": 0.2})
    assert "max_weight" in str(caught.value)
    assert "Unknown field(s) ['max_weight']" in caught.value.hint


def test_open_sides_normalise_to_none_and_ucits_true_is_5_10_40() -> None:
    c = Constraints(weight_bounds=(0.0, float("inf")), ucits=True)
    assert c.weight_bounds == (0.0, None)
    assert c.ucits_limits == (0.05, 0.10, 0.40)


def test_replace_validates() -> None:
    base = Constraints(weight_bounds=(0.0, 0.5))
    assert base.replace(budget=0.9).budget == 0.9
    with pytest.raises(SpecificationError, match="lo > hi"):
        base.replace(weight_bounds=(0.6, 0.5))


# --- resolution against a universe -------------------------------------------------------------------------


def test_resolve_defaults_long_only_and_asset_bounds_override() -> None:
    # Given long-only defaults and one per-asset bound
    resolved = Constraints(weight_bounds=(0.0, 0.6), asset_bounds={"B": (0.1, 0.2)}).resolve(ASSETS)
    # Then B's bounds replace the global ones and the others keep them
    np.testing.assert_array_equal(resolved.lower, [0.0, 0.1, 0.0, 0.0])
    np.testing.assert_array_equal(resolved.upper, [0.6, 0.2, 0.6, 0.6])
    assert resolved.families() == ["weight_bounds", "budget"]
    assert resolved.is_linear
    # And shorts allowed with nothing else means open bounds
    open_ = Constraints(long_only=False).resolve(ASSETS)
    assert np.isinf(open_.lower).all() and np.isinf(open_.upper).all()


def test_gross_leverage_becomes_a_linear_row_when_no_weight_can_be_negative() -> None:
    long = Constraints(gross_leverage=1.0, max_short=0.2).resolve(ASSETS)
    assert long.gross_leverage is None and long.max_short is None
    assert [f.name for f in long.linear] == ["gross_leverage"] and long.is_linear
    short = Constraints(long_only=False, gross_leverage=1.5, max_short=0.2).resolve(ASSETS)
    assert short.gross_leverage == 1.5 and short.max_short == 0.2 and not short.is_linear


@pytest.mark.parametrize(
    ("constraints", "kwargs", "needle"),
    [
        (Constraints(asset_bounds={"Z": (0, 0.1)}), {}, "asset_bounds names assets outside the universe: ['Z']"),
        (Constraints(weight_bounds=(0.0, 0.2)), {}, "budget 1.0 lies outside what the weight bounds allow [0, 0.8]"),
        (Constraints(max_tracking_error=0.05), {}, "max_tracking_error=0.05 needs benchmark_weights"),
        (Constraints(factor_exposure_bounds={"mkt": (0.9, 1.1)}), {}, "need factor_loadings"),
        (
            Constraints(factor_exposure_bounds={"mkt": (0.9, 1.1)}),
            {"factor_loadings": pd.DataFrame({"value": 1.0}, index=list(ASSETS))},
            "lack assets [] or factors ['mkt']",
        ),
        (Constraints(groups={"x": ["Q"]}, group_bounds={"x": (0, 0.5)}), {}, "group 'x' has no member in the universe"),
        (Constraints(risk_budgets={"A": 1.0}), {}, "risk_budgets lacks ['B', 'C', 'D']"),
        (Constraints(), {"current_weights": {"Z": 0.5}}, "current_weights names assets outside the universe: ['Z']"),
        (Constraints(transaction_cost_bps={"Z": 5.0}), {}, "transaction_cost_bps names assets outside the universe"),
    ],
)
def test_resolve_rejects_what_does_not_fit_the_universe(constraints: Constraints, kwargs: dict, needle: str) -> None:
    with pytest.raises(SpecificationError) as caught:
        constraints.resolve(ASSETS, **kwargs)
    assert needle in str(caught.value)


def test_resolve_arrays_for_costs_holdings_groups_factors_and_budgets() -> None:
    loadings = pd.DataFrame({"mkt": [1.0, 1.2, 0.8, 0.5], "size": [0.1, 0.0, -0.2, 0.3]}, index=list(ASSETS))
    resolved = Constraints(
        groups={"g": ["A", "C", "not-held"]},
        group_bounds={"g": (None, 0.5)},
        transaction_cost_bps={"A": 10.0, "D": 20.0},
        factor_exposure_bounds={"size": (-0.1, 0.1)},
        risk_budgets={"A": 1.0, "B": 1.0, "C": 2.0, "D": 4.0},
    ).resolve(ASSETS, current_weights=pd.Series({"B": 0.4, "D": 0.6}), factor_loadings=loadings)
    groups, factors = resolved.linear
    np.testing.assert_array_equal(groups.matrix, [[1.0, 0.0, 1.0, 0.0]])  # the member outside is ignored
    assert groups.lower[0] == -np.inf and groups.upper[0] == 0.5
    np.testing.assert_array_equal(factors.matrix, [[0.1, 0.0, -0.2, 0.3]])
    np.testing.assert_allclose(resolved.costs, [1e-3, 0.0, 0.0, 2e-3])
    np.testing.assert_array_equal(resolved.current, [0.0, 0.4, 0.0, 0.6])
    np.testing.assert_allclose(resolved.risk_budgets, [0.125, 0.125, 0.25, 0.5])


# --- cvxpy translation -------------------------------------------------------------------------------------


def test_cvxpy_constraints_are_tagged_and_hold_at_the_solution() -> None:
    # Given every family, with constants
    cov = _cov()
    resolved = Constraints(
        long_only=False,
        weight_bounds=(-0.3, 0.7),
        budget=1.0,
        max_short=0.25,
        gross_leverage=1.4,
        groups={"g": ["A", "B"]},
        group_bounds={"g": (0.2, 0.6)},
        ucits=(0.3, 0.5, 0.9),
        max_turnover=1.0,
        max_tracking_error=0.2,
    ).resolve(ASSETS, benchmark_weights={a: 0.25 for a in ASSETS})
    w = cp.Variable(4)
    built = cvxpy_constraints(resolved, w, cov=cov)
    names = [t.name for t in built.tagged]
    assert names == [
        "weight_bounds",
        "budget",
        "group_bounds",
        "max_short",
        "gross_leverage",
        "max_turnover",
        "max_tracking_error",
        "ucits",
    ]
    assert built.branching is not None
    # When maximising the first weight over the relaxation
    cp.Problem(cp.Maximize(w[0]), built.constraints).solve(solver=cp.CLARABEL)
    x = w.value
    # Then every limit holds
    assert x.min() >= -0.3 - 1e-7 and x.max() <= 0.5 + 1e-7  # the UCITS cap (0.5) binds below the bound 0.7
    assert abs(x.sum() - 1.0) < 1e-7
    assert 0.2 - 1e-7 <= x[0] + x[1] <= 0.6 + 1e-7
    assert np.maximum(-x, 0).sum() <= 0.25 + 1e-7 and np.abs(x).sum() <= 1.4 + 1e-7
    d = x - 0.25
    assert np.sqrt(d @ cov @ d) <= 0.2 + 1e-7
    assert abs(x[0] - 0.5) < 1e-6
    assert {"ucits", "budget"} <= set(binding_families(built.tagged))


def test_parameter_inputs_keep_the_problem_dpp() -> None:
    resolved = Constraints(
        max_turnover=0.5,
        max_tracking_error=0.05,
        factor_exposure_bounds={"mkt": (0.9, 1.1)},
    ).resolve(
        ASSETS,
        benchmark_weights={a: 0.25 for a in ASSETS},
        factor_loadings=pd.DataFrame({"mkt": [1.0, 1.1, 0.9, 1.0]}, index=list(ASSETS)),
    )
    factor = cp.Parameter((4, 4))
    inputs = CvxInputs.parameters(resolved, factor)
    w, k = cp.Variable(4), cp.Variable(nonneg=True)
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(factor @ w)), cvxpy_constraints(resolved, w, inputs=inputs).constraints
    )
    homogenised = cvxpy_constraints(resolved, w, inputs=inputs, scale=k)
    assert problem.is_dcp(dpp=True)
    assert cp.Problem(cp.Minimize(cp.sum_squares(factor @ w)), homogenised.constraints).is_dcp(dpp=True)


# --- infeasibility diagnosis -------------------------------------------------------------------------------


def test_group_minima_over_the_budget_name_group_bounds_and_budget() -> None:
    # Given two disjoint groups whose minima sum to 1.2 with a budget of 1 (long-only)
    resolved = Constraints(
        groups={"g1": ["A", "B"], "g2": ["C", "D"]}, group_bounds={"g1": (0.6, None), "g2": (0.6, None)}
    ).resolve(ASSETS)
    # When diagnosing / Then both families are named (and nothing else: the groups cover every asset)
    assert conflicting_families(resolved) == ["budget", "group_bounds"]


def test_feasible_constraints_have_no_conflict_and_pairs_are_found() -> None:
    assert conflicting_families(Constraints().resolve(ASSETS)) == []
    # A conflict needing two drops: a budget 1 against an upper net leverage and an upper gross leverage of 0.5
    resolved = Constraints(net_leverage=(None, 0.5), gross_leverage=0.5).resolve(ASSETS)
    assert conflicting_families(resolved) == ["budget"]
    # Two independent conflicts (net vs gross leverage; a group minimum vs its members' caps): no single family
    # restores feasibility, pairs do, and every family of a restoring pair is named
    both = Constraints(
        budget=None,
        net_leverage=(0.9, None),
        gross_leverage=0.5,
        asset_bounds={"A": (0, 0.2), "B": (0, 0.2)},
        groups={"g": ["A", "B"]},
        group_bounds={"g": (0.7, None)},
    ).resolve(ASSETS)
    assert conflicting_families(both) == ["gross_leverage", "group_bounds", "net_leverage", "weight_bounds"]
