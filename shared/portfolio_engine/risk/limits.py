"""Risk limits of a portfolio: their names, their units, and how a measured value is graded against them.

A portfolio specification carries ``limits: dict[str, float]`` (:class:`~portfolio_engine.optimization.spec.
PortfolioSpec`). Every limit is an upper bound on a non-negative measure; the names understood are:

==========================  ===============================================================================
name                        caps (units)
==========================  ===============================================================================
``max_var_<L>_<h>d``        Value at Risk at confidence ``L`` percent over ``h`` trading days, e.g.
                            ``max_var_95_1d``, ``max_var_99_10d``, ``max_var_97.5_5d`` (fraction of value;
                            the loss ``-P&L`` is positive)
``max_cvar_<L>_<h>d``       Conditional VaR (expected shortfall) at ``L`` percent over ``h`` days, e.g.
                            ``max_cvar_95_1d``, ``max_cvar_99_10d`` (fraction of value)
``max_volatility``          annualised volatility of the portfolio's daily returns (252 days a year)
``max_drawdown``            maximum drawdown over the window measured (fraction of the peak value)
``max_current_drawdown``    drawdown now, from the running peak (fraction of the peak value)
``max_weight``              largest absolute weight of one asset (concentration)
``max_sector_weight``       largest absolute net weight of one sector (needs a sector map)
``max_gross_leverage``      sum of absolute weights (a hedge's notional included)
``max_tracking_error``      annualised standard deviation of the return over the benchmark's
``max_beta``                absolute beta to the index
==========================  ===============================================================================

``L`` is a percentage strictly between 50 and 100. :func:`evaluate_limits` takes the measured value of each
limit, keyed by the limit's own name, and grades it (``warning_fraction`` and ``critical_multiple`` are
configurable):

* ``"warning"``: within ``warning_fraction`` (default 10%) below the limit, ``(1 - f) L <= v <= L``;
* ``"breach"``: above the limit, ``L < v <= m L``;
* ``"critical"``: above ``critical_multiple`` (default 1.5) times the limit, ``v > m L``.

Values below the warning band are within limits and produce nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from portfolio_engine.exceptions import RiskInputError, SpecificationError

__all__ = [
    "FIXED_LIMITS",
    "SEVERITY_RANK",
    "Breach",
    "LimitKind",
    "LimitSpec",
    "Severity",
    "evaluate_limits",
    "grade",
    "parse_limit",
    "parse_limits",
    "valid_limit_names",
]

Severity = Literal["warning", "breach", "critical"]
LimitKind = Literal[
    "var",
    "cvar",
    "volatility",
    "max_drawdown",
    "current_drawdown",
    "weight",
    "sector_weight",
    "gross_leverage",
    "tracking_error",
    "beta",
]

#: Order of severities: an alert of a higher rank is an escalation.
SEVERITY_RANK: Mapping[str, int] = {"warning": 1, "breach": 2, "critical": 3}

#: Limit names without parameters, and the measure each caps.
FIXED_LIMITS: Mapping[str, LimitKind] = {
    "max_volatility": "volatility",
    "max_drawdown": "max_drawdown",
    "max_current_drawdown": "current_drawdown",
    "max_weight": "weight",
    "max_sector_weight": "sector_weight",
    "max_gross_leverage": "gross_leverage",
    "max_tracking_error": "tracking_error",
    "max_beta": "beta",
}

_TAIL_PATTERN = re.compile(r"^max_(c?var)_(\d{2,3}(?:\.\d+)?)_(\d+)d$")


def valid_limit_names() -> list[str]:
    """Every limit name understood: the fixed ones, then the two patterns of VaR and CVaR limits."""
    return [*FIXED_LIMITS, "max_var_<L>_<h>d", "max_cvar_<L>_<h>d"]


@dataclass(frozen=True)
class LimitSpec:
    """One parsed limit.

    Attributes
    ----------
    name : str
        The limit's name as written in the specification (``"max_cvar_99_10d"``).
    kind : LimitKind
        The measure it caps (``"cvar"``).
    threshold : float
        The cap, > 0, in the measure's units (see the module docstring).
    level : float or None
        Confidence of a VaR/CVaR limit in (0.5, 1) (``0.99``); None for other kinds.
    horizon : int or None
        Horizon of a VaR/CVaR limit in trading days (``10``); None for other kinds.
    """

    name: str
    kind: LimitKind
    threshold: float
    level: float | None = None
    horizon: int | None = None

    @property
    def tail(self) -> tuple[float, int]:
        """``(level, horizon)`` of a VaR/CVaR limit.

        Raises
        ------
        SpecificationError
            For a limit of another kind.
        """
        if self.level is None or self.horizon is None:
            raise SpecificationError(f"Limit {self.name!r} is not a VaR/CVaR limit.", hint="Read .threshold only.")
        return self.level, self.horizon


def parse_limit(name: str, threshold: float) -> LimitSpec:
    """Parse one limit of a specification.

    Parameters
    ----------
    name : str
        A name listed by :func:`valid_limit_names`.
    threshold : float
        The cap: finite and > 0.

    Returns
    -------
    LimitSpec

    Raises
    ------
    SpecificationError
        For an unknown name (the message lists the valid ones), a confidence outside (50, 100) percent, a
        horizon of 0 days, or a threshold that is not a finite positive number.
    """
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SpecificationError(
            f"Limit {name!r} must be a finite number > 0; got {threshold!r}.",
            hint="Give limits as positive fractions (0.05 for 5%) or multiples (1.5 for gross leverage).",
        )
    if name in FIXED_LIMITS:
        return LimitSpec(name=name, kind=FIXED_LIMITS[name], threshold=value)
    match = _TAIL_PATTERN.match(name)
    if match is None:
        raise SpecificationError(
            f"Unknown limit {name!r}.",
            hint=f"Use one of {valid_limit_names()} (e.g. max_var_95_1d, max_cvar_99_10d).",
        )
    kind, percent, days = match.group(1), float(match.group(2)), int(match.group(3))
    if not 50.0 < percent < 100.0:
        raise SpecificationError(
            f"Limit {name!r} has confidence {percent}%, outside (50, 100).", hint="Write 95 or 99 (percent)."
        )
    if days <= 0:
        raise SpecificationError(f"Limit {name!r} has horizon {days} days.", hint="Use a horizon of at least 1d.")
    tail: LimitKind = "var" if kind == "var" else "cvar"
    return LimitSpec(name=name, kind=tail, threshold=value, level=percent / 100.0, horizon=days)


def parse_limits(limits: Mapping[str, float]) -> dict[str, LimitSpec]:
    """Parse every limit of a specification (see :func:`parse_limit`), keyed by name.

    Raises
    ------
    SpecificationError
        For the first invalid limit.
    """
    return {name: parse_limit(name, threshold) for name, threshold in limits.items()}


@dataclass(frozen=True)
class Breach:
    """A limit at or above its warning band.

    Attributes
    ----------
    limit : str
        The limit's name (``"max_var_95_1d"``).
    value : float
        The measured value, in the limit's units.
    threshold : float
        The limit.
    severity : {"warning", "breach", "critical"}
        See the module docstring.
    """

    limit: str
    value: float
    threshold: float
    severity: Severity

    @property
    def ratio(self) -> float:
        """Measured value over the limit (1.2 means 20% above it)."""
        return self.value / self.threshold

    @property
    def within_limit(self) -> bool:
        """True for a warning: the value is close to the limit but not above it."""
        return self.severity == "warning"

    @property
    def message(self) -> str:
        """One line naming the limit, the value and the threshold."""
        relation = "<=" if self.within_limit else ">"
        return (
            f"{self.severity}: {self.limit} = {self.value:.6g} {relation} limit {self.threshold:.6g} "
            f"({self.ratio:.0%} of the limit)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "limit": self.limit,
            "value": float(self.value),
            "threshold": float(self.threshold),
            "severity": self.severity,
            "ratio": float(self.ratio),
            "message": self.message,
        }


def grade(
    value: float, threshold: float, *, warning_fraction: float = 0.10, critical_multiple: float = 1.5
) -> Severity | None:
    """The severity of ``value`` against an upper ``threshold`` (None: comfortably within it)."""
    if value > critical_multiple * threshold:
        return "critical"
    if value > threshold:
        return "breach"
    if value >= (1.0 - warning_fraction) * threshold:
        return "warning"
    return None


def evaluate_limits(
    limits: Mapping[str, float],
    measured: Mapping[str, float],
    *,
    warning_fraction: float = 0.10,
    critical_multiple: float = 1.5,
) -> list[Breach]:
    """Grade each limit against its measured value.

    Parameters
    ----------
    limits : mapping of str to float
        A specification's limits (names in :func:`valid_limit_names`).
    measured : mapping of str to float
        The measured value each limit caps, keyed by the limit's name (``{"max_var_95_1d": 0.031}``), in the
        units of the module docstring. Extra keys are ignored.
    warning_fraction : float, default 0.10
        Width of the warning band below a limit, as a fraction of it, in [0, 1).
    critical_multiple : float, default 1.5
        A value above this multiple of its limit is ``"critical"``; > 1.

    Returns
    -------
    list of Breach
        One per limit at or above its warning band, most severe first (then by ratio, descending).

    Raises
    ------
    SpecificationError
        For an invalid limit (see :func:`parse_limit`) or band parameters out of range.
    RiskInputError
        If a limit has no measured value, or its value is not a finite number >= 0 (the message names it).
    """
    if not 0.0 <= warning_fraction < 1.0:
        raise SpecificationError(
            f"warning_fraction must be in [0, 1); got {warning_fraction!r}.", hint="Use e.g. 0.10 (10%)."
        )
    if not critical_multiple > 1.0:
        raise SpecificationError(
            f"critical_multiple must be > 1; got {critical_multiple!r}.", hint="Use e.g. 1.5 (50% above the limit)."
        )
    specs = parse_limits(limits)
    missing = sorted(set(specs) - set(measured))
    if missing:
        raise RiskInputError(
            f"No measured value for limits {missing}.",
            hint="Measure every limit of the specification, keyed by the limit's name, or drop the limit.",
        )
    breaches = []
    for name, spec in specs.items():
        value = float(measured[name])
        if not math.isfinite(value) or value < 0:
            raise RiskInputError(
                f"Measured value of {name!r} must be a finite number >= 0; got {measured[name]!r}.",
                hint="Losses, volatilities, drawdowns, weights and betas are given as non-negative magnitudes.",
            )
        severity = grade(value, spec.threshold, warning_fraction=warning_fraction, critical_multiple=critical_multiple)
        if severity is not None:
            breaches.append(Breach(limit=name, value=value, threshold=spec.threshold, severity=severity))
    return sorted(breaches, key=lambda b: (-SEVERITY_RANK[b.severity], -b.ratio, b.limit))
