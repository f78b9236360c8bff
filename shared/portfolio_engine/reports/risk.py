"""The risk report: a Monte Carlo fan chart, a stress bar chart, and an HTML page with the run's tables.

Everything here is pure: the functions take the figures as pandas objects (the tables of ``_risk_tables``,
re-exported here, build them from what the risk steps return) and give PNG bytes or an HTML string.
``spe risk report`` writes them to files.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# A Figure without pyplot draws with Agg and leaves the caller's backend and global state alone.
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from portfolio_engine.reports._risk_tables import (
    fan_frame,
    hedge_table,
    limits_table,
    number,
    stress_table,
    tail_table,
)

__all__ = [
    "fan_chart_png",
    "fan_frame",
    "hedge_table",
    "limits_table",
    "risk_figure_png",
    "risk_report_html",
    "stress_chart_png",
    "stress_table",
    "tail_table",
]

_KIND_COLORS = {"historical": "#d62728", "hypothetical": "#ff7f0e"}
_SEVERITY_COLORS = {"warning": "#fff3cd", "breach": "#f8d7da", "critical": "#f1aeb5"}


def _band_pairs(levels: Sequence[float]) -> list[tuple[float, float]]:
    """Symmetric pairs ``(q, 1 - q)`` among ``levels``, widest first."""
    pairs = []
    for low in sorted(level for level in levels if level < 0.5):
        high = next((h for h in levels if math.isclose(h, 1.0 - low, abs_tol=1e-9)), None)
        if high is not None:
            pairs.append((low, high))
    return pairs


def _percent(value: float, _position: float) -> str:
    return f"{value:.0%}"


def _draw_fan(ax: Axes, bands: pd.DataFrame, var_marks: Mapping[str, float] | None) -> None:
    steps = bands.index.to_numpy()
    levels = [float(c) for c in bands.columns]
    pairs = _band_pairs(levels)
    for i, (low, high) in enumerate(pairs):
        alpha = 0.15 + 0.45 * (i + 1) / max(len(pairs), 1)
        ax.fill_between(
            steps, bands[low].to_numpy(), bands[high].to_numpy(), color="#1f77b4", alpha=alpha, linewidth=0,
            label=f"{low:.0%} to {high:.0%}",
        )  # fmt: skip
    paired = {level for pair in pairs for level in pair}
    for level in levels:
        if level in paired:
            continue
        is_median = math.isclose(level, 0.5)
        ax.plot(
            steps, bands[level].to_numpy(), color="#08306b" if is_median else "#555555",
            linewidth=1.8 if is_median else 1.0, linestyle="-" if is_median else "--",
            label="median" if is_median else f"{level:.0%} quantile",
        )  # fmt: skip
    for (label, loss), color in zip((var_marks or {}).items(), ("#d62728", "#9467bd", "#8c564b"), strict=False):
        if math.isfinite(loss):
            ax.axhline(1.0 - loss, color=color, linestyle=":", linewidth=1.4, label=f"{label}: {loss:.1%} loss")
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_xlim(steps.min(), steps.max())
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trading days ahead")
    ax.set_ylabel("portfolio value (today = 100%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def _draw_stress(ax: Axes, stress: pd.DataFrame, loss_limit: float | None) -> None:
    shown = stress.assign(loss=stress["loss"].map(number)).dropna(subset=["loss"])
    shown = shown.sort_values("loss", kind="stable")
    handles: list[Any] = []
    if shown.empty:
        ax.text(0.5, 0.5, "no scenario with data", ha="center", va="center", transform=ax.transAxes)
    else:
        colors = [_KIND_COLORS.get(str(kind), "#7f7f7f") for kind in shown["kind"]]
        ax.barh(shown["scenario"].astype(str), shown["loss"].to_numpy(), color=colors)
        kinds = [kind for kind in _KIND_COLORS if (shown["kind"] == kind).any()]
        handles = [Patch(color=_KIND_COLORS[kind], label=kind) for kind in kinds]
    if loss_limit is not None and math.isfinite(loss_limit):
        handles.append(
            ax.axvline(loss_limit, color="black", linestyle="--", linewidth=1.0, label=f"limit {loss_limit:.0%}")
        )
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.xaxis.set_major_formatter(_percent)
    ax.set_xlabel("loss (fraction of value; negative is a gain)")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8)


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def fan_chart_png(
    bands: pd.DataFrame, *, title: str, var_marks: Mapping[str, float] | None = None, dpi: int = 110
) -> bytes:
    """A PNG: the Monte Carlo portfolio value's quantile bands per day (a fan chart).

    Parameters
    ----------
    bands : DataFrame of shape (horizon + 1, n_levels)
        As :func:`fan_frame` returns it: symmetric levels ``(q, 1 - q)`` are shaded as bands, the median and
        any unpaired level drawn as lines.
    title : str
    var_marks : mapping of str to float, optional
        Losses to mark as horizontal lines at ``1 - loss`` (e.g. ``{"VaR 99% (21d)": 0.12}``).
    dpi : int, default 110

    Returns
    -------
    bytes
        The PNG image (9 x 5.5 inches).
    """
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    _draw_fan(ax, bands, var_marks)
    ax.set_title(title)
    return _png(fig, dpi)


def stress_chart_png(stress: pd.DataFrame, *, title: str, loss_limit: float | None = None, dpi: int = 110) -> bytes:
    """A PNG: one horizontal bar per stress scenario, its loss, coloured by kind.

    Parameters
    ----------
    stress : DataFrame
        As :func:`stress_table` returns it (columns ``scenario``, ``kind``, ``loss``; a missing loss is skipped).
    title : str
    loss_limit : float, optional
        A loss limit drawn as a vertical line (e.g. the drawdown limit).
    dpi : int, default 110

    Returns
    -------
    bytes
        The PNG image (9 x 5.5 inches).
    """
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    _draw_stress(ax, stress, loss_limit)
    ax.set_title(title)
    return _png(fig, dpi)


def risk_figure_png(
    bands: pd.DataFrame,
    stress: pd.DataFrame,
    *,
    title: str,
    var_marks: Mapping[str, float] | None = None,
    loss_limit: float | None = None,
    dpi: int = 110,
) -> bytes:
    """A PNG of one figure: the fan chart (left) and the stress bar chart (right).

    Parameters are those of :func:`fan_chart_png` and :func:`stress_chart_png`.

    Returns
    -------
    bytes
        The PNG image (15 x 6 inches).
    """
    fig = Figure(figsize=(15, 6), layout="constrained")
    fan_ax, stress_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _draw_fan(fan_ax, bands, var_marks)
    fan_ax.set_title("Monte Carlo portfolio value")
    _draw_stress(stress_ax, stress, loss_limit)
    stress_ax.set_title("Stress scenarios")
    fig.suptitle(title)
    return _png(fig, dpi)


def _facts_html(facts: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    return f"<table class='facts'>{rows}</table>" if rows else ""


def _pct(value: Any) -> str:
    value = number(value)
    return "n/a" if not math.isfinite(value) else f"{value:.2%}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _tail_header(column: str) -> str:
    """``var_0.95 -> VaR 95%``, ``cvar_0.975 -> CVaR 97.5%``, ``horizon_days -> horizon (days)``."""
    kind, _, level = column.partition("_")
    if kind in ("var", "cvar") and level:
        return f"{'VaR' if kind == 'var' else 'CVaR'} {float(level) * 100:g}%"
    return {"horizon_days": "horizon (days)"}.get(column, column)


def _table_html(frame: pd.DataFrame, css: str, percent: Iterable[str] = (), row_class: str | None = None) -> str:
    """A table with escaped cells, percent columns formatted, and rows classed by ``row_class``'s value."""
    percent = set(percent)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(
            f"<td>{html.escape(_pct(row[c]) if c in percent else _cell(row[c]))}</td>" for c in frame.columns
        )
        klass = f" class='{html.escape(str(row[row_class]))}'" if row_class else ""
        body.append(f"<tr{klass}>{cells}</tr>")
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def risk_report_html(
    bands: pd.DataFrame,
    stress: pd.DataFrame,
    *,
    title: str,
    tails: pd.DataFrame,
    limits: pd.DataFrame,
    details: Mapping[str, object] | None = None,
    hedge: pd.DataFrame | None = None,
    hedge_message: str | None = None,
    var_marks: Mapping[str, float] | None = None,
    loss_limit: float | None = None,
) -> str:
    """A self-contained HTML page: the fan chart and stress chart (embedded PNGs) and the report's tables.

    Parameters
    ----------
    bands, stress, var_marks, loss_limit
        As in :func:`fan_chart_png` and :func:`stress_chart_png`; ``stress`` is also shown as a table.
    title : str
    tails : DataFrame
        As :func:`tail_table` returns it.
    limits : DataFrame
        As :func:`limits_table` returns it; rows are coloured by severity.
    details : mapping, optional
        Headline facts shown first (portfolio, as-of date, regime, paths...), in order.
    hedge : DataFrame, optional
        As :func:`hedge_table` returns it (None: no limit breached, no proposal).
    hedge_message : str, optional
        The hedge step's one-line summary.

    Returns
    -------
    str
        The HTML document.
    """
    fan = base64.b64encode(fan_chart_png(bands, title="Monte Carlo portfolio value", var_marks=var_marks)).decode()
    bars = base64.b64encode(stress_chart_png(stress, title="Stress scenarios", loss_limit=loss_limit)).decode()
    severity_css = "".join(f"tr.{name} td{{background:{color}}}" for name, color in _SEVERITY_COLORS.items())
    headers = {c: _tail_header(str(c)) for c in tails.columns}
    tail_columns = [headers[c] for c in tails.columns if str(c).startswith(("var_", "cvar_"))]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        f"td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{text-align:left}}{severity_css}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _facts_html(details or {}),
        f"<img alt='fan chart' style='max-width:100%' src='data:image/png;base64,{fan}'>",
        "<h2>Value at Risk and Conditional VaR</h2>",
        "<p>Losses as fractions of today's value; Monte Carlo over its horizon, the other methods over one day.</p>",
        _table_html(tails.rename(columns=headers), "tail", percent=tail_columns),
        "<h2>Stress tests</h2>",
        f"<img alt='stress chart' style='max-width:100%' src='data:image/png;base64,{bars}'>",
        _table_html(stress, "stress", percent=("loss", "worst_day_return", "max_drawdown")),
        "<h2>Limits</h2>",
        _table_html(
            limits.rename(columns={"ratio": "of limit"}), "limits", percent=("of limit",), row_class="severity"
        ),
        "<h2>Hedge proposals</h2>",
    ]
    if hedge is None:
        parts.append("<p>No limit is breached: no hedge proposed.</p>")
    else:
        if hedge_message:
            parts.append(f"<p>{html.escape(hedge_message)} Proposals are never executed.</p>")
        parts.append(_table_html(hedge, "hedge"))
    parts.append("</body></html>")
    return "".join(parts)
