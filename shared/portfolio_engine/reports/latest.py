"""A portfolio's latest committed run as one self-contained HTML page (``GET /portfolios/<name>/report``).

Pure, like the rest of ``reports``: the committed result (the portfolio view's ``latest``), the holdings and
what the run left in the lake (the fan chart's quantiles, the stress scenarios, the limits in force) come in
as mappings; an HTML string with its charts as ``data:`` PNGs comes out. The charts and tables are those of
the risk report (:mod:`portfolio_engine.reports.risk`); the weights chart is drawn here.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from portfolio_engine.reports._risk_tables import fan_frame, limits_table, number, stress_table, tail_table
from portfolio_engine.reports.risk import (
    _SEVERITY_COLORS,
    _facts_html,
    _table_html,
    _tail_header,
    fan_chart_png,
    stress_chart_png,
)

__all__ = ["latest_report_html", "weights_chart_png"]

_CSS = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{text-align:left}"
    "img{max-width:100%;display:block;margin:1em 0}.note{color:#666}"
)
_DRAWDOWN_KEY = "p_drawdown_gt_"
_HISTORICAL = {
    "volatility": "historical volatility (annual)",
    "max_drawdown": "historical max drawdown",
    "current_drawdown": "current drawdown",
}
#: method -> level key (``repr(level)``) -> loss, as ``tail_table`` reads the historical and parametric figures.
ByMethod = dict[str, dict[str, float]]


def _pct(value: Any) -> str:
    value = number(value)
    return "n/a" if not math.isfinite(value) else f"{value:.2%}"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _img(alt: str, png: bytes) -> str:
    return f"<img alt='{html.escape(alt)}' src='{_data_uri(png)}'>"


def weights_chart_png(weights: pd.DataFrame, *, title: str, dpi: int = 110) -> bytes:
    """A PNG: horizontal bars of each asset's weights, one bar per column of ``weights``.

    Parameters
    ----------
    weights : DataFrame of shape (n_assets, n_series)
        Index the assets, columns the series to compare (e.g. ``target`` and ``held``); NaN draws no bar.
    title : str
    dpi : int, default 110

    Returns
    -------
    bytes
        The PNG image (9 inches wide, taller with more assets).
    """
    fig = Figure(figsize=(9, max(3.0, 0.3 * len(weights) * max(len(weights.columns), 1) + 1.5)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / max(len(weights.columns), 1)
    positions = range(len(weights))
    for i, (column, color) in enumerate(zip(weights.columns, ("#1f77b4", "#ff7f0e", "#2ca02c"), strict=False)):
        values = weights[column].fillna(0.0).to_numpy()
        ax.barh([p + (i - (len(weights.columns) - 1) / 2) * height for p in positions], values, height=height,
                color=color, label=str(column))  # fmt: skip
    ax.set_yticks(list(positions), [str(a) for a in weights.index])
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.xaxis.set_major_formatter(lambda value, _position: f"{value:.0%}")
    ax.set_xlabel("weight (fraction of value)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _historical_tails(
    historical: Mapping[str, float],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """``var_<method>_<level>_1d`` figures (the committed ``risk.historical``) as method -> level -> value."""
    found: dict[str, ByMethod] = {"var": {}, "cvar": {}}
    for key, value in historical.items():
        measure, _, rest = key.partition("_")
        if measure not in found or not rest.endswith("_1d"):
            continue
        method, _, level = rest.removesuffix("_1d").rpartition("_")
        if method:
            found[measure].setdefault(method, {})[repr(float(level))] = float(value)
    return found["var"], found["cvar"]


def _weight(value: Any) -> float:
    return round(number(value), 8) + 0.0


def _int(value: Any) -> int:
    value = number(value)
    return int(value) if math.isfinite(value) else 0


def _levels(monte_carlo: Mapping[str, Any]) -> list[float]:
    return sorted(float(k.removeprefix("var_")) for k in monte_carlo if k.startswith("var_"))


def _regime_section(regime: Mapping[str, Any]) -> list[str]:
    facts = {
        "regime": regime.get("regime") or "none (no regime model)",
        "model": regime.get("model") or "n/a",
        "model version": regime.get("model_version") or "n/a",
        "as of": regime.get("as_of") or "n/a",
    }
    probabilities, following = regime.get("probabilities") or {}, regime.get("next_probabilities") or {}
    names = list(regime.get("state_names") or probabilities)
    table = pd.DataFrame(
        {
            "state": names,
            "probability": [number(probabilities.get(s)) for s in names],
            "next day": [number(following.get(s)) for s in names],
        }
    )
    parts = ["<h2>Regime</h2>", _facts_html(facts)]
    if names:
        parts.append(_table_html(table, "regime", percent=("probability", "next day")))
    return parts


def _weights_section(latest: Mapping[str, Any], held: Mapping[str, float] | None) -> list[str]:
    target = latest.get("target_weights") or {}
    held = held if held is not None else latest.get("committed_weights") or {}
    assets = sorted({*target, *held}, key=lambda a: (-number(target.get(a, 0.0)), a))
    # Rounded past display precision, + 0.0: an optimizer's -0.0 or -1e-12 shows as 0.00%, not -0.00%.
    frame = pd.DataFrame(
        {"target": [_weight(target.get(a)) for a in assets], "held": [_weight(held.get(a)) for a in assets]},
        index=pd.Index(assets, name="asset"),
    )
    table = frame.reset_index().assign(difference=lambda f: (f["held"] - f["target"]).round(8) + 0.0)
    parts = ["<h2>Target and held weights</h2>"]
    reason = latest.get("decision_reason")
    moved = "rebalanced" if latest.get("rebalanced") else "not rebalanced"
    parts.append(f"<p>{html.escape(moved)}{f' ({html.escape(str(reason))})' if reason else ''}.</p>")
    parts.append(_table_html(table, "weights", percent=("target", "held", "difference")))
    if assets:
        parts.append(_img("weights chart", weights_chart_png(frame, title="Target and held weights")))
    return parts


def _risk_section(risk: Mapping[str, Any], fan_chart: Mapping[str, Any] | None) -> list[str]:
    monte_carlo, historical = risk.get("monte_carlo") or {}, risk.get("historical") or {}
    horizon, levels = _int(risk.get("horizon_days")), _levels(monte_carlo)
    facts = {
        "Monte Carlo": f"{_int(risk.get('n_paths')):,} paths x {horizon} trading days",
        "mean return (horizon)": _pct(monte_carlo.get("mean")),
        "standard deviation (horizon)": _pct(monte_carlo.get("std")),
        **{
            f"P(drawdown > {float(k.removeprefix(_DRAWDOWN_KEY)):.0%})": _pct(v)
            for k, v in monte_carlo.items()
            if k.startswith(_DRAWDOWN_KEY)
        },
        **{name: _pct(historical.get(key)) for key, name in _HISTORICAL.items()},
    }
    if "beta" in historical:
        facts["beta"] = f"{number(historical['beta']):.2f}"
    parts = ["<h2>Risk</h2>", _facts_html(facts)]
    if fan_chart and fan_chart.get("values"):
        bands = fan_frame(fan_chart["levels"], fan_chart["values"])
        marks = {f"VaR {lv:.0%} ({horizon}d)": number(monte_carlo.get(f"var_{lv:g}")) for lv in levels[-2:]}
        title = f"Monte Carlo portfolio value over {horizon} trading days"
        parts.append(_img("fan chart", fan_chart_png(bands, title=title, var_marks=marks)))
    else:
        parts.append("<p class='note'>The run's Monte Carlo quantiles are not in the lake: no fan chart.</p>")
    var, cvar = _historical_tails(historical)
    tails = tail_table(monte_carlo, var, cvar, levels=levels, horizon=horizon)
    headers = {c: _tail_header(str(c)) for c in tails.columns}
    percent = [headers[c] for c in tails.columns if str(c).startswith(("var_", "cvar_"))]
    parts += [
        "<h3>Value at Risk and Conditional VaR</h3>",
        "<p>Losses as fractions of today's value; Monte Carlo over its horizon, the other methods over one day.</p>",
        _table_html(tails.rename(columns=headers), "tail", percent=percent),
    ]
    return parts


def _stress_section(stress: Mapping[str, Any], scenarios: Mapping[str, Any] | None, loss_limit: float) -> list[str]:
    facts = {"worst scenario": stress.get("worst_scenario") or "none", "worst loss": _pct(stress.get("worst_loss"))}
    parts = ["<h2>Stress tests</h2>", _facts_html(facts)]
    if scenarios is not None:
        table = stress_table(scenarios.get("scenarios") or [], scenarios.get("shocks") or [])
        limit = loss_limit if math.isfinite(loss_limit) else None
        parts.append(_img("stress chart", stress_chart_png(table, title="Stress scenarios", loss_limit=limit)))
        parts.append(_table_html(table, "stress", percent=("loss", "worst_day_return", "max_drawdown")))
    return parts


def _limits_section(latest: Mapping[str, Any], thresholds: Mapping[str, float] | None) -> list[str]:
    limits, breaches = latest.get("limits") or {}, list(latest.get("breaches") or [])
    measured = limits.get("measured") or {}
    known = {**{str(b["limit"]): number(b.get("threshold")) for b in breaches}, **(thresholds or {})}
    known |= {name: math.nan for name in measured if name not in known}
    table = limits_table(known, measured, breaches, limits.get("unmeasured"))
    parts = ["<h2>Limits and breaches</h2>", _facts_html({"worst severity": limits.get("worst_severity") or "none"})]
    parts.append(
        _table_html(table.rename(columns={"ratio": "of limit"}), "limits", percent=("of limit",), row_class="severity")
    )
    if breaches:
        items = "".join(f"<li>{html.escape(str(b.get('message', b.get('limit'))))}</li>" for b in breaches)
        parts.append(f"<ul class='breaches'>{items}</ul>")
    else:
        parts.append("<p>No limit breached or near its threshold.</p>")
    return parts


def _closing_sections(latest: Mapping[str, Any]) -> list[str]:
    hedge, alerts = latest.get("hedge"), latest.get("alerts")
    parts = ["<h2>Hedge</h2>"]
    if hedge:
        parts.append(f"<p>{html.escape(str(hedge.get('message', '')))} Proposals are never executed.</p>")
    else:
        parts.append("<p>No limit is breached: no hedge proposed.</p>")
    parts.append("<h2>Alerts</h2>")
    if alerts:
        counts = {k: alerts.get(k, 0) for k in ("sent", "suppressed", "failed")}
        parts.append(_facts_html(counts))
    else:
        parts.append("<p>No alert was dispatched.</p>")
    adaptations: Sequence[str] = latest.get("adaptations") or []
    if adaptations:
        items = "".join(f"<li>{html.escape(str(a))}</li>" for a in adaptations)
        parts.append(f"<h2>Adaptations of the spec to the run's data</h2><ul>{items}</ul>")
    return parts


def latest_report_html(
    portfolio: str,
    latest: Mapping[str, Any],
    *,
    held: Mapping[str, float] | None = None,
    fan_chart: Mapping[str, Any] | None = None,
    stress: Mapping[str, Any] | None = None,
    limits: Mapping[str, float] | None = None,
) -> str:
    """A self-contained HTML page of a portfolio's latest committed run (inline CSS, charts as data: URIs).

    Parameters
    ----------
    portfolio : str
    latest : mapping
        The committed result (``PortfolioView.latest``: ``run_id``, ``as_of``, ``regime``, ``target_weights``,
        ``risk``, ``stress``, ``limits``, ``breaches``, ``hedge``, ``alerts``...).
    held : mapping of str to float, optional
        The weights held (the portfolio's holdings); the committed weights when None.
    fan_chart : mapping, optional
        The run's Monte Carlo quantiles (``risk/<run>/report.json``'s ``fan_chart``: ``levels`` and ``values``
        of shape (horizon + 1, n_levels)); no fan chart when None.
    stress : mapping, optional
        The run's stress document (``risk/<run>/stress.json``: ``scenarios`` and ``shocks``); the worst
        scenario only when None.
    limits : mapping of str to float, optional
        The limits in force for the run (its ``spec_in_force``); the breached limits' thresholds when None.

    Returns
    -------
    str
        The HTML document.
    """
    run_id, as_of = latest.get("run_id", "?"), latest.get("as_of", "?")
    title = f"Portfolio {portfolio}: run {run_id} as of {as_of}"
    facts = {
        "run": run_id,
        "committed at": latest.get("committed_at", "n/a"),
        "as of": as_of,
        "method": latest.get("method", "n/a"),
        "policy": latest.get("policy") or "n/a",
        "expected return (annual)": _pct(latest.get("expected_return")),
        "volatility (annual)": _pct(latest.get("volatility")),
        "Sharpe ratio": f"{number(latest.get('sharpe')):.2f}",
    }
    severity_css = "".join(f"tr.{name} td{{background:{color}}}" for name, color in _SEVERITY_COLORS.items())
    loss_limit = number((limits or {}).get("max_drawdown"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}{severity_css}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _facts_html(facts),
        *_regime_section(latest.get("regime") or {}),
        *_weights_section(latest, held),
        *_risk_section(latest.get("risk") or {}, fan_chart),
        *_stress_section(latest.get("stress") or {}, stress, loss_limit),
        *_limits_section(latest, limits),
        *_closing_sections(latest),
        "</body></html>",
    ]
    return "".join(parts)
