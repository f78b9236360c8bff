"""The regime chart: an index with its regimes shaded, and the turbulent state's probability below it."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

# A Figure without pyplot draws with Agg and leaves the caller's backend and global state alone.
from matplotlib.figure import Figure

_PALETTES = {1: ("#2ca02c",), 2: ("#2ca02c", "#d62728"), 3: ("#2ca02c", "#ffbf00", "#d62728")}
_MANY = ("#2ca02c", "#1f77b4", "#ffbf00", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#7f7f7f")


def _colors(n: int) -> tuple[str, ...]:
    """Calm green to turbulent red, whatever the number of states."""
    return _PALETTES.get(n, _MANY[:n] if n <= len(_MANY) else _MANY * (n // len(_MANY) + 1))


def regime_spells(states: pd.Series) -> pd.DataFrame:
    """Consecutive runs of one state: ``state``, ``start``, ``end``, ``days`` (rows of ``states``)."""
    if states.empty:
        return pd.DataFrame(columns=["state", "start", "end", "days"])
    change = states.ne(states.shift()).cumsum()
    grouped = states.groupby(change)
    return pd.DataFrame(
        {
            "state": grouped.first().to_numpy(),
            "start": [g.index[0] for _, g in grouped],
            "end": [g.index[-1] for _, g in grouped],
            "days": grouped.size().to_numpy(),
        }
    )


def regime_figure_png(prices: pd.Series, probabilities: pd.DataFrame, *, title: str, dpi: int = 110) -> bytes:
    """A PNG: ``prices`` (log scale) shaded by the most probable state, and P(last state) below.

    Parameters
    ----------
    prices : Series
        The index level by date.
    probabilities : DataFrame of shape (n_dates, n_states)
        Filtered state probabilities, columns ordered calm -> turbulent.
    title : str
    """
    proba = probabilities.dropna()
    level = prices.reindex(proba.index).ffill()
    states = proba.idxmax(axis=1)
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(level.index, level.to_numpy(), color="black", linewidth=0.8)
    if (level > 0).all():
        top.set_yscale("log")
    colors = _colors(len(proba.columns))
    for i, name in enumerate(proba.columns):
        mask = (states == name).to_numpy()
        top.fill_between(
            level.index, 0, 1, where=mask, transform=top.get_xaxis_transform(), color=colors[i],
            alpha=0.25, linewidth=0, label=str(name),
        )  # fmt: skip
    top.set_title(title)
    top.legend(loc="upper left", title="most probable state")
    top.set_ylabel(str(prices.name or "level"))
    last = proba.columns[-1]
    bottom.plot(proba.index, proba[last].to_numpy(), color=colors[-1])
    bottom.set_ylim(0, 1)
    bottom.set_ylabel(f"P({last})")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def regime_report_html(
    prices: pd.Series,
    probabilities: pd.DataFrame,
    *,
    title: str,
    transition_matrix: np.ndarray,
    expected_durations: np.ndarray,
) -> str:
    """A self-contained HTML page: the chart (embedded PNG), transition matrix, durations, recent spells."""
    png = base64.b64encode(regime_figure_png(prices, probabilities, title=title)).decode()
    names = [str(c) for c in probabilities.columns]
    matrix = pd.DataFrame(np.asarray(transition_matrix), index=names, columns=names)
    durations = pd.DataFrame({"expected duration (days)": np.asarray(expected_durations, dtype=float)}, index=names)
    spells = regime_spells(probabilities.dropna().idxmax(axis=1)).tail(15)
    current = probabilities.dropna().iloc[-1]
    as_of = pd.Timestamp(str(current.name)).date()
    rows = "".join(f"<tr><td>{html.escape(str(n))}</td><td>{p:.3f}</td></tr>" for n, p in current.items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Filtered probabilities as of {as_of} (data up to that day only).</p>"
        f"<table><tr><th>state</th><th>probability</th></tr>{rows}</table>"
        f"<img alt='regimes' style='max-width:100%' src='data:image/png;base64,{png}'>"
        "<h2>Transition matrix (row: from, column: to)</h2>"
        f"{matrix.to_html(float_format=lambda v: f'{v:.4f}')}"
        f"<h2>Expected durations</h2>{durations.to_html(float_format=lambda v: f'{v:.1f}')}"
        f"<h2>Most recent spells</h2>{spells.to_html(index=False)}"
        "</body></html>"
    )
