"""The backtest report: equity, drawdown, rolling Sharpe, weights and attribution charts, and an HTML page.

Pure: the functions take the backtest's outputs as pandas objects and give PNG bytes or an HTML string;
``spe backtest --report`` writes them to files.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

# A Figure without pyplot draws with Agg and leaves the caller's backend and global state alone.
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from portfolio_engine.backtest._perf_rolling import rolling_sharpe
from portfolio_engine.exceptions import DataError
from portfolio_engine.reports.regime import _colors

__all__ = ["backtest_figures_png", "backtest_report_html"]

ROLLING_DAYS = 252
_STRATEGY_COLORS = ("#08306b", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#17becf")
_ASSET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
_CONTRIBUTION = "contribution (annual)"


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _percent(value: float, _position: float) -> str:
    return f"{value:.0%}"


def _shade_regimes(ax: Axes, dates: pd.DatetimeIndex, regimes: pd.DataFrame | None) -> None:
    """Shade ``ax`` by the most probable state on each of ``dates`` (the last known probabilities, forward-filled)."""
    if regimes is None or regimes.empty or len(dates) == 0:
        return
    proba = regimes.dropna().sort_index().reindex(dates, method="ffill")
    known = proba.notna().all(axis=1)
    states = proba[known].idxmax(axis=1).reindex(dates)
    colors = _colors(len(regimes.columns))
    for i, name in enumerate(regimes.columns):
        mask = (states == name).to_numpy()
        if mask.any():
            ax.fill_between(
                dates, 0, 1, where=mask, transform=ax.get_xaxis_transform(), color=colors[i], alpha=0.15,
                linewidth=0, label=f"regime: {name}",
            )  # fmt: skip


def _draw_equity(ax: Axes, equity: pd.DataFrame, regimes: pd.DataFrame | None) -> None:
    for i, name in enumerate(equity.columns):
        series = equity[name].dropna()
        ax.plot(
            series.index, series.to_numpy(), color=_STRATEGY_COLORS[i % len(_STRATEGY_COLORS)],
            linewidth=1.6 if i == 0 else 1.0, label=str(name),
        )  # fmt: skip
    if (equity.dropna(how="all") > 0).all().all():
        ax.set_yscale("log")
        # Plain numbers on the log axis, not powers of ten (values stay near 1).
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:.3g}"))
    _shade_regimes(ax, pd.DatetimeIndex(equity.index), regimes)
    ax.set_ylabel("value (log scale)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _draw_drawdown(ax: Axes, equity: pd.DataFrame, regimes: pd.DataFrame | None) -> None:
    for i, name in enumerate(equity.columns):
        series = equity[name].dropna()
        drawdown = series / series.cummax() - 1.0
        ax.plot(
            drawdown.index, drawdown.to_numpy(), color=_STRATEGY_COLORS[i % len(_STRATEGY_COLORS)],
            linewidth=1.2 if i == 0 else 0.8, label=str(name),
        )  # fmt: skip
    _shade_regimes(ax, pd.DatetimeIndex(equity.index), regimes)
    ax.yaxis.set_major_formatter(_percent)
    ax.set_ylabel("drawdown")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def _draw_rolling_sharpe(ax: Axes, net_returns: pd.Series) -> None:
    if len(net_returns) < 2:
        ax.text(0.5, 0.5, "fewer than two days", ha="center", va="center", transform=ax.transAxes)
        return
    days = min(ROLLING_DAYS, len(net_returns))
    sharpe = rolling_sharpe(net_returns.astype("float64"), days)
    ax.plot(sharpe.index, sharpe.to_numpy(), color=_STRATEGY_COLORS[0], linewidth=1.0)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_ylabel(f"rolling {days}-day Sharpe")
    ax.grid(alpha=0.3)


def _draw_weights(ax: Axes, weights: pd.DataFrame, end: pd.Timestamp) -> None:
    """Stacked weights held from each decision to the next and the last to ``end`` (a step area); cash on top."""
    frame = weights.astype("float64").fillna(0.0)
    if frame.empty:
        ax.text(0.5, 0.5, "no decisions", ha="center", va="center", transform=ax.transAxes)
        return
    if end > frame.index[-1]:
        frame.loc[end] = frame.iloc[-1]  # the last target is held to the end of the run
    cash = 1.0 - frame.sum(axis=1)
    if (cash > 1e-9).any():
        frame = frame.assign(cash=cash.clip(lower=0.0))
    dates = pd.DatetimeIndex(frame.index)
    if (frame < -1e-12).to_numpy().any():
        # Shorts do not stack: draw each weight as a step line instead.
        for column in frame.columns:
            ax.step(dates, frame[column].to_numpy(), where="post", linewidth=1.0, label=str(column))
    else:
        bottom = np.zeros(len(frame))
        for i, column in enumerate(frame.columns):
            top = bottom + frame[column].to_numpy()
            color = "#dddddd" if column == "cash" else _ASSET_COLORS[i % len(_ASSET_COLORS)]
            ax.fill_between(dates, bottom, top, step="post", color=color, linewidth=0, label=str(column))
            bottom = top
        ax.set_ylim(0.0, max(1.0, float(bottom.max())))
    ax.yaxis.set_major_formatter(_percent)
    ax.set_ylabel("weight")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _contributions(value: pd.DataFrame | pd.Series) -> pd.Series:
    """The bars of one attribution output: a factor summary's contribution column, or Brinson's totals."""
    if isinstance(value, pd.DataFrame):
        column = _CONTRIBUTION if _CONTRIBUTION in value.columns else value.columns[-1]
        return value[column].astype("float64")
    return pd.Series(value, dtype="float64")


def _draw_attribution(ax: Axes, name: str, value: pd.DataFrame | pd.Series) -> None:
    bars = _contributions(value).dropna()
    colors = ["#7f7f7f" if str(label) == "total" else ("#2ca02c" if v >= 0 else "#d62728") for label, v in bars.items()]
    ax.barh([str(label) for label in bars.index], bars.to_numpy(), color=colors)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _p: f"{v:.1%}")
    ax.set_title(name)
    ax.grid(alpha=0.3, axis="x")


def _check(equity: pd.DataFrame, net_returns: pd.Series) -> None:
    if not isinstance(equity, pd.DataFrame) or equity.empty:
        raise DataError(
            f"equity must be a non-empty DataFrame (date x [strategy, benchmarks...]); got {type(equity).__name__}.",
            hint="Pass pd.DataFrame({'strategy': result.equity, 'benchmark': ...}).",
        )
    if not isinstance(net_returns, pd.Series) or net_returns.empty:
        raise DataError(
            f"net_returns must be a non-empty Series; got {type(net_returns).__name__}.",
            hint="Pass result.net_returns.",
        )


def backtest_figures_png(
    *,
    equity: pd.DataFrame,
    net_returns: pd.Series,
    weights: pd.DataFrame,
    regimes: pd.DataFrame | None = None,
    attribution: Mapping[str, pd.DataFrame | pd.Series] | None = None,
    title: str = "Backtest",
    dpi: int = 100,
) -> dict[str, bytes]:
    """The report's figures as PNGs: equity, drawdown, rolling Sharpe, weights and (if given) attribution.

    Parameters
    ----------
    equity : DataFrame of shape (n_days, 1 + n_benchmarks)
        Value of the strategy (first column) and each benchmark, drawn on a log scale when all positive.
    net_returns : Series of shape (n_days,)
        The strategy's daily net returns (rolling Sharpe over 252 days, or the whole series if shorter).
    weights : DataFrame of shape (n_decisions, n_assets)
        Target weights at each decision date, held to the next (stacked; cash shown when positive).
    regimes : DataFrame of shape (n_dates, n_states), optional
        State probabilities; the most probable state shades the equity and drawdown charts.
    attribution : mapping of str to DataFrame or Series, optional
        ``FactorAttribution.summary()`` outputs (their ``contribution (annual)`` column is drawn) or
        ``BrinsonAttribution.total()`` outputs; one bar chart each, in one figure.
    title : str, default "Backtest"
    dpi : int, default 100

    Returns
    -------
    dict of str to bytes
        Keys ``equity``, ``drawdown``, ``rolling_sharpe``, ``weights`` and, with attributions, ``attribution``.

    Raises
    ------
    DataError
        Empty ``equity`` or ``net_returns``.
    """
    _check(equity, net_returns)
    out: dict[str, bytes] = {}
    fig = Figure(figsize=(11, 5), layout="constrained")
    _draw_equity(fig.subplots(), equity, regimes)
    fig.suptitle(f"{title}: equity against benchmarks")
    out["equity"] = _png(fig, dpi)
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    _draw_drawdown(fig.subplots(), equity, regimes)
    fig.suptitle("Drawdowns")
    out["drawdown"] = _png(fig, dpi)
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    _draw_rolling_sharpe(fig.subplots(), net_returns)
    fig.suptitle("Rolling Sharpe ratio (net of costs)")
    out["rolling_sharpe"] = _png(fig, dpi)
    fig = Figure(figsize=(11, 4), layout="constrained")
    _draw_weights(fig.subplots(), weights, pd.Timestamp(net_returns.index[-1]))
    fig.suptitle("Target weights over time")
    out["weights"] = _png(fig, dpi)
    if attribution:
        fig = Figure(figsize=(5.5 * len(attribution), 4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(attribution)))
        for ax, (name, value) in zip(axes, attribution.items(), strict=True):
            _draw_attribution(ax, str(name), value)
        fig.suptitle("Attribution (annual contributions; Brinson: linked effects)")
        out["attribution"] = _png(fig, dpi)
    return out


def _float(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def _table(frame: pd.DataFrame | pd.Series, css: str) -> str:
    """An escaped HTML table with compact floats."""
    if isinstance(frame, pd.Series):
        frame = frame.to_frame(name=str(frame.name) if frame.name is not None else "value")
    return frame.to_html(classes=css, float_format=_float, na_rep="n/a", border=0)


def _regime_table(regimes: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Share of the backtest's days spent in each most probable state."""
    proba = regimes.dropna().sort_index().reindex(dates, method="ffill").dropna()
    states = proba.idxmax(axis=1)
    share = states.value_counts(normalize=True).reindex(regimes.columns, fill_value=0.0)
    return pd.DataFrame({"share of days": share.astype("float64")}).rename_axis("most probable state")


