"""The efficient-frontier chart and report, on moments whose frontier is known in closed form."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from portfolio_engine.optimization import Constraints, EfficientFrontier, Moments, efficient_frontier, max_sharpe
from portfolio_engine.reports.frontier import frontier_figure_png, frontier_report_html, frontier_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ASSETS = ["LOW", "MID", "HIGH"]
VOLS = np.array([0.10, 0.20, 0.30])
MU = np.array([0.04, 0.07, 0.12])


@pytest.fixture(scope="module")
def moments() -> Moments:
    """Uncorrelated assets: the long-only minimum-variance portfolio is interior, w_i ~ 1 / sigma_i^2."""
    return Moments(pd.Series(MU, index=ASSETS), pd.DataFrame(np.diag(VOLS**2), index=ASSETS, columns=ASSETS))


@pytest.fixture(scope="module")
def frontier(moments: Moments) -> EfficientFrontier:
    return efficient_frontier(moments, Constraints(), n_points=20, risk_free_rate=0.02)


def test_points_rise_with_risk_and_the_first_is_the_closed_form_minimum_variance(
    frontier: EfficientFrontier, moments: Moments
) -> None:
    # GIVEN a long-only frontier of uncorrelated assets
    # WHEN it is tabulated
    table = frontier_table(frontier)
    # THEN volatility and return both rise along the efficient branch
    assert len(table) == 20
    assert (np.diff(table["volatility"]) > -1e-9).all() and (np.diff(table["expected_return"]) > -1e-9).all()
    # AND the leftmost point is the minimum-variance portfolio: 1 / sqrt(sum 1/sigma_i^2), w_i ~ 1/sigma_i^2
    inverse = 1.0 / VOLS**2
    assert table["volatility"].iloc[0] == pytest.approx(1.0 / np.sqrt(inverse.sum()), abs=1e-7)
    assert table["volatility"].iloc[0] == pytest.approx(frontier.volatilities.min(), abs=1e-12)
    assert table["expected_return"].iloc[0] == pytest.approx(MU @ inverse / inverse.sum(), abs=1e-7)
    # AND the top is the highest-return asset alone
    assert table["expected_return"].iloc[-1] == pytest.approx(MU.max(), abs=1e-6)
    assert table["sharpe"].to_numpy() == pytest.approx((table["expected_return"] - 0.02) / table["volatility"])


def test_the_png_renders_at_the_requested_size(frontier: EfficientFrontier, moments: Moments) -> None:
    # GIVEN a frontier, the assets and a portfolio on it
    portfolio = max_sharpe(moments, risk_free_rate=0.02)
    # WHEN it is drawn at 100 dpi
    png = frontier_figure_png(frontier, portfolio=portfolio, assets=moments, title="three assets", dpi=100)
    # THEN it is a 9 x 6 inch PNG with content (not a blank canvas)
    assert png.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[:2] == (600, 900)
    assert image[..., :3].std() > 0.05
    # AND the chart without the optional layers renders too, and differs
    bare = frontier_figure_png(frontier, title="three assets", dpi=100)
    assert bare.startswith(PNG_MAGIC) and bare != png


def test_the_html_report_embeds_the_chart_and_the_weights(frontier: EfficientFrontier, moments: Moments) -> None:
    # GIVEN the maximum-Sharpe portfolio (tangency of uncorrelated assets: w_i ~ (mu_i - rf) / sigma_i^2)
    portfolio = max_sharpe(moments, risk_free_rate=0.02)
    tangency = (MU - 0.02) / VOLS**2
    assert portfolio.weights.to_numpy() == pytest.approx(tangency / tangency.sum(), abs=1e-6)
    # WHEN the report is rendered with a title that needs escaping and some details
    page = frontier_report_html(
        frontier, portfolio=portfolio, assets=moments, title="A <b> & B", details={"regime": "calm"}
    )
    # THEN the page is self-contained: one embedded PNG, no external resources
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG_MAGIC)
    assert "http" not in page and "A &lt;b&gt; &amp; B" in page and "<b>" not in page
    # AND it lists every weight as a percentage, the headline figures and the frontier's points
    for asset, weight in portfolio.weights.items():
        assert re.search(rf"<th>{asset}</th>\s*<td>{weight:.2%}</td>", page)
    assert f"{portfolio.volatility:.2%}" in page and f"{portfolio.sharpe:.2f}" in page
    assert "<th>regime</th><td>calm</td>" in page
    assert page.count("<tr>") >= 20 + len(ASSETS)
