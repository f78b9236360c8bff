"""Frozen, JSON-ready results of the risk measures: ``TailRisk`` (one VaR/CVaR estimate) and ``RiskReport``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._contributions import RiskContributions
from portfolio_engine.risk._drawdown import DrawdownStats


def json_number(value: Any) -> Any:
    """A float for JSON (NaN and infinities become None); strings, bools, None and ints pass through."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def level_key(level: float) -> str:
    """The JSON key of a confidence level: ``0.95 -> "0.95"``."""
    return repr(float(level))


@dataclass(frozen=True, eq=False)
class TailRisk:
    """One VaR/CVaR estimate: losses as positive fractions of portfolio value over ``horizon`` days.

    Attributes
    ----------
    method : str
        ``"historical"``, ``"normal"``, ``"student_t"``, ``"cornish_fisher"`` or ``"monte_carlo"``.
    level : float
        Confidence level alpha (0.95: the loss exceeded on 5 % of horizons).
    horizon : int
        Trading days.
    var, cvar : float
        ``VaR_alpha`` and ``CVaR_alpha`` of ``L = -R`` (``cvar >= var``).
    n_observations : int
        Daily returns (parametric) or scenarios (historical, Monte Carlo) behind the estimate.
    parameters : mapping
        Method details: ``mean``/``std`` of the horizon return, ``dof``, ``skew``, ``excess_kurtosis``,
        ``quantile_method``, ``overlapping``.
    """

    method: str
    level: float
    horizon: int
    var: float
    cvar: float
    n_observations: int
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "parameters": dict(self.parameters)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "parameters", MappingProxyType(dict(state.get("parameters", {}))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "method": self.method,
            "level": float(self.level),
            "horizon": int(self.horizon),
            "var": json_number(self.var),
            "cvar": json_number(self.cvar),
            "n_observations": int(self.n_observations),
            "parameters": {str(k): json_number(v) for k, v in self.parameters.items()},
        }


@dataclass(frozen=True, eq=False)
class RiskReport:
    """Risk of one set of weights on a return history.

    Tail risk by method and level, volatility, drawdown, benchmark statistics and risk contributions.

    Attributes
    ----------
    weights : Series of shape (n_assets,)
    start, as_of : object
        First and last date of the returns.
    n_observations : int
        Daily returns used.
    horizon : int
        Days of the VaR/CVaR figures.
    levels : tuple of float
    tail : tuple of TailRisk
        One per (method, level).
    volatility : float
        Annualised standard deviation of the daily portfolio return (ddof = 1).
    drawdown : DrawdownStats
        Of the daily-rebalanced portfolio's wealth over the history.
    tracking_error, beta : float or None
        Against the benchmark (None without one).
    contributions : tuple of RiskContributions
        Volatility, Normal VaR/CVaR and scenario CVaR (historical, Monte Carlo when given asset scenarios).
    """

    weights: pd.Series
    start: Any
    as_of: Any
    n_observations: int
    horizon: int
    levels: tuple[float, ...]
    tail: tuple[TailRisk, ...]
    volatility: float
    drawdown: DrawdownStats
    tracking_error: float | None
    beta: float | None
    contributions: tuple[RiskContributions, ...]

    @property
    def methods(self) -> tuple[str, ...]:
        """The VaR/CVaR methods in the report, in order."""
        return tuple(dict.fromkeys(t.method for t in self.tail))

    def tail_risk(self, method: str, level: float) -> TailRisk:
        """The estimate of ``method`` at ``level``.

        Raises
        ------
        RiskInputError
            No such estimate in the report.
        """
        for item in self.tail:
            if item.method == method and math.isclose(item.level, level, rel_tol=0.0, abs_tol=1e-12):
                return item
        raise RiskInputError(
            f"The report has no {method!r} estimate at level {level!r}.",
            hint=f"Methods {list(self.methods)}, levels {list(self.levels)}.",
        )

    def var(self, method: str, level: float) -> float:
        """``VaR_level`` by ``method`` (see :meth:`tail_risk`)."""
        return self.tail_risk(method, level).var

    def cvar(self, method: str, level: float) -> float:
        """``CVaR_level`` by ``method`` (see :meth:`tail_risk`)."""
        return self.tail_risk(method, level).cvar

    def contribution(self, measure: str, level: float | None = None) -> RiskContributions:
        """The contributions to ``measure`` (at ``level`` for VaR/CVaR).

        Raises
        ------
        RiskInputError
            No such contributions in the report.
        """
        for item in self.contributions:
            same_level = (level is None and item.level is None) or (
                level is not None and item.level is not None and math.isclose(item.level, level, abs_tol=1e-12)
            )
            if item.measure == measure and same_level:
                return item
        raise RiskInputError(
            f"The report has no contributions to {measure!r} at level {level!r}.",
            hint=f"Available: {[(c.measure, c.level) for c in self.contributions]}.",
        )

    def to_dict(self, *, include_series: bool = False) -> dict[str, Any]:
        """JSON-ready dictionary: ``var``/``cvar`` as ``{method: {level: value}}`` plus every detail.

        ``include_series`` adds the drawdown path.
        """

        def table(attribute: str) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for item in self.tail:
                out.setdefault(item.method, {})[level_key(item.level)] = json_number(getattr(item, attribute))
            return out

        def iso(value: Any) -> Any:
            return value.isoformat() if hasattr(value, "isoformat") else (None if value is None else str(value))

        return {
            "weights": {str(k): float(v) for k, v in self.weights.items()},
            "start": iso(self.start),
            "as_of": iso(self.as_of),
            "n_observations": int(self.n_observations),
            "horizon": int(self.horizon),
            "levels": [float(level) for level in self.levels],
            "var": table("var"),
            "cvar": table("cvar"),
            "tail": [item.to_dict() for item in self.tail],
            "volatility": json_number(self.volatility),
            "drawdown": self.drawdown.to_dict(include_series=include_series),
            "tracking_error": json_number(self.tracking_error),
            "beta": json_number(self.beta),
            "contributions": [item.to_dict() for item in self.contributions],
        }
