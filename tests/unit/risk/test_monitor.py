"""Real-time monitoring: the bar-by-bar tracker equals the vectorised batch, a hand-built path, per-bar limits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.risk.limits import evaluate_limits
from portfolio_engine.risk.monitor import RiskMonitor, monitor_batch

ASSETS = ["a", "b", "c", "d", "e"]
W = pd.Series([0.3, 0.25, 0.2, 0.15, 0.1], index=ASSETS)
SECTORS = {"a": "tech", "b": "tech", "c": "energy", "d": "health", "e": "health"}
COLUMNS = ["portfolio_return", "value", "peak", "drawdown", "max_drawdown", "ewma_variance", "volatility"]


def _intraday_returns(n: int = 780, seed: int = 3) -> pd.DataFrame:
    """Ten days of 5-minute returns (78 bars a day) with a few gaps (NaN: no trade in that bar)."""
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0, 0.0015, (n, len(ASSETS))) + rng.normal(0.0, 0.001, (n, 1))
    returns[rng.random((n, len(ASSETS))) < 0.02] = np.nan
    times = pd.date_range("2024-03-04 09:35", periods=n, freq="5min")
    return pd.DataFrame(returns, index=times, columns=ASSETS)


def _snapshot_frame(snapshots: list) -> pd.DataFrame:
    return pd.DataFrame(
        {c: [getattr(s, c) for s in snapshots] for c in [*COLUMNS, "max_weight", "gross_leverage"]},
        index=[s.timestamp for s in snapshots],
    )


@pytest.mark.parametrize("bar_kind", ["return", "price"])
@pytest.mark.parametrize("rebalance", ["drift", "fixed"])
@pytest.mark.parametrize("initial_variance", [None, 2.5e-6])
def test_the_incremental_tracker_equals_the_batch_computation(
    bar_kind: str, rebalance: str, initial_variance: float | None
) -> None:
    # Given intraday bars (returns, or the prices they imply, with the same gaps)
    returns = _intraday_returns()
    if bar_kind == "price":
        bars = 100.0 * (1.0 + returns.fillna(0.0)).cumprod()
        bars = bars.where(returns.notna())  # a missing price carries the last one forward
        bars.iloc[0] = 100.0
    else:
        bars = returns
    options = {
        "bar_kind": bar_kind,
        "rebalance": rebalance,
        "initial_variance": initial_variance,
        "bars_per_day": 78,
        "initial_value": 1e6,
    }

    # When feeding the bars one at a time, and computing the whole history at once
    monitor = RiskMonitor(W, **options)  # type: ignore[arg-type]
    snapshots = [monitor.update(bars.iloc[i], bars.index[i]) for i in range(len(bars))]
    batch = monitor_batch(bars, W, **options)  # type: ignore[arg-type]

    # Then every series agrees to 1e-12 (relative), bar by bar
    if bar_kind == "price":
        assert snapshots[0] is None
        snapshots = snapshots[1:]
    incremental = _snapshot_frame(snapshots)
    assert len(incremental) == len(batch) and incremental.index.equals(batch.index)
    for column in incremental.columns:
        np.testing.assert_allclose(incremental[column], batch[column], rtol=1e-12, atol=1e-15, err_msg=column)
    assert batch["max_drawdown"].iloc[-1] > 0.0
    if rebalance == "fixed":
        np.testing.assert_allclose(batch["max_weight"], 0.3, rtol=1e-12)
    else:
        assert monitor.current_weights.sum() == pytest.approx(1.0, rel=1e-12)


def test_a_hand_built_path_gives_known_drawdowns_and_ewma() -> None:
    # Given one asset whose value goes 1 -> 1.25 -> 1.0 -> 1.5 -> 0.9 -> 1.2
    returns = pd.DataFrame({"x": [0.25, -0.2, 0.5, -0.4, 1.2 / 0.9 - 1.0]})
    monitor = RiskMonitor(pd.Series({"x": 1.0}), ewma_lambda=0.9)

    # When fed bar by bar
    snapshots = monitor.run(returns)

    # Then value, peak, drawdown and max drawdown are the hand-computed ones
    assert [s.value for s in snapshots] == pytest.approx([1.25, 1.0, 1.5, 0.9, 1.2], rel=1e-12)
    assert [s.peak for s in snapshots] == pytest.approx([1.25, 1.25, 1.5, 1.5, 1.5], rel=1e-12)
    assert [s.drawdown for s in snapshots] == pytest.approx([0.0, 0.2, 0.0, 0.4, 0.2], abs=1e-12)
    assert [s.max_drawdown for s in snapshots] == pytest.approx([0.0, 0.2, 0.2, 0.4, 0.4], abs=1e-12)
    # And the EWMA variance is seeded with the first squared return, then 0.9 s2 + 0.1 r^2
    expected = [0.0625, 0.9 * 0.0625 + 0.1 * 0.04]
    expected.append(0.9 * expected[-1] + 0.1 * 0.25)
    assert [s.ewma_variance for s in snapshots[:3]] == pytest.approx(expected, rel=1e-12)
    assert snapshots[0].volatility == pytest.approx(0.25 * math.sqrt(252), rel=1e-12)


def test_limits_are_evaluated_on_every_bar_and_each_monitored_kind_breaches() -> None:
    # Given daily returns with a crash, and one limit of every kind the monitor measures
    rng = np.random.default_rng(5)
    values = rng.normal(0.0005, 0.01, (300, len(ASSETS)))
    values[200:210, :2] -= 0.04  # ten bad days for the tech sector
    returns = pd.DataFrame(values, columns=ASSETS)
    limits = {
        "max_var_95_1d": 0.02,
        "max_cvar_99_10d": 0.08,
        "max_volatility": 0.18,
        "max_drawdown": 0.15,
        "max_current_drawdown": 0.12,
        "max_weight": 0.31,
        "max_sector_weight": 0.53,
        "max_gross_leverage": 0.99,
        "max_tracking_error": 0.05,
        "max_beta": 1.2,
    }
    monitor = RiskMonitor(W, limits, sector_map=SECTORS)

    # When fed every bar
    snapshots = monitor.run(returns)
    batch = monitor_batch(returns, W)

    # Then tracking error and beta (no benchmark feed) are not monitored, the rest are graded on every bar
    # exactly as evaluate_limits grades the batch's values (computed independently here)
    assert monitor.unmonitored == ["max_beta", "max_tracking_error"]
    growth = (1.0 + returns).cumprod() * W
    weights = growth.div(growth.sum(axis=1), axis=0)
    sectors = weights.T.groupby(pd.Series(SECTORS)).sum().T
    daily_std = np.sqrt(batch["ewma_variance"])
    expected_measured = pd.DataFrame(
        {
            "max_var_95_1d": stats.norm.ppf(0.95) * daily_std,
            "max_cvar_99_10d": stats.norm.pdf(stats.norm.ppf(0.99)) / 0.01 * daily_std * math.sqrt(10),
            "max_volatility": batch["volatility"],
            "max_drawdown": batch["max_drawdown"],
            "max_current_drawdown": batch["drawdown"],
            "max_weight": weights.abs().max(axis=1),
            "max_sector_weight": sectors.abs().max(axis=1),
            "max_gross_leverage": weights.abs().sum(axis=1),
        }
    )
    monitored = {n: v for n, v in limits.items() if n in expected_measured.columns}
    seen: set[str] = set()
    for snapshot, (_, row) in zip(snapshots, expected_measured.iterrows(), strict=True):
        assert snapshot.measured == pytest.approx(row.to_dict(), rel=1e-10)
        expected = evaluate_limits(monitored, snapshot.measured)
        assert snapshot.breaches == tuple(expected)
        seen |= {b.limit for b in snapshot.breaches if not b.within_limit}
    assert seen == set(monitored)


def test_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(RiskInputError, match="ewma_lambda"):
        RiskMonitor(W, ewma_lambda=1.0)
    with pytest.raises(RiskInputError, match="budget"):
        RiskMonitor(W * 2)
    with pytest.raises(RiskInputError, match="finite"):
        RiskMonitor(W.where(W > 0.1))
    with pytest.raises(RiskInputError, match="sector"):
        RiskMonitor(W, {"max_sector_weight": 0.5}, sector_map={"a": "tech"})
    with pytest.raises(SpecificationError, match="max_stress"):
        RiskMonitor(W, {"max_stress": 0.5})
    monitor = RiskMonitor(W)
    with pytest.raises(RiskInputError, match="shape"):
        monitor.update(np.zeros(3))
    prices = RiskMonitor(W, bar_kind="price")
    with pytest.raises(RiskInputError, match="first price bar"):
        prices.update(pd.Series({"a": 10.0, "b": 20.0}))
    with pytest.raises(RiskInputError, match="column"):
        monitor_batch(pd.DataFrame({"a": [0.01]}), W)


def test_a_series_bar_is_matched_by_label_and_extra_labels_are_ignored() -> None:
    # Given the same bar as an array in the weights' order and as a shuffled Series with an extra symbol
    bar = np.array([0.01, -0.02, 0.03, 0.0, 0.005])
    shuffled = pd.Series(bar, index=ASSETS).iloc[::-1]
    shuffled["zzz"] = 9.0
    first = RiskMonitor(W).update(bar)
    second = RiskMonitor(W).update(shuffled)
    assert first is not None and second is not None
    assert first.value == second.value == pytest.approx(1.0 + float(W @ bar), rel=1e-15)
