"""The risk report's charts and tables, on figures whose values are known in closed form."""

from __future__ import annotations

import base64
import io
import math
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio_engine.reports.risk import (
    fan_chart_png,
    fan_frame,
    hedge_table,
    limits_table,
    risk_figure_png,
    risk_report_html,
    stress_chart_png,
    stress_table,
    tail_table,
)
from portfolio_engine.risk.limits import evaluate_limits

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LEVELS = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
HORIZON = 21
SIGMA = 0.01  # daily volatility of a driftless Gaussian random walk of the value


def _image(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    return matplotlib.image.imread(io.BytesIO(png), format="png")


@pytest.fixture(scope="module")
def bands() -> pd.DataFrame:
    """Value quantiles of a random walk: ``1 + z_q sigma sqrt(t)`` (as the fan chart stores them)."""
    steps = np.arange(HORIZON + 1)[:, None]
    values = 1.0 + stats.norm.ppf(LEVELS)[None, :] * SIGMA * np.sqrt(steps)
    return fan_frame(LEVELS, values.tolist())


@pytest.fixture(scope="module")
def stress() -> pd.DataFrame:
    scenarios = [
        {"name": "gfc", "start": "2008-09-01", "end": "2009-03-31", "status": "ok", "loss": 0.25,
         "worst_day_return": -0.08, "max_drawdown": 0.31},
        {"name": "covid <2020>", "start": "2020-02-01", "end": "2020-03-31", "status": "ok", "loss": -0.02,
         "worst_day_return": -0.1, "max_drawdown": 0.2},
        {"name": "dotcom", "start": "2000-03-01", "end": "2002-10-31", "status": "no_data", "loss": None,
         "worst_day_return": None, "max_drawdown": None},
    ]  # fmt: skip
    shocks = [{"name": "equity_-20%_beta", "loss": 0.18}, {"name": "volatility_x2", "loss": 0.05}]
    return stress_table(scenarios, shocks)


def test_fan_frame_keeps_the_levels_and_starts_at_today(bands: pd.DataFrame) -> None:
    # GIVEN the stored fan chart of a random walk
    # WHEN it is read into a frame
    # THEN it has one row per step (today included), one column per level, value 1 today
    assert bands.shape == (HORIZON + 1, len(LEVELS)) and bands.index.name == "step"
    assert list(bands.columns) == LEVELS
    assert (bands.iloc[0] == 1.0).all()
    # AND the last row is the closed form, e.g. the 1% quantile 1 - 2.326 sigma sqrt(21)
    assert bands[0.01].iloc[-1] == pytest.approx(1.0 - 2.3263479 * SIGMA * math.sqrt(HORIZON), abs=1e-7)


def test_the_fan_chart_renders_its_bands_and_var_marks(bands: pd.DataFrame) -> None:
    # GIVEN the bands and the 99% VaR of the horizon (the 1% quantile's loss)
    var99 = 1.0 - float(bands[0.01].iloc[-1])
    # WHEN the fan chart is drawn with and without the VaR mark
    png = fan_chart_png(bands, title="random walk", var_marks={"VaR 99% (21d)": var99}, dpi=100)
    bare = fan_chart_png(bands, title="random walk", dpi=100)
    # THEN both are 9 x 5.5 inch PNGs with content, and the mark changes the image
    image = _image(png)
    assert image.shape[:2] == (550, 900) and image[..., :3].std() > 0.05
    assert bare != png
    # AND a set of levels without symmetric pairs (lines only) renders too
    lines = fan_chart_png(bands[[0.05, 0.5]], title="two lines", dpi=100)
    assert _image(lines).shape[:2] == (550, 900) and lines not in (png, bare)


def test_the_stress_table_joins_replays_and_shocks(stress: pd.DataFrame) -> None:
    # GIVEN three replays (one without data) and two shocks
    # WHEN they are tabulated
    # THEN replays come first as historical rows with their window, shocks follow as hypothetical rows
    assert list(stress["scenario"]) == ["gfc", "covid <2020>", "dotcom", "equity_-20%_beta", "volatility_x2"]
    assert list(stress["kind"]) == ["historical"] * 3 + ["hypothetical"] * 2
    assert stress.loc[0, "window"] == "2008-09-01 to 2009-03-31" and stress.loc[3, "status"] == "shock"
    # AND a loss the replay could not measure is NaN, not 0 (it is not drawn)
    assert math.isnan(stress.loc[2, "loss"]) and stress["loss"].iloc[[0, 1, 3, 4]].tolist() == [0.25, -0.02, 0.18, 0.05]


def test_the_stress_chart_skips_missing_losses_and_says_when_none_is_left(stress: pd.DataFrame) -> None:
    # GIVEN the stress table, and the same table with no measurable loss
    empty = stress.assign(loss=math.nan)
    # WHEN both are drawn, the first with a loss limit
    png = stress_chart_png(stress, title="stress", loss_limit=0.2, dpi=100)
    blank = stress_chart_png(empty, title="stress", dpi=100)
    # THEN both render at 9 x 5.5 inches and differ
    assert _image(png).shape[:2] == (550, 900) and _image(blank).shape[:2] == (550, 900)
    assert png != blank


def test_one_figure_holds_the_fan_and_the_stress_bars(bands: pd.DataFrame, stress: pd.DataFrame) -> None:
    # WHEN the combined figure is drawn
    png = risk_figure_png(bands, stress, title="risk", var_marks={"VaR 95%": 0.05}, loss_limit=0.3, dpi=100)
    # THEN it is one 15 x 6 inch PNG with content
    image = _image(png)
    assert image.shape[:2] == (600, 1500) and image[..., :3].std() > 0.05


def test_the_tail_table_puts_the_monte_carlo_row_first_at_its_horizon() -> None:
    # GIVEN Normal closed forms: VaR = z sigma, CVaR = sigma phi(z) / (1 - alpha), for a daily and a 21-day sigma
    def normal(sigma: float, level: float) -> tuple[float, float]:
        z = stats.norm.ppf(level)
        return z * sigma, sigma * stats.norm.pdf(z) / (1 - level)

    levels = [0.95, 0.99]
    mc = {
        f"{m}_{lv:g}": normal(SIGMA * math.sqrt(HORIZON), lv)[i] for lv in levels for i, m in enumerate(["var", "cvar"])
    }
    var = {"normal": {repr(lv): normal(SIGMA, lv)[0] for lv in levels}, "historical": {"0.95": 0.02, "0.99": None}}
    cvar = {"normal": {repr(lv): normal(SIGMA, lv)[1] for lv in levels}, "historical": {"0.95": 0.03}}
    # WHEN they are tabulated
    table = tail_table(mc | {"mean": 0.0}, var, cvar, levels=levels, horizon=HORIZON)
    # THEN one row per method, Monte Carlo first at 21 days, the others at 1 day
    assert list(table["method"]) == ["monte_carlo", "normal", "historical"]
    assert list(table["horizon_days"]) == [HORIZON, 1, 1]
    assert list(table.columns[2:]) == ["var_0.95", "cvar_0.95", "var_0.99", "cvar_0.99"]
    # AND the figures are where they belong: VaR 99% over 21 days = 2.326 x 1% x sqrt(21)
    assert table.loc[0, "var_0.99"] == pytest.approx(2.3263479 * SIGMA * math.sqrt(HORIZON), rel=1e-7)
    assert table.loc[1, "cvar_0.95"] == pytest.approx(2.0627128 * SIGMA, rel=1e-6)
    # AND what a method did not give (None, absent) is NaN
    assert math.isnan(table.loc[2, "var_0.99"]) and math.isnan(table.loc[2, "cvar_0.99"])


def test_the_limits_table_grades_every_limit_most_severe_first() -> None:
    # GIVEN limits, their measured values (one limit the data could not measure) and the engine's grades
    limits = {"max_volatility": 0.2, "max_weight": 0.3, "max_var_95_1d": 0.02, "max_drawdown": 0.35, "max_beta": 1.0}
    measured = {"max_volatility": 0.31, "max_weight": 0.29, "max_var_95_1d": 0.025, "max_drawdown": 0.1}
    breaches = [b.to_dict() for b in evaluate_limits({k: limits[k] for k in measured}, measured)]
    # WHEN they are tabulated
    table = limits_table(limits, measured, breaches, {"max_beta": "needs the index's prices"})
    # THEN critical (0.31 > 1.5 x 0.2) comes first, then the breach, the warning, the unmeasured limit, then ok
    assert list(table["limit"]) == ["max_volatility", "max_var_95_1d", "max_weight", "max_beta", "max_drawdown"]
    assert list(table["severity"]) == ["critical", "breach", "warning", "not measured", "ok"]
    # AND the ratio is the measured value over the limit; the unmeasured limit keeps its reason
    assert table["ratio"].iloc[:3].tolist() == pytest.approx([1.55, 1.25, 0.29 / 0.3])
    assert table.loc[3, "note"] == "needs the index's prices" and math.isnan(table.loc[3, "measured"])


def test_the_hedge_table_marks_the_chosen_proposal() -> None:
    proposals = [
        {
            "kind": "scale_exposure",
            "feasible": True,
            "parameter": 0.5,
            "turnover": 0.5,
            "index_weight": 0.0,
            "cash": 0.5,
        },
        {
            "kind": "index_hedge",
            "feasible": False,
            "parameter": 0.9,
            "turnover": 0.9,
            "index_weight": -0.9,
            "cash": 0.0,
        },
    ]
    table = hedge_table(proposals, "scale_exposure")
    assert table["chosen"].tolist() == [True, False] and table["index_weight"].tolist() == [0.0, -0.9]
    assert not hedge_table(proposals, None)["chosen"].any()


def test_the_html_report_is_self_contained_with_every_table(bands: pd.DataFrame, stress: pd.DataFrame) -> None:
    # GIVEN every table of a run with a critical breach and a hedge
    tails = tail_table({"var_0.95": 0.07, "cvar_0.95": 0.09}, {"normal": {"0.95": 0.02}}, {}, levels=[0.95], horizon=21)
    limits = limits_table(
        {"max_volatility": 0.1}, {"max_volatility": 0.2}, [{"limit": "max_volatility", "severity": "critical"}]
    )
    hedge = hedge_table(
        [{"kind": "scale_exposure", "feasible": True, "parameter": 0.5, "turnover": 0.5}], "scale_exposure"
    )
    # WHEN the page is rendered with a title that needs escaping
    page = risk_report_html(
        bands, stress, title="A <b> & B", tails=tails, limits=limits, details={"regime": "calm"}, hedge=hedge,
        hedge_message="Cheapest hedge: scale_exposure.",
    )  # fmt: skip
    # THEN it embeds two PNGs (fan chart, stress bars) and fetches nothing
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert "http" not in page and "A &lt;b&gt; &amp; B" in page and "<b>" not in page
    # AND the tables: VaR/CVaR with readable headers, stress rows (escaped), limits coloured by severity, the hedge
    assert "<th>VaR 95%</th><th>CVaR 95%</th>" in page and "<td>7.00%</td><td>9.00%</td>" in page
    assert "<table class='stress'>" in page and "<td>covid &lt;2020&gt;</td>" in page and "<td>25.00%</td>" in page
    assert "<tr class='critical'><td>max_volatility</td>" in page and "<td>200.00%</td>" in page
    assert "<table class='hedge'>" in page and "Cheapest hedge: scale_exposure." in page
    assert "<th>regime</th><td>calm</td>" in page
    # AND without a hedge the page says no limit is breached
    calm = risk_report_html(bands, stress, title="t", tails=tails, limits=limits.iloc[:0])
    assert "No limit is breached" in calm and "<table class='hedge'>" not in calm
