"""Hedge proposals for a portfolio that breaches its limits: proposed, never executed.

Three families, each a path from today's book (``t = 0``) to a full move (``t = 1``); each proposal is the
smallest move on its path that brings EVERY measurable limit within bounds (a hedge must not create a new
breach), with risk reported before and after:

1. ``scale_exposure``: weights ``s w``, the rest of the budget to cash (zero return); ``t = 1 - s``.
   When every limit is positively homogeneous in ``s`` (volatility, parametric and historical VaR/CVaR,
   whose buy-and-hold horizon returns are linear in the weights, concentration, sector, leverage, beta) the
   answer is closed-form, ``s = min_k L_k / m_k``; otherwise (the replayed drawdown, which compounds, and
   tracking error, which the benchmark makes affine) it is found by bisection.
2. ``index_hedge``: a short of ``h`` in the index, ``h`` in ``[0, beta]`` (``h = beta`` is the full hedge,
   which is also the minimum-variance hedge); ``t = h / beta``. Turnover is the hedge's notional ``h``, and
   gross leverage counts it.
3. ``toward_min_variance``: ``w(t) = (1 - t) w + t w_minvar`` with the minimum-variance weights given.

The search over ``t`` scans a grid of 64 steps and bisects the first feasible step to 1e-12, so on a path
where the limits are not monotone it finds the smallest feasible ``t`` up to the grid's resolution. A value
counts as within its limit when it is at most the limit (a proposal lands on the limit, which then grades as a
``"warning"``). The cheapest feasible proposal (lowest turnover) is chosen; when none works the plan says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from portfolio_engine.risk._hedge_model import HedgeRiskModel
from portfolio_engine.risk.limits import Breach, evaluate_limits, parse_limits

__all__ = [
    "HedgeKind",
    "HedgePlan",
    "HedgeProposal",
    "HedgeRiskModel",
    "propose_hedge",
]

HedgeKind = Literal["scale_exposure", "index_hedge", "toward_min_variance"]
_GRID = 64
_Book = tuple[np.ndarray, float]


@dataclass(frozen=True)
class HedgeProposal:
    """One proposed hedge and the risk after it.

    Attributes
    ----------
    kind : {"scale_exposure", "index_hedge", "toward_min_variance"}
    feasible : bool
        Whether it brings every measurable limit within bounds. When False, the fields describe the full
        move (``t = 1``) so that the caller sees how far it gets.
    parameter : float
        ``s`` (scale kept), ``h`` (index short, in units of portfolio value) or ``t`` (blend), by kind.
    weights : Series of shape (n_assets,)
        Asset weights after the hedge.
    cash : float
        Budget left in cash after the hedge (scaling frees ``(1 - s) sum(w)``).
    index_weight : float
        Position in the index after the hedge (``-h``; 0 for the other kinds).
    turnover : float
        ``sum |trades|``: ``(1 - s) sum |w|``, ``h``, or ``t sum |w_minvar - w|``.
    risk_after : dict of str to float
        Volatility (annual), parametric Normal 1-day VaR/CVaR at 95%/99%, beta if known.
    limits_after : dict of str to float
        Each measurable limit's value after the hedge.
    note : str
        Why it is infeasible, or how it was solved.
    """

    kind: HedgeKind
    feasible: bool
    parameter: float
    weights: pd.Series
    cash: float
    index_weight: float
    turnover: float
    risk_after: dict[str, float]
    limits_after: dict[str, float]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "feasible": self.feasible,
            "parameter": float(self.parameter),
            "weights": {str(k): float(v) for k, v in self.weights.items()},
            "cash": float(self.cash),
            "index_weight": float(self.index_weight),
            "turnover": float(self.turnover),
            "risk_after": dict(self.risk_after),
            "limits_after": dict(self.limits_after),
            "note": self.note,
        }


@dataclass(frozen=True)
class HedgePlan:
    """What :func:`propose_hedge` found. Nothing is executed: ``executed`` is always False.

    Attributes
    ----------
    breaches : tuple of Breach
        Limits above their threshold before any hedge (warnings excluded).
    risk_before, limits_before : dict of str to float
        As in :class:`HedgeProposal`, for today's book.
    proposals : tuple of HedgeProposal
        One per family that could be tried (empty when nothing breaches).
    chosen : HedgeProposal or None
        The feasible proposal with the lowest turnover.
    unaddressed : dict of str to str
        Limits no weight change can bring back (the current drawdown) or the model cannot measure, with why.
    message : str
        One line saying what was found.
    """

    breaches: tuple[Breach, ...]
    risk_before: dict[str, float]
    limits_before: dict[str, float]
    proposals: tuple[HedgeProposal, ...]
    chosen: HedgeProposal | None
    unaddressed: dict[str, str]
    message: str
    executed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "breaches": [b.to_dict() for b in self.breaches],
            "risk_before": dict(self.risk_before),
            "limits_before": dict(self.limits_before),
            "proposals": [p.to_dict() for p in self.proposals],
            "chosen": self.chosen.kind if self.chosen is not None else None,
            "unaddressed": dict(self.unaddressed),
            "message": self.message,
            "executed": self.executed,
        }


def _smallest_feasible(excess: Callable[[float], float]) -> float | None:
    """Smallest ``t`` in [0, 1] with ``excess(t) <= 0``: a grid scan, then bisection of the first feasible step."""
    if excess(0.0) <= 0.0:
        return 0.0
    previous = 0.0
    for t in np.linspace(0.0, 1.0, _GRID + 1)[1:]:
        if excess(float(t)) <= 0.0:
            lo, hi = previous, float(t)
            while hi - lo > 1e-12:
                mid = 0.5 * (lo + hi)
                lo, hi = (lo, mid) if excess(mid) <= 0.0 else (mid, hi)
            return hi
        previous = float(t)
    return None


# Limits whose value scales exactly as s when the weights are scaled by s >= 0 (the rest going to cash).
_HOMOGENEOUS = frozenset({"var", "cvar", "volatility", "weight", "sector_weight", "gross_leverage", "beta"})


def propose_hedge(
    weights: pd.Series,
    model: HedgeRiskModel,
    limits: Mapping[str, float],
    *,
    min_variance_weights: pd.Series | None = None,
    budget: float = 1.0,
    closed_form: bool = True,
) -> HedgePlan:
    """Propose hedges that bring a breaching portfolio back within its limits (see the module docstring).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
        Today's weights, summing to ``budget``; assets absent from it are held at zero.
    model : HedgeRiskModel
        Daily moments (and scenarios) to measure risk with.
    limits : mapping of str to float
        The portfolio's limits (:mod:`portfolio_engine.risk.limits`).
    min_variance_weights : Series of shape (n_assets,), optional
        Target of the third family; that family is skipped when None.
    budget : float, default 1.0
        What the weights (and the min-variance weights) must sum to.
    closed_form : bool, default True
        Scale exposure in closed form where every limit allows it; False always bisects (a cross-check).

    Returns
    -------
    HedgePlan

    Raises
    ------
    SpecificationError
        For an unknown or invalid limit.
    RiskInputError
        For NaN weights, unknown assets, weights off the budget, or a model that cannot measure a limit's inputs.
    """
    w0 = model.aligned(weights, budget=budget)
    specs = parse_limits(limits)
    unaddressed = {n: r for n, s in specs.items() if (r := model.measurable(s)) is not None}
    active = {n: s for n, s in specs.items() if n not in unaddressed}

    def measured(book: _Book) -> dict[str, float]:
        return {n: model.measure(s, *book) for n, s in active.items()}

    def excess(book: _Book) -> float:
        values = measured(book)
        return max((values[n] / s.threshold - 1.0 for n, s in active.items()), default=-1.0)

    limits_before = measured((w0, 0.0))
    breaches = tuple(
        b for b in evaluate_limits({n: s.threshold for n, s in active.items()}, limits_before) if not b.within_limit
    )
    risk_before = model.summary(w0)
    if not breaches:
        message = "Within every measurable limit: no hedge needed."
        return HedgePlan((), risk_before, limits_before, (), None, unaddressed, message)

    def proposal(
        kind: HedgeKind,
        path: Callable[[float], _Book],
        t: float | None,
        param: Callable[[float], float],
        turnover: Callable[[float], float],
        note: str,
    ) -> HedgeProposal:
        feasible = t is not None
        t_used = t if t is not None else 1.0
        w, x = path(t_used)
        cash = budget - float(w.sum())
        return HedgeProposal(
            kind=kind,
            feasible=feasible,
            parameter=param(t_used),
            weights=pd.Series(w, index=model.assets),
            cash=cash,
            index_weight=x,
            turnover=turnover(t_used),
            risk_after=model.summary(w, x),
            limits_after=measured((w, x)),
            note=note if feasible else f"infeasible: even the full move leaves a limit breached. {note}",
        )

    gross = float(np.abs(w0).sum())
    proposals = []

    # 1. Scale exposure.
    def scaled(t: float) -> _Book:
        return (1.0 - t) * w0, 0.0

    if closed_form and all(s.kind in _HOMOGENEOUS for s in active.values()):
        ratios = [s.threshold / limits_before[n] for n, s in active.items() if limits_before[n] > 0]
        t_scale: float | None = 1.0 - min([1.0, *ratios])
        while t_scale is not None and t_scale < 1.0 and excess(scaled(t_scale)) > 0:
            t_scale = float(np.nextafter(t_scale, 1.0))  # rounding can leave s m a hair above L
        note = "closed form s = min(limit / measured)"
    else:
        t_scale = _smallest_feasible(lambda t: excess(scaled(t)))
        note = "bisection on s"
    proposals.append(proposal("scale_exposure", scaled, t_scale, lambda t: 1.0 - t, lambda t: t * gross, note))

    # 2. Index hedge at up to the portfolio's beta.
    replayed = any(
        s.kind == "max_drawdown" or (s.kind in ("var", "cvar") and model.tail_method == "historical")
        for s in active.values()
    )
    if model.has_index and replayed and model.index_scenarios is None:
        proposals.append(
            proposal(
                "index_hedge",
                lambda t: (w0, 0.0),
                None,
                lambda t: 0.0,
                lambda t: 0.0,
                "the limits are replayed on scenarios and the model has no index_scenarios",
            )
        )
    elif model.has_index:
        beta = model.beta(w0)
        if beta > 0:

            def hedged(t: float) -> _Book:
                return w0, -t * beta

            t_index = _smallest_feasible(lambda t: excess(hedged(t)))
            proposals.append(
                proposal(
                    "index_hedge",
                    hedged,
                    t_index,
                    lambda t: t * beta,
                    lambda t: t * beta,
                    f"bisection on h in [0, beta={beta:.6g}]",
                )
            )
        else:
            proposals.append(
                proposal(
                    "index_hedge",
                    lambda t: (w0, 0.0),
                    None,
                    lambda t: 0.0,
                    lambda t: 0.0,
                    f"beta {beta:.6g} <= 0: shorting the index adds risk",
                )
            )

    # 3. Toward minimum variance.
    if min_variance_weights is not None:
        w_mv = model.aligned(min_variance_weights, budget=budget, name="min_variance_weights")
        distance = float(np.abs(w_mv - w0).sum())

        def blended(t: float) -> _Book:
            return (1.0 - t) * w0 + t * w_mv, 0.0

        t_mv = _smallest_feasible(lambda t: excess(blended(t)))
        proposals.append(
            proposal("toward_min_variance", blended, t_mv, lambda t: t, lambda t: t * distance, "bisection on t")
        )

    feasible = [p for p in proposals if p.feasible]
    chosen = min(feasible, key=lambda p: p.turnover) if feasible else None
    if chosen is None:
        message = f"No proposal brings every limit within bounds ({', '.join(b.limit for b in breaches)})."
    else:
        message = f"Cheapest hedge: {chosen.kind} (parameter {chosen.parameter:.6g}, turnover {chosen.turnover:.4g})."
    return HedgePlan(breaches, risk_before, limits_before, tuple(proposals), chosen, unaddressed, message)