def backtest_report_html(
    *,
    title: str,
    equity: pd.DataFrame,
    net_returns: pd.Series,
    weights: pd.DataFrame,
    metrics: pd.DataFrame,
    regimes: pd.DataFrame | None,
    attribution: dict | None,
    oos: pd.DataFrame | None,
    windows: pd.DataFrame | None = None,
) -> str:
    """A self-contained HTML page: the figures of :func:`backtest_figures_png` (embedded PNGs) and the tables.

    Parameters
    ----------
    title : str
    equity : DataFrame of shape (n_days, 1 + n_benchmarks)
        Strategy first, then benchmarks.
    net_returns : Series of shape (n_days,)
    weights : DataFrame of shape (n_decisions, n_assets)
        The last decisions' weights are also shown as a table.
    metrics : DataFrame of shape (n_metrics, n_names)
        From ``backtest.metrics.metrics_table``.
    regimes : DataFrame of shape (n_dates, n_states) or None
        State probabilities: charts shaded and a table of the share of days in each state.
    attribution : dict of str to DataFrame or Series, or None
        ``FactorAttribution.summary()`` / ``BrinsonAttribution.total()`` outputs by name: a chart and a table each.
    oos : DataFrame or None
        An out-of-sample table (e.g. ``InOutOfSample.summary()``).
    windows : DataFrame or None
        Per-window results of the walk-forward (``window_results(...)``).

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    DataError
        Empty ``equity`` or ``net_returns``.
    """
    pngs = backtest_figures_png(
        equity=equity, net_returns=net_returns, weights=weights, regimes=regimes, attribution=attribution, title=title
    )

    def image(key: str) -> str:
        data = base64.b64encode(pngs[key]).decode()
        return f"<img alt='{key}' style='max-width:100%' src='data:image/png;base64,{data}'>"

    index = pd.DatetimeIndex(net_returns.index)
    facts = {
        "period": f"{index[0].date()} to {index[-1].date()} ({len(index)} days)",
        "decisions": str(len(weights)),
        "final value": ", ".join(f"{c}: {_float(float(equity[c].dropna().iloc[-1]))}" for c in equity.columns),
    }
    facts_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{text-align:left}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<table class='facts'>{facts_rows}</table>",
        "<h2>Equity against benchmarks</h2>",
        image("equity"),
        image("drawdown"),
        image("rolling_sharpe"),
        "<h2>Metrics</h2>",
        _table(metrics, "metrics"),
        "<h2>Weights</h2>",
        image("weights"),
        "<p>Target weights of the last decisions:</p>",
        _table(weights.tail(5).T, "weights"),
    ]
    if regimes is not None and not regimes.empty:
        parts += ["<h2>Regimes</h2>", _table(_regime_table(regimes, index), "regimes")]
    if attribution:
        parts += ["<h2>Attribution</h2>", image("attribution")]
        for name, value in attribution.items():
            parts += [f"<h3>{html.escape(str(name))}</h3>", _table(value, "attribution")]
    if oos is not None:
        parts += ["<h2>Out-of-sample analysis</h2>", _table(oos, "oos")]
    if windows is not None:
        parts += ["<h2>Walk-forward windows</h2>", _table(windows, "windows")]
    parts.append("</body></html>")
    return "".join(parts)
