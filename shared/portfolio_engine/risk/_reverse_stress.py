"""Reverse stress tests: the smallest shock of a given shape that makes a loss (or VaR/CVaR) reach a limit ``L``.

Shapes and how they are solved:

* linear return shocks, ``s(m) = m d`` for a direction ``d`` and a multiplier ``m >= 0``: the loss ``-m w' d`` is
  linear, so ``m = L / (-w' d)`` in closed form (it exists when ``w' d < 0``). Uniform equity moves (``d = -1`` on the
  equities, or ``-beta_i``) and multiples of a historical scenario's asset returns are such shocks;
* covariance scale, ``Sigma -> k Sigma``: the daily returns are rescaled about their means,
  ``r(k) = mu + sqrt(k) (r - mu)``, which multiplies the sample covariance by ``k`` and keeps the means, skewness and
  kurtosis; the VaR or CVaR of the chosen method at ``k`` is matched to ``L`` by Brent's method (``scipy.optimize.
  brentq``) after bracketing the root. ``k < 1`` means the portfolio already breaches the limit today.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk._inputs import check_horizon, check_level, check_weights, held_returns
from portfolio_engine.risk._report import json_number
from portfolio_engine.risk._stress_replay import ScenarioReplay
from portfolio_engine.risk._tail import MIN_OBSERVATIONS, tail_risk_arrays
from portfolio_engine.risk._var import fit_student_t_dof

_BRACKET_LIMIT = 1e12


@dataclass(frozen=True, eq=False)
class ReverseStressResult:
    """The smallest shock of one shape that brings a loss measure to the limit.

    Attributes
    ----------
    shape : str
        ``"linear"``, ``"equity_move"``, ``"scenario_multiple"`` or ``"covariance_scale"``.
    measure : str
        ``"loss"`` (a return shock's loss), ``"var"`` or ``"cvar"``.
    limit : float
    multiplier : float
        The solution: ``m`` of the shock ``m d``, or ``k`` of ``k Sigma``.
    value : float
        The measure at the solution (equal to ``limit`` to solver precision).
    shock : float or None
        The equity move (``-m``, e.g. -0.27) for ``"equity_move"``; the volatility multiplier ``sqrt(k)`` for
        ``"covariance_scale"``; None otherwise.
    asset_shocks : Series of shape (n_assets,) or None
        The asset returns of the solving shock (linear shapes).
    details : mapping
    """

    shape: str
    measure: str
    limit: float
    multiplier: float
    value: float
    shock: float | None = None
    asset_shocks: pd.Series | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "details": dict(self.details)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "details", MappingProxyType(dict(state.get("details", {}))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "shape": self.shape,
            "measure": self.measure,
            "limit": json_number(self.limit),
            "multiplier": json_number(self.multiplier),
            "value": json_number(self.value),
            "shock": json_number(self.shock),
            "asset_shocks": None
            if self.asset_shocks is None
            else {str(k): json_number(v) for k, v in self.asset_shocks.items()},
            "details": {str(k): json_number(v) for k, v in self.details.items()},
        }


def check_limit(limit: float) -> float:
    """A loss limit: a finite number > 0.

    Raises
    ------
    RiskInputError
        Not a finite positive number.
    """
    try:
        number = float(limit)
    except (TypeError, ValueError):
        number = float("nan")
    if not (math.isfinite(number) and number > 0):
        raise RiskInputError(
            f"The loss limit must be a finite fraction > 0; got {limit!r}.", hint="Pass e.g. limit=0.10 (10 %)."
        )
    return number


def reverse_stress_linear(
    weights: pd.Series,
    direction: pd.Series | Mapping[Any, float],
    limit: float,
    *,
    shape: str = "linear",
    budget: float | None = 1.0,
) -> ReverseStressResult:
    """Smallest ``m >= 0`` with loss ``-m w' d = limit``: ``m = limit / (-w' d)``.

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    direction : Series or mapping asset -> return
        The shock's shape ``d`` (held assets absent from it get 0).
    limit : float
        Loss to reach, a positive fraction.
    shape : str, default "linear"
        Name recorded in the result.
    budget : float or None, default 1.0

    Returns
    -------
    ReverseStressResult

    Raises
    ------
    RiskInputError
        Bad weights, limit or direction.
    RiskError
        ``w' d >= 0``: the portfolio does not lose along this direction, however large the shock.
    """
    w = check_weights(weights, budget=budget)
    limit = check_limit(limit)
    try:
        d = pd.Series(direction, dtype="float64").reindex(w.index).fillna(0.0)
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"direction must map assets to returns ({exc}).", hint="Pass a Series.") from exc
    if not np.isfinite(d.to_numpy()).all():
        raise RiskInputError("direction holds infinite returns.", hint="Pass finite returns.")
    unit_loss = -float(w.to_numpy() @ d.to_numpy())
    if not unit_loss > 0:
        raise RiskError(
            f"The portfolio does not lose along this {shape} shock (loss per unit {unit_loss:.6g} <= 0).",
            hint="Reverse the shock's sign, or choose a shape the portfolio is exposed to.",
        )
    m = limit / unit_loss
    shocks = m * d
    value = -float(w.to_numpy() @ shocks.to_numpy())
    return ReverseStressResult(shape, "loss", limit, m, value, None, shocks, {"loss_per_unit": unit_loss})


def reverse_equity_shock(
    weights: pd.Series,
    limit: float,
    *,
    equities: Sequence[Any] | None = None,
    betas: pd.Series | Mapping[Any, float] | None = None,
    budget: float | None = 1.0,
) -> ReverseStressResult:
    """The smallest fall of the equity market whose loss reaches ``limit`` (uniform, or beta-scaled when ``betas``).

    ``shock`` in the result is the market move (negative), ``asset_shocks`` the per-asset returns; applying
    ``equity_shock(weights, result.shock, equities=..., betas=...)`` loses exactly ``limit``.

    Raises
    ------
    RiskInputError
        Bad weights or limit, or a held equity without a beta.
    RiskError
        The portfolio gains when equities fall (net short, or negative beta).
    """
    w = check_weights(weights, budget=budget)
    is_equity = w.index.isin(list(equities)) if equities is not None else np.ones(len(w), dtype=bool)
    scale = pd.Series(1.0, index=w.index)
    if betas is not None:
        beta_values = pd.Series(betas, dtype="float64").reindex(w.index)
        lacking = [str(a) for a, e, b in zip(w.index, is_equity, beta_values, strict=True) if e and not np.isfinite(b)]
        if lacking:
            raise RiskInputError(f"betas lack equities {lacking}.", hint="Give every held equity a beta.")
        scale = beta_values.fillna(0.0)
    direction = pd.Series(np.where(is_equity, -scale.to_numpy(), 0.0), index=w.index)
    result = reverse_stress_linear(w, direction, limit, shape="equity_move", budget=budget)
    return ReverseStressResult(
        "equity_move", "loss", result.limit, result.multiplier, result.value, -result.multiplier,
        result.asset_shocks, {**result.details, "beta_scaled": betas is not None},
    )  # fmt: skip


def reverse_scenario_multiple(
    weights: pd.Series,
    scenario: ScenarioReplay | pd.Series | Mapping[Any, float],
    limit: float,
    *,
    budget: float | None = 1.0,
) -> ReverseStressResult:
    """The multiple ``m`` of a scenario's asset returns whose loss reaches ``limit``.

    A :class:`ScenarioReplay` contributes its cumulative asset returns, whose weighted sum is the scenario's
    buy-and-hold return, so ``m = limit / replay.loss`` (``m < 1``: the scenario itself breaches the limit).

    Raises
    ------
    RiskInputError
        Bad weights, limit or scenario returns.
    RiskError
        The scenario is a gain for the portfolio, or has no data.
    """
    if isinstance(scenario, ScenarioReplay):
        if scenario.status == "no_data":
            raise RiskError(
                f"Scenario {scenario.name!r} has no data to scale.", hint="Pass returns that cover its window."
            )
        direction: pd.Series | Mapping[Any, float] = scenario.asset_returns
        name = scenario.name
    else:
        direction, name = scenario, "custom"
    result = reverse_stress_linear(weights, direction, limit, shape="scenario_multiple", budget=budget)
    return ReverseStressResult(
        "scenario_multiple", "loss", result.limit, result.multiplier, result.value, None, result.asset_shocks,
        {**result.details, "scenario": name},
    )  # fmt: skip


def reverse_volatility_stress(
    weights: pd.Series,
    returns: pd.DataFrame,
    limit: float,
    *,
    measure: str = "var",
    method: str = "normal",
    level: float = 0.95,
    horizon: int = 1,
    dof: float | None = None,
    overlapping: bool = True,
    quantile_method: str = "inverted_cdf",
    budget: float | None = 1.0,
) -> ReverseStressResult:
    """The covariance scale ``k`` at which the VaR (or CVaR) of ``method`` equals ``limit`` (Brent's method).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    returns : DataFrame of shape (n_observations, n_columns)
        Simple daily returns.
    limit : float
    measure : {"var", "cvar"}, default "var"
    method : {"normal", "student_t", "cornish_fisher", "historical"}, default "normal"
    level, horizon, dof, overlapping, quantile_method
        As in ``measures.tail_risk``.
    budget : float or None, default 1.0

    Returns
    -------
    ReverseStressResult
        ``multiplier`` is ``k``, ``shock`` the volatility multiplier ``sqrt(k)``.

    Raises
    ------
    RiskInputError
        Bad inputs (see ``measures.tail_risk``) or measure.
    RiskError
        The limit is already reached with no volatility at all (the mean loss over the horizon), no scale up to
        1e12 reaches it, or a scaled return falls to -100 % or below (historical, multi-day).
    """
    if measure not in ("var", "cvar"):
        raise RiskInputError(f"measure must be 'var' or 'cvar'; got {measure!r}.", hint="Pass measure='var'.")
    if method not in MIN_OBSERVATIONS:
        raise RiskInputError(f"Unknown VaR method {method!r}.", hint=f"Use one of {', '.join(MIN_OBSERVATIONS)}.")
    limit, level, horizon = check_limit(limit), check_level(level), check_horizon(horizon)
    w = check_weights(weights, budget=budget)
    daily = held_returns(w, returns, min_observations=max(MIN_OBSERVATIONS[method], horizon, 2))
    values = w.to_numpy()
    centre = daily.mean(axis=0)
    if dof is None and method == "student_t":
        dof = fit_student_t_dof(daily @ values)  # scale-free: fitted once, valid at every k

    def measured(k: float) -> float:
        scaled = centre + math.sqrt(k) * (daily - centre)
        if horizon > 1 and (scaled <= -1.0).any():
            raise RiskError(
                f"At covariance scale {k:.6g} a daily return falls to -100 % or below; the limit is out of reach.",
                hint="Use a parametric method or a lower limit.",
            )
        risk = tail_risk_arrays(values, scaled, level, horizon, method, overlapping, quantile_method, dof)
        return float(getattr(risk, measure))

    def gap(k: float) -> float:
        return measured(k) - limit

    low, high = 1.0, 1.0
    while gap(low) > 0:
        low /= 4.0
        if low < 1.0 / _BRACKET_LIMIT:
            raise RiskError(
                f"The {method} {measure} stays above the limit {limit:g} even with no volatility.",
                hint="The mean loss over the horizon alone reaches the limit: raise the limit or shorten the horizon.",
            )
    while gap(high) < 0:
        high *= 4.0
        if high > _BRACKET_LIMIT:
            raise RiskError(
                f"No covariance scale up to {_BRACKET_LIMIT:g} brings the {method} {measure} to {limit:g}.",
                hint="Check the limit's units (a fraction, e.g. 0.10) and the returns.",
            )
    k = float(optimize.brentq(gap, low, high, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))
    details = {"method": method, "level": level, "horizon": horizon, "value_today": measured(1.0)}
    if dof is not None:
        details["dof"] = float(dof)
    return ReverseStressResult("covariance_scale", measure, limit, k, measured(k), math.sqrt(k), None, details)
