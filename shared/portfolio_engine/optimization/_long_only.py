"""The constraint check shared by the long-only allocation rules (risk parity, HRP).

Those rules are not optimizers over a feasible set: they produce long-only weights summing to a budget, and
risk parity honours risk budgets. Any other active constraint is refused rather than silently ignored.
"""

from __future__ import annotations

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization.constraints import Constraints

__all__ = ["check_long_only_budget"]

#: Methods that honour every constraint family, named in the error's hint.
_GENERAL_METHODS = "min_variance, max_sharpe, target_return, target_risk, max_utility, min_cvar, mean_cvar, resampled"


def _open_long_only(bounds: tuple[float | None, float | None] | None) -> bool:
    return bounds is None or (bounds[0] in (None, 0.0) and bounds[1] is None)


def check_long_only_budget(constraints: Constraints, method: str, *, risk_budgets: bool) -> float:
    """Refuse every constraint but long-only, a positive budget and (when allowed) risk budgets.

    Parameters
    ----------
    constraints : Constraints
    method : str
        The method's name, for the message.
    risk_budgets : bool
        Whether the method reads ``constraints.risk_budgets``.

    Returns
    -------
    float
        The budget.

    Raises
    ------
    SpecificationError
        Naming each unsupported constraint present and the methods that support them.
    """
    present = []
    if not constraints.long_only:
        present.append("long_only=False")
    if not _open_long_only(constraints.weight_bounds):
        present.append("weight_bounds")
    checks = {
        "asset_bounds": bool(constraints.asset_bounds),
        "max_short": constraints.max_short is not None,
        "gross_leverage": constraints.gross_leverage is not None,
        "net_leverage": constraints.net_leverage is not None,
        "group_bounds": bool(constraints.group_bounds),
        "ucits": constraints.ucits is not False,
        "max_turnover": constraints.max_turnover is not None,
        "transaction_cost_bps": constraints.transaction_cost_bps is not None,
        "max_tracking_error": constraints.max_tracking_error is not None,
        "factor_exposure_bounds": bool(constraints.factor_exposure_bounds),
        "risk_budgets": constraints.risk_budgets is not None and not risk_budgets,
    }
    present += [name for name, on in checks.items() if on]
    budget = constraints.budget
    if budget is None or budget <= 0:
        present.append(f"budget={budget!r}")
    if present:
        supported = "long-only weights, a positive budget" + (" and risk_budgets" if risk_budgets else "")
        raise SpecificationError(
            f"{method} supports only {supported}; the spec sets {present}.",
            hint=f"Remove them, or use a method that supports them: {_GENERAL_METHODS}.",
        )
    assert budget is not None  # checked above
    return float(budget)
