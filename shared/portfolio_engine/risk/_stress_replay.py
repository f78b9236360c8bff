"""Historical scenario replay: today's weights run through the actual daily asset returns of named crisis windows.

Within a window the portfolio is bought at the weights on the eve of the first day and held (weights drift with
prices; cash, ``1 - sum(w)``, earns nothing): its value is ``V_t = 1 + sum_i w_i (G_ti - 1)`` with ``G_ti`` asset i's
growth since the eve. ``cumulative_return`` (the headline figure) is ``V_T - 1``, which equals ``w' R`` for the
assets' cumulative returns ``R``; the worst day and the maximum drawdown are read off the same buy-and-hold path.
``fixed_weight_return`` is the other convention, rebalanced to ``w`` every day: ``prod(1 + w' r_t) - 1``.

Missing data: a held asset's days without a return are filled with the ``proxy`` return (for instance the index's)
when a proxy is given and has that day, and otherwise treated as cash (a zero return). Assets filled by the proxy are
listed in ``proxied_assets``; assets with any day left as cash in ``missing_assets`` (with their total absolute weight
in ``missing_weight``). A window without any data is reported with ``status="no_data"`` and NaN figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._inputs import check_known_assets, check_returns_frame, check_weights
from portfolio_engine.risk._report import json_number


@dataclass(frozen=True)
class HistoricalScenario:
    """A named window of market history (both ends inclusive)."""

    name: str
    start: date
    end: date
    description: str = ""


#: The default windows, in the order of the issue.
DEFAULT_SCENARIOS: tuple[HistoricalScenario, ...] = (
    HistoricalScenario("gfc", date(2008, 9, 1), date(2009, 3, 31), "Global financial crisis: Lehman to the 2009 low"),
    HistoricalScenario("covid", date(2020, 2, 1), date(2020, 3, 31), "COVID-19 crash"),
    HistoricalScenario("2022", date(2022, 1, 1), date(2022, 12, 31), "2022 inflation and rate-hike bear market"),
    HistoricalScenario("dotcom", date(2000, 3, 1), date(2002, 10, 31), "Dot-com bust"),
    HistoricalScenario("us_downgrade_2011", date(2011, 8, 1), date(2011, 8, 31), "US downgrade, euro debt crisis"),
    HistoricalScenario("q4_2018", date(2018, 10, 1), date(2018, 12, 31), "Q4 2018 sell-off"),
)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, eq=False)
class ScenarioReplay:
    """Today's weights replayed over one historical window.

    Attributes
    ----------
    scenario : HistoricalScenario
    status : str
        ``"ok"``, ``"partial"`` (some held asset had days without data and without a proxy) or ``"no_data"``.
    first_date, last_date : Timestamp or None
        Trading days actually covered.
    n_days : int
    cumulative_return : float
        Buy-and-hold return over the window (the headline figure; ``loss`` is its negative).
    fixed_weight_return : float
        Return when rebalanced to the weights every day.
    worst_day, worst_day_return : Timestamp or None, float
        The buy-and-hold portfolio's worst daily return.
    max_drawdown : float
        Largest fall of the buy-and-hold value from a running peak (including the starting value), a positive
        fraction.
    asset_returns : Series of shape (n_assets,)
        Each held asset's cumulative return over the window (proxy-filled; missing days count as zero).
    path : Series of shape (n_days,)
        Buy-and-hold portfolio value, starting from 1 on the eve of the window.
    missing_assets, proxied_assets : tuple of str
    missing_weight : float
        Sum of ``|w|`` over ``missing_assets``.
    """

    scenario: HistoricalScenario
    status: str
    first_date: pd.Timestamp | None
    last_date: pd.Timestamp | None
    n_days: int
    cumulative_return: float
    fixed_weight_return: float
    worst_day: pd.Timestamp | None
    worst_day_return: float
    max_drawdown: float
    asset_returns: pd.Series
    path: pd.Series
    missing_assets: tuple[str, ...]
    proxied_assets: tuple[str, ...]
    missing_weight: float

    @property
    def name(self) -> str:
        """The scenario's name."""
        return self.scenario.name

    @property
    def loss(self) -> float:
        """``-cumulative_return``: positive for a loss."""
        return -self.cumulative_return

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes None; the path is left out)."""
        return {
            "name": self.scenario.name,
            "description": self.scenario.description,
            "start": self.scenario.start.isoformat(),
            "end": self.scenario.end.isoformat(),
            "status": self.status,
            "first_date": _iso(self.first_date),
            "last_date": _iso(self.last_date),
            "n_days": self.n_days,
            "cumulative_return": json_number(self.cumulative_return),
            "loss": json_number(self.loss),
            "fixed_weight_return": json_number(self.fixed_weight_return),
            "worst_day": _iso(self.worst_day),
            "worst_day_return": json_number(self.worst_day_return),
            "max_drawdown": json_number(self.max_drawdown),
            "asset_returns": {str(k): json_number(v) for k, v in self.asset_returns.items()},
            "missing_assets": list(self.missing_assets),
            "proxied_assets": list(self.proxied_assets),
            "missing_weight": json_number(self.missing_weight),
        }


def resolve_scenarios(
    scenarios: Iterable[HistoricalScenario | str | tuple[str, Any, Any]] | None,
) -> tuple[HistoricalScenario, ...]:
    """Scenarios from objects, default names (``"gfc"``) or ``(name, start, end)`` tuples.

    Raises
    ------
    RiskInputError
        An unknown name, a malformed entry, or a start after the end.
    """
    if scenarios is None:
        return DEFAULT_SCENARIOS
    known = {s.name: s for s in DEFAULT_SCENARIOS}
    out: list[HistoricalScenario] = []
    for item in scenarios:
        if isinstance(item, HistoricalScenario):
            scenario = item
        elif isinstance(item, str):
            if item not in known:
                raise RiskInputError(f"Unknown scenario {item!r}.", hint=f"Default scenarios: {list(known)}.")
            scenario = known[item]
        else:
            try:
                name, start, end = item
                scenario = HistoricalScenario(str(name), pd.Timestamp(start).date(), pd.Timestamp(end).date())
            except (TypeError, ValueError) as exc:
                raise RiskInputError(
                    f"A scenario must be a HistoricalScenario, a default name or (name, start, end); got {item!r}.",
                    hint="Pass e.g. ('brexit', '2016-06-23', '2016-06-30').",
                ) from exc
        if scenario.start > scenario.end:
            raise RiskInputError(
                f"Scenario {scenario.name!r} starts {scenario.start} after it ends {scenario.end}.",
                hint="Swap the dates.",
            )
        out.append(scenario)
    return tuple(out)


def _check_proxy(proxy: pd.Series | None) -> pd.Series | None:
    if proxy is None:
        return None
    if not isinstance(proxy, pd.Series) or not isinstance(proxy.index, pd.DatetimeIndex):
        raise RiskInputError(
            f"proxy must be a Series of daily returns indexed by date; got {type(proxy).__name__}.",
            hint="Pass e.g. the index's returns: index_prices.pct_change().",
        )
    try:
        values = proxy.astype("float64")
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"proxy holds non-numeric values ({exc}).", hint="Pass float returns.") from exc
    if values.index.has_duplicates:
        raise RiskInputError("proxy has duplicate dates.", hint="De-duplicate it.")
    return values.sort_index()


def replay_scenario(
    weights: pd.Series,
    returns: pd.DataFrame,
    scenario: HistoricalScenario | str | tuple[str, Any, Any],
    *,
    proxy: pd.Series | None = None,
    budget: float | None = 1.0,
) -> ScenarioReplay:
    """Replay today's weights over one window (see the module docstring for the conventions).

    Parameters
    ----------
    weights : Series of shape (n_assets,)
    returns : DataFrame of shape (n_dates, n_columns)
        Simple daily returns indexed by date; NaN where an asset has no data.
    scenario : HistoricalScenario, default name or (name, start, end)
    proxy : Series, optional
        Daily returns used for a held asset's days without data (e.g. the S&P 500's).
    budget : float or None, default 1.0

    Returns
    -------
    ScenarioReplay

    Raises
    ------
    RiskInputError
        Bad weights, unknown assets, returns without a date index, a bad proxy or scenario.
    """
    w = check_weights(weights, budget=budget)
    _check_dated(returns)
    return _replay(w, returns, resolve_scenarios([scenario])[0], _check_proxy(proxy))


def replay_scenarios(
    weights: pd.Series,
    returns: pd.DataFrame,
    scenarios: Sequence[HistoricalScenario | str | tuple[str, Any, Any]] | None = None,
    *,
    proxy: pd.Series | None = None,
    budget: float | None = 1.0,
) -> tuple[ScenarioReplay, ...]:
    """Replay today's weights over several windows (:data:`DEFAULT_SCENARIOS` when ``scenarios`` is None).

    Same parameters and errors as :func:`replay_scenario`.
    """
    w = check_weights(weights, budget=budget)
    _check_dated(returns)
    checked_proxy = _check_proxy(proxy)
    return tuple(_replay(w, returns, s, checked_proxy) for s in resolve_scenarios(scenarios))


def _check_dated(returns: pd.DataFrame) -> None:
    check_returns_frame(returns)
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise RiskInputError(
            f"returns must be indexed by date (a DatetimeIndex); got {type(returns.index).__name__}.",
            hint="Set the dates as the index: returns.set_index(pd.to_datetime(returns['date'])).",
        )


def _replay(
    w: pd.Series, returns: pd.DataFrame, scenario: HistoricalScenario, proxy: pd.Series | None
) -> ScenarioReplay:
    check_known_assets(w.index, returns.columns, what="returns")
    start, end = pd.Timestamp(scenario.start), pd.Timestamp(scenario.end)
    try:
        frame = returns.loc[(returns.index >= start) & (returns.index <= end), list(w.index)].astype("float64")
    except (TypeError, ValueError) as exc:
        raise RiskInputError(f"returns hold non-numeric values ({exc}).", hint="Convert to float returns.") from exc
    if proxy is not None:
        frame = frame.reindex(frame.index.union(proxy.index[(proxy.index >= start) & (proxy.index <= end)]))
        fill = proxy.reindex(frame.index)
        frame = frame[frame.notna().any(axis=1) | fill.notna()]
        fill = fill.reindex(frame.index)
    else:
        frame = frame[frame.notna().any(axis=1)]
    held = w[w != 0.0]
    if frame.empty:
        nan = float("nan")
        empty = pd.Series(nan, index=w.index, dtype="float64")
        return ScenarioReplay(
            scenario, "no_data", None, None, 0, nan, nan, None, nan, nan, empty,
            pd.Series(dtype="float64"), tuple(str(a) for a in held.index), (), float(held.abs().sum()),
        )  # fmt: skip
    gaps = frame.isna()
    proxied: list[str] = []
    if proxy is not None:
        filled_by_proxy = gaps & fill.notna().to_numpy()[:, None]
        frame = frame.fillna(pd.DataFrame({c: fill for c in frame.columns}, index=frame.index))
        proxied = [str(a) for a in held.index if bool(filled_by_proxy[a].any())]
    still_missing = frame.isna()
    missing = [str(a) for a in held.index if bool(still_missing[a].any())]
    values = frame.fillna(0.0).to_numpy()
    weights = w.to_numpy()
    growth = np.cumprod(1.0 + values, axis=0)
    value = 1.0 + (growth - 1.0) @ weights
    previous = np.concatenate(([1.0], value[:-1]))
    daily = value / previous - 1.0
    peaks = np.maximum.accumulate(np.concatenate(([1.0], value)))
    worst = int(np.argmin(daily))
    return ScenarioReplay(
        scenario=scenario,
        status="partial" if missing else "ok",
        first_date=frame.index[0],
        last_date=frame.index[-1],
        n_days=len(frame),
        cumulative_return=float(value[-1] - 1.0),
        fixed_weight_return=float(np.prod(1.0 + values @ weights) - 1.0),
        worst_day=frame.index[worst],
        worst_day_return=float(daily[worst]),
        max_drawdown=float(np.max(1.0 - np.concatenate(([1.0], value)) / peaks)),
        asset_returns=pd.Series(growth[-1] - 1.0, index=w.index),
        path=pd.Series(value, index=frame.index, name=scenario.name),
        missing_assets=tuple(missing),
        proxied_assets=tuple(proxied),
        missing_weight=float(held[missing].abs().sum()) if missing else 0.0,
    )


def stress_table(results: Iterable[ScenarioReplay]) -> pd.DataFrame:
    """One row per replay: dates, returns, worst day, drawdown, status and missing assets.

    Returns
    -------
    DataFrame of shape (n_scenarios, 10)
        Indexed by scenario name.
    """
    rows: list[Mapping[str, Any]] = [
        {
            "name": r.name,
            "start": r.scenario.start,
            "end": r.scenario.end,
            "n_days": r.n_days,
            "cumulative_return": r.cumulative_return,
            "fixed_weight_return": r.fixed_weight_return,
            "worst_day_return": r.worst_day_return,
            "max_drawdown": r.max_drawdown,
            "status": r.status,
            "missing_assets": ", ".join(r.missing_assets),
            "proxied_assets": ", ".join(r.proxied_assets),
        }
        for r in results
    ]
    columns = ["name", "start", "end", "n_days", "cumulative_return", "fixed_weight_return", "worst_day_return"]
    columns += ["max_drawdown", "status", "missing_assets", "proxied_assets"]
    return pd.DataFrame(rows, columns=columns).set_index("name")
