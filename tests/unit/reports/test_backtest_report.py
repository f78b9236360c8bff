"""The backtest report: PNG figures that decode, and one HTML page embedding them with every table."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest import (
    DecisionContext,
    EstimationWindow,
    brinson_fachler,
    calendar_schedule,
    factor_attribution,
    in_vs_out_of_sample,
    metrics_table,
    run_backtest,
)
from portfolio_engine.exceptions import DataError
from portfolio_engine.reports.backtest import backtest_figures_png, backtest_report_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ASSETS = ["a", "b", "c"]


def _image(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def _inverse_vol(history: pd.DataFrame, context: DecisionContext) -> pd.Series:
    inverse = 1.0 / history.std()
    return 0.9 * inverse / inverse.sum()


@pytest.fixture(scope="module")
def run() -> dict:
    rng = np.random.default_rng(3)
    returns = pd.DataFrame(
        rng.normal([4e-4, 2e-4, 1e-4], [0.012, 0.008, 0.004], size=(400, 3)),
        index=pd.bdate_range("2022-01-03", periods=400), columns=ASSETS,
    )  # fmt: skip
    window = EstimationWindow("rolling", 60)
    result = run_backtest(
        returns, _inverse_vol, calendar_schedule(returns.index, "monthly", min_history=60), window=window
    )
    days = result.net_returns.index
    benchmark = returns.loc[days].mean(axis=1).rename("equal weight")
    equity = pd.DataFrame({"strategy": result.equity, "equal weight": (1.0 + benchmark).cumprod()})
    metrics = metrics_table({"strategy": result.net_returns}, benchmark={"equal weight": benchmark})
    calm = pd.Series(np.where(np.arange(len(days)) % 120 < 80, 0.9, 0.2), index=days)
    regimes = pd.DataFrame({"calm": calm, "turbulent": 1.0 - calm})
    factors = returns.loc[days, ["a"]].rename(columns={"a": "market"})
    sectors = pd.DataFrame(0.5, index=days[:3], columns=["x", "y"])
    overweight = sectors + np.array([0.1, -0.1])
    brinson = brinson_fachler(overweight, sectors * 0.03, sectors, sectors * np.array([0.02, 0.01]))
    attribution = {
        "factors": factor_attribution(result.net_returns, factors).summary(),
        "sectors": brinson.total(),
    }
    oos = in_vs_out_of_sample(result, returns, window=window).summary()
    return {"result": result, "equity": equity, "metrics": metrics, "regimes": regimes,
            "attribution": attribution, "oos": oos}  # fmt: skip


def test_the_figures_are_valid_pngs_of_the_requested_charts(run: dict) -> None:
    # Given a backtest, a benchmark, regimes and attributions
    result = run["result"]
    # When the figures are drawn with and without regimes
    shaded = backtest_figures_png(
        equity=run["equity"], net_returns=result.net_returns, weights=result.weights, regimes=run["regimes"],
        attribution=run["attribution"], title="t",
    )  # fmt: skip
    plain = backtest_figures_png(equity=run["equity"], net_returns=result.net_returns, weights=result.weights)
    # Then every chart is a PNG of its stated size (inches x dpi 100)
    assert set(shaded) == {"equity", "drawdown", "rolling_sharpe", "weights", "attribution"}
    assert set(plain) == {"equity", "drawdown", "rolling_sharpe", "weights"}
    assert _image(shaded["equity"]).shape[:2] == (500, 1100)
    assert _image(shaded["weights"]).shape[:2] == (400, 1100)
    assert _image(shaded["attribution"]).shape[:2] == (400, 1100)  # two panels of 5.5 inches
    for png in plain.values():
        assert _image(png).std() > 0.01  # something was drawn
    # And the regime shading changes the equity chart but not the rolling Sharpe
    assert shaded["equity"] != plain["equity"]
    assert np.array_equal(_image(shaded["rolling_sharpe"]), _image(plain["rolling_sharpe"]))


def test_the_weights_chart_handles_shorts_and_the_figures_reject_empty_inputs(run: dict) -> None:
    result = run["result"]
    shorts = result.weights.assign(a=-0.2)
    png = backtest_figures_png(equity=run["equity"], net_returns=result.net_returns, weights=shorts)["weights"]
    assert _image(png).shape[:2] == (400, 1100)
    with pytest.raises(DataError):
        backtest_figures_png(equity=pd.DataFrame(), net_returns=result.net_returns, weights=result.weights)
    with pytest.raises(DataError):
        backtest_figures_png(equity=run["equity"], net_returns=pd.Series(dtype=float), weights=result.weights)


def test_the_html_page_embeds_the_figures_and_every_table(run: dict) -> None:
    # Given the backtest's outputs
    result = run["result"]
    # When the report is rendered
    page = backtest_report_html(
        title="Inverse vol <test>", equity=run["equity"], net_returns=result.net_returns, weights=result.weights,
        metrics=run["metrics"], regimes=run["regimes"], attribution=run["attribution"], oos=run["oos"],
    )  # fmt: skip
    # Then the title is escaped and the five PNGs are embedded and decode
    assert "<title>Inverse vol &lt;test&gt;</title>" in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 5
    for data in images:
        _image(base64.b64decode(data))
    # And every table is there: metrics, weights, regimes, both attributions and the out-of-sample summary
    for css in ("metrics", "weights", "regimes", "attribution", "oos"):
        assert f'class="dataframe {css}"' in page
    assert page.count('class="dataframe attribution"') == 2
    for label in (*run["metrics"].index, "equal weight", *run["oos"].columns, "allocation", "contribution (annual)"):
        assert str(label) in page
    # And the last decision's weights appear with four significant digits
    assert f"{result.weights['c'].iloc[-1]:.4g}" in page


def test_the_html_page_without_optional_sections(run: dict) -> None:
    result = run["result"]
    page = backtest_report_html(
        title="plain", equity=run["equity"][["strategy"]], net_returns=result.net_returns, weights=result.weights,
        metrics=run["metrics"], regimes=None, attribution=None, oos=None,
    )  # fmt: skip
    assert len(re.findall(r"data:image/png;base64,", page)) == 4
    assert "Regimes" not in page and "Attribution" not in page and "Out-of-sample" not in page
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>")
