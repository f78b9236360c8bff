"""The tables of a risk report, built from what the risk steps return (pure: mappings in, DataFrames out)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fan_frame", "hedge_table", "limits_table", "number", "stress_table", "tail_table"]


def number(value: Any) -> float:
    """A float, NaN for None or anything not numeric (JSON stores NaN as null)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fan_frame(levels: Sequence[float], values: Sequence[Sequence[float]]) -> pd.DataFrame:
    """The stored fan chart (``risk/<run>/report.json``'s ``fan_chart``) as a frame.

    Parameters
    ----------
    levels : sequence of float of length n_levels
        Quantile levels in (0, 1).
    values : sequence of shape (horizon + 1, n_levels)
        Portfolio value quantiles per step (step 0 is today, value 1).

    Returns
    -------
    DataFrame of shape (horizon + 1, n_levels)
        Index ``step``, columns the levels (as floats).
    """
    frame = pd.DataFrame(np.asarray(values, dtype=float), columns=[float(level) for level in levels])
    frame.index.name = "step"
    return frame


def stress_table(scenarios: Iterable[Mapping[str, Any]], shocks: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Historical replays and hypothetical shocks in one table (as the StressTest step reports them).

    Parameters
    ----------
    scenarios : iterable of mapping
        Replays: ``name``, ``start``, ``end``, ``status``, ``loss``, ``worst_day_return``, ``max_drawdown``.
    shocks : iterable of mapping
        Shocks: ``name``, ``loss``.

    Returns
    -------
    DataFrame of shape (n_scenarios + n_shocks, 7)
        Columns ``scenario``, ``kind`` (``historical``/``hypothetical``), ``window``, ``status``, ``loss``,
        ``worst_day_return``, ``max_drawdown``; losses are positive fractions of value (NaN: no data).
    """
    rows = [
        {
            "scenario": str(s["name"]),
            "kind": "historical",
            "window": f"{s.get('start')} to {s.get('end')}",
            "status": str(s.get("status", "")),
            "loss": number(s.get("loss")),
            "worst_day_return": number(s.get("worst_day_return")),
            "max_drawdown": number(s.get("max_drawdown")),
        }
        for s in scenarios
    ]
    rows += [
        {
            "scenario": str(s["name"]),
            "kind": "hypothetical",
            "window": "",
            "status": "shock",
            "loss": number(s.get("loss")),
            "worst_day_return": math.nan,
            "max_drawdown": math.nan,
        }
        for s in shocks
    ]
    columns = ["scenario", "kind", "window", "status", "loss", "worst_day_return", "max_drawdown"]
    return pd.DataFrame(rows, columns=columns)


def tail_table(
    monte_carlo: Mapping[str, float],
    var: Mapping[str, Mapping[str, Any]],
    cvar: Mapping[str, Mapping[str, Any]],
    *,
    levels: Sequence[float],
    horizon: int,
    historical_horizon: int = 1,
) -> pd.DataFrame:
    """VaR and CVaR by method and level: the Monte Carlo row at ``horizon``, the others at ``historical_horizon``.

    Parameters
    ----------
    monte_carlo : mapping of str to float
        The simulation's figures, keyed ``var_<level:g>``/``cvar_<level:g>`` (AggregateRisk's ``monte_carlo``).
    var, cvar : mapping of method to mapping of level key to float
        The historical and parametric estimates (``RiskReport.to_dict()``'s ``var`` and ``cvar``; a level key is
        ``repr(level)``, e.g. ``"0.95"``).
    levels : sequence of float
    horizon : int
        Days of the Monte Carlo figures.
    historical_horizon : int, default 1
        Days of the other figures.

    Returns
    -------
    DataFrame of shape (1 + n_methods, 2 + 2 n_levels)
        Columns ``method``, ``horizon_days``, then ``var_<level:g>`` and ``cvar_<level:g>`` per level
        (positive losses; NaN where a method gave none).
    """
    rows: list[dict[str, Any]] = [
        {"method": "monte_carlo", "horizon_days": int(horizon)}
        | {f"{m}_{level:g}": number(monte_carlo.get(f"{m}_{level:g}")) for level in levels for m in ("var", "cvar")}
    ]
    for method in dict.fromkeys([*var, *cvar]):
        row: dict[str, Any] = {"method": method, "horizon_days": int(historical_horizon)}
        for level in levels:
            row[f"var_{level:g}"] = number(var.get(method, {}).get(repr(float(level))))
            row[f"cvar_{level:g}"] = number(cvar.get(method, {}).get(repr(float(level))))
        rows.append(row)
    columns = ["method", "horizon_days"] + [f"{m}_{level:g}" for level in levels for m in ("var", "cvar")]
    return pd.DataFrame(rows, columns=columns)


def limits_table(
    limits: Mapping[str, float],
    measured: Mapping[str, float],
    breaches: Iterable[Mapping[str, Any]],
    unmeasured: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every limit with its measured value and grade (``ok`` below the warning band).

    Parameters
    ----------
    limits, measured : mapping of str to float
        CheckLimits' ``limits`` and ``measured``.
    breaches : iterable of mapping
        CheckLimits' ``breaches`` (``limit``, ``severity``).
    unmeasured : mapping of str to str, optional
        CheckLimits' ``unmeasured``: limits the run's data cannot measure, with the reason.

    Returns
    -------
    DataFrame of shape (n_limits, 6)
        Columns ``limit``, ``threshold``, ``measured``, ``ratio``, ``severity`` (``critical``, ``breach``,
        ``warning``, ``ok`` or ``not measured``) and ``note``; most severe first, then by ratio.
    """
    severity = {str(b["limit"]): str(b["severity"]) for b in breaches}
    missing = dict(unmeasured or {})
    rank = {"critical": 0, "breach": 1, "warning": 2, "not measured": 3, "ok": 4}
    rows = []
    for name, threshold in limits.items():
        value = number(measured.get(name))
        grade = severity.get(name, "not measured" if name in missing or not math.isfinite(value) else "ok")
        rows.append(
            {
                "limit": name,
                "threshold": float(threshold),
                "measured": value,
                "ratio": value / float(threshold) if float(threshold) else math.nan,
                "severity": grade,
                "note": missing.get(name, ""),
            }
        )
    table = pd.DataFrame(rows, columns=["limit", "threshold", "measured", "ratio", "severity", "note"])
    order = table.assign(_rank=table["severity"].map(rank), _ratio=-table["ratio"].fillna(0.0))
    return table.loc[order.sort_values(["_rank", "_ratio", "limit"], kind="stable").index].reset_index(drop=True)


def hedge_table(proposals: Iterable[Mapping[str, Any]], chosen: str | None) -> pd.DataFrame:
    """The hedge proposals: ``kind``, ``feasible``, ``parameter``, ``turnover``, ``index_weight``, ``cash``, ``chosen``.

    Parameters
    ----------
    proposals : iterable of mapping
        ProposeHedge's ``proposals``.
    chosen : str or None
        The kind of the chosen proposal.

    Returns
    -------
    DataFrame of shape (n_proposals, 7)
    """
    columns = ["kind", "feasible", "parameter", "turnover", "index_weight", "cash"]
    table = pd.DataFrame([{k: p.get(k) for k in columns} for p in proposals], columns=columns)
    return table.assign(chosen=table["kind"] == chosen)
