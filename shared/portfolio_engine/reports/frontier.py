"""The efficient-frontier chart: the frontier, the individual assets, the minimum-variance point and a portfolio."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

# A Figure without pyplot draws with Agg and leaves the caller's backend and global state alone.
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from portfolio_engine.optimization import EfficientFrontier, Moments, OptimizationResult

__all__ = ["frontier_figure_png", "frontier_report_html", "frontier_table"]


def frontier_table(frontier: EfficientFrontier) -> pd.DataFrame:
    """The frontier's points by increasing volatility: ``volatility``, ``expected_return``, ``sharpe``.

    Parameters
    ----------
    frontier : EfficientFrontier

    Returns
    -------
    DataFrame of shape (n_points, 3)
        Sorted by volatility (the minimum-variance point first).
    """
    table = pd.DataFrame(
        {
            "volatility": frontier.volatilities,
            "expected_return": frontier.expected_returns,
            "sharpe": frontier.sharpe_ratios,
        }
    )
    return table.sort_values("volatility", kind="stable").reset_index(drop=True)


def frontier_figure_png(
    frontier: EfficientFrontier,
    *,
    portfolio: OptimizationResult | None = None,
    assets: Moments | None = None,
    title: str,
    dpi: int = 110,
) -> bytes:
    """A PNG: expected return against volatility along the frontier, with the points that matter marked.

    Parameters
    ----------
    frontier : EfficientFrontier
        As :func:`portfolio_engine.optimization.efficient_frontier` returns it (annual units).
    portfolio : OptimizationResult, optional
        The optimized portfolio, marked with its method's name.
    assets : Moments, optional
        Each asset is drawn at ``(sqrt(cov_ii), mu_i)`` and labelled.
    title : str
    dpi : int, default 110

    Returns
    -------
    bytes
        The PNG image.
    """
    table = frontier_table(frontier)
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    ax.plot(table["volatility"], table["expected_return"], color="#1f77b4", linewidth=1.8, label="efficient frontier")
    minimum = table.iloc[0]
    ax.scatter(
        [minimum["volatility"]], [minimum["expected_return"]], marker="*", s=220, color="#2ca02c", zorder=4,
        label=f"minimum variance ({minimum['volatility']:.1%}, {minimum['expected_return']:.1%})",
    )  # fmt: skip
    sharpe = table["sharpe"].to_numpy(dtype=float)
    if np.isfinite(sharpe).any():
        best = table.iloc[int(np.argmax(np.where(np.isfinite(sharpe), sharpe, -np.inf)))]
        ax.scatter(
            [best["volatility"]], [best["expected_return"]], marker="D", s=60, color="#ff7f0e", zorder=4,
            label=f"highest Sharpe on the frontier ({best['sharpe']:.2f})",
        )  # fmt: skip
    if assets is not None:
        vols = np.sqrt(np.clip(np.diag(assets.cov.to_numpy(dtype=float)), 0.0, None))
        ax.scatter(vols, assets.mu.to_numpy(dtype=float), s=25, color="#7f7f7f", zorder=3, label="assets")
        for name, x, y in zip(assets.mu.index, vols, assets.mu.to_numpy(dtype=float), strict=True):
            ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8, color="#555555")
    if portfolio is not None:
        ax.scatter(
            [portfolio.volatility], [portfolio.expected_return], marker="o", s=110, facecolor="none",
            edgecolor="#d62728", linewidth=2.2, zorder=5,
            label=f"portfolio: {portfolio.method} ({portfolio.volatility:.1%}, {portfolio.expected_return:.1%})",
        )  # fmt: skip
    ax.xaxis.set_major_formatter(_percent)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_xlabel("volatility (annual)")
    ax.set_ylabel("expected return (annual)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _percent(value: float, _position: float) -> str:
    return f"{value:.0%}"


def frontier_report_html(
    frontier: EfficientFrontier,
    *,
    portfolio: OptimizationResult | None = None,
    assets: Moments | None = None,
    title: str,
    details: Mapping[str, object] | None = None,
) -> str:
    """A self-contained HTML page: the chart (embedded PNG), the portfolio's weights and the frontier's points.

    Parameters
    ----------
    frontier, portfolio, assets, title
        As in :func:`frontier_figure_png`.
    details : mapping, optional
        Headline facts shown above the chart (regime, as-of date, decision...), in order.

    Returns
    -------
    str
        The HTML document.
    """
    png = base64.b64encode(frontier_figure_png(frontier, portfolio=portfolio, assets=assets, title=title)).decode()
    facts = dict(details or {})
    if portfolio is not None:
        facts |= {
            "method": portfolio.method,
            "expected return": f"{portfolio.expected_return:.2%}",
            "volatility": f"{portfolio.volatility:.2%}",
            "Sharpe ratio": f"{portfolio.sharpe:.2f}" if np.isfinite(portfolio.sharpe) else "n/a",
        }
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{text-align:left}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<table>{rows}</table>" if rows else "",
        f"<img alt='efficient frontier' style='max-width:100%' src='data:image/png;base64,{png}'>",
    ]
    if portfolio is not None:
        weights = pd.DataFrame({"weight": portfolio.weights, "risk share": portfolio.risk_contributions})
        weights = weights.sort_index().sort_values("weight", ascending=False, kind="stable")
        parts += ["<h2>Weights</h2>", weights.to_html(float_format=lambda v: f"{v:.2%}", classes="weights")]
    points = frontier_table(frontier)
    parts += [
        f"<h2>Frontier ({len(points)} points, annual)</h2>",
        points.to_html(index=False, float_format=lambda v: f"{v:.4f}", classes="frontier"),
        "</body></html>",
    ]
    return "".join(parts)
