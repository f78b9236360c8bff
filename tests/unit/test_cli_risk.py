"""`spe risk report`: Monte Carlo, historical measures, stress, limits and hedges on a lake built by `spe run`.

Numbers are checked against independent references computed here from the lake's curated prices: the
portfolio's volatility and Normal VaR in closed form, the historical VaR's exceedance count, a stress replay,
and a plain numpy simulation of the one-regime Normal model the Monte Carlo runs with ``--no-regime``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from portfolio_engine.cli import app

runner = CliRunner()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SYMBOLS = ["AAPL", "JNJ", "KO", "MSFT", "XOM"]
HISTORY_DAYS = 756  # the risk steps' window of history
WEIGHTS = {"AAPL": 0.3, "JNJ": 0.3, "KO": 0.2, "XOM": 0.2}
TIGHT_YAML = """\
name: tight
universe: [AAPL, MSFT, JNJ, KO]
method: min_variance
estimators: {mean: historical, covariance: sample}
lookback_days: 252
limits: {max_volatility: 0.01}
"""


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake from one `spe run` on five bundled stocks and the index (the regime model trains): built once."""
    directory = tmp_path_factory.mktemp("risk") / "spe-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory))
        patch.delenv("SPE_LAKE_URI", raising=False)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        result = runner.invoke(app, ["run", "--symbols", ",".join(SYMBOLS), "--run-id", "base", "--json"])
    assert result.exit_code == 0, result.stdout
    return directory


@pytest.fixture
def lake_dir(base_lake: Path, data_dir: Path) -> Path:
    """A private copy of the base lake as this test's data directory."""
    shutil.copytree(base_lake, data_dir, dirs_exist_ok=True)
    return data_dir


def _report(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["risk", "report", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def default_report(base_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """The default portfolio's report (regime-aware, optimized), 20,000 paths, with an HTML report."""
    directory = tmp_path_factory.mktemp("risk-default")
    shutil.copytree(base_lake, directory / "spe-data")
    html = directory / "report.html"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory / "spe-data"))
        patch.delenv("SPE_LAKE_URI", raising=False)
        code, document = _report("--paths", "20000", "--seed", "11", "--chart", str(html))
    assert code == 0, document
    yield document, html


def _portfolio_returns(lake_dir: Path, weights: dict[str, float]) -> pd.Series:
    """Daily returns of constant ``weights`` over the last 756 common dates of the curated prices."""
    frame = pd.read_parquet(lake_dir / "lake" / "curated" / "prices" / "source=bundled")
    prices = frame.pivot(index="date", columns="symbol", values="adj_close")[list(weights)].sort_index()
    returns = prices.pct_change(fill_method=None).iloc[1:].dropna(how="any").iloc[-HISTORY_DAYS:]
    return returns @ pd.Series(weights)


def _curated_prices(lake_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(lake_dir / "lake" / "curated" / "prices" / "source=bundled")
    return frame.pivot(index="date", columns="symbol", values="adj_close").sort_index()


def test_monte_carlo_figures_are_ordered_and_the_limits_read_them(default_report: tuple[dict[str, Any], Path]) -> None:
    # GIVEN the default portfolio's report
    document, _ = default_report
    mc, figures = document["monte_carlo"], document["monte_carlo"]["figures"]
    # THEN the simulation is the regime model's, as asked
    assert mc["n_paths"] == 20_000 and mc["horizon_days"] == 21 and mc["seed"] == 11
    assert document["regime_model"]["available"] and len(mc["states"]) == 2 and mc["innovations"] == "student_t"
    # AND CVaR >= VaR at each level, both grow with the level; drawdown probabilities fall with the threshold
    for level in ("0.95", "0.99"):
        assert figures[f"cvar_{level}"] >= figures[f"var_{level}"] > 0
    assert figures["var_0.99"] > figures["var_0.95"] and figures["cvar_0.99"] > figures["cvar_0.95"]
    assert 1 >= figures["p_drawdown_gt_0.05"] >= figures["p_drawdown_gt_0.1"] >= figures["p_drawdown_gt_0.2"] >= 0
    # AND every method's CVaR >= its VaR, the Monte Carlo row first at its 21-day horizon
    rows = document["var_cvar"]
    assert rows[0]["method"] == "monte_carlo" and rows[0]["var_0.99"] == figures["var_0.99"]
    assert {r["method"] for r in rows[1:]} == {"historical", "normal", "student_t", "cornish_fisher"}
    assert all(r[f"cvar_{lv}"] >= r[f"var_{lv}"] for r in rows for lv in ("0.95", "0.99"))
    # AND the fan chart starts at today's value, its quantiles ordered by level at every step
    fan = np.array(mc["fan_chart"]["values"])
    assert fan.shape == (22, len(mc["fan_chart"]["levels"])) and (fan[0] == 1.0).all()
    assert (np.diff(fan, axis=1) >= 0).all()
    # AND its 5% terminal quantile (512 sampled paths) is near 1 - VaR 95% (all 20,000 paths)
    five = mc["fan_chart"]["levels"].index(0.05)
    assert fan[-1, five] == pytest.approx(1.0 - figures["var_0.95"], abs=0.03)
    # AND the limits measure what the aggregate reports: Monte Carlo at its horizon, history otherwise
    measured, historical = document["limits"]["measured"], document["historical"]["figures"]
    assert measured["max_var_99_21d"] == figures["var_0.99"] and measured["max_cvar_99_21d"] == figures["cvar_0.99"]
    assert measured["max_var_95_1d"] == pytest.approx(historical["var_historical_0.95_1d"], rel=1e-12)
    assert measured["max_volatility"] == pytest.approx(historical["volatility"], rel=1e-12)
    assert measured["max_drawdown"] == pytest.approx(historical["max_drawdown"], rel=1e-12)
    assert measured["max_beta"] == pytest.approx(abs(historical["beta"]), rel=1e-12)
    assert measured["max_weight"] == pytest.approx(max(document["optimization"]["target_weights"].values()))


def test_historical_measures_and_stress_match_the_raw_prices(
    default_report: tuple[dict[str, Any], Path], base_lake: Path
) -> None:
    # GIVEN the report and the target weights' daily returns recomputed from the curated prices
    document, _ = default_report
    weights = document["optimization"]["target_weights"]
    returns = _portfolio_returns(base_lake, weights)
    historical = document["historical"]["figures"]
    assert document["historical"]["days"] == len(returns) == HISTORY_DAYS
    # THEN volatility and the Normal VaR are the closed forms on those returns
    mean, std = returns.mean(), returns.std(ddof=1)
    assert historical["volatility"] == pytest.approx(std * np.sqrt(252), rel=1e-10)
    for level in (0.95, 0.99):
        assert historical[f"var_normal_{level}_1d"] == pytest.approx(-mean + stats.norm.ppf(level) * std, rel=1e-8)
    # AND the historical VaR is a 95% quantile of the losses: at most 5% above it, at least 5% at or above it
    losses, var = -returns.to_numpy(), historical["var_historical_0.95_1d"]
    assert (losses > var).mean() <= 0.05 <= (losses >= var).mean()
    # AND the 2008-09..2009-03 replay is the buy-and-hold loss of the weights from the eve of the window
    prices = _curated_prices(base_lake)[list(weights)]
    growth = prices.loc[:"2009-03-31"].iloc[-1] / prices.loc[:"2008-08-31"].iloc[-1]
    gfc = next(s for s in document["stress"]["scenarios"] if s["name"] == "gfc")
    assert gfc["loss"] == pytest.approx(1.0 - float((pd.Series(weights) * growth).sum()), rel=1e-10)
    assert {s["name"] for s in document["stress"]["shocks"]} >= {"equity_-20%_beta", "volatility_x2", "correlation_1"}


def test_the_html_report_embeds_the_charts_and_the_tables(default_report: tuple[dict[str, Any], Path]) -> None:
    # GIVEN the report written as HTML
    document, html = default_report
    page = html.read_text(encoding="utf-8")
    assert document["chart"] == str(html)
    # THEN the fan chart and the stress bars are embedded PNGs
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    # AND the stress table lists every scenario, the limits table every limit, the VaR table the MC figure
    assert "<table class='stress'>" in page
    assert all(f"<td>{s['name']}</td>" in page for s in document["stress"]["scenarios"])
    assert all(f"<td>{name}</td>" in page for name in document["limits"]["limits"])
    assert f"<td>{document['monte_carlo']['figures']['var_0.99']:.2%}</td>" in page


def _holdings() -> dict:
    """The default portfolio's holdings in the store of record (the data dir's SQLite file)."""
    from portfolio_engine.cli.portfolio import open_store

    view = open_store().view("portfolio", "default")
    assert view is not None and view["holdings"] is not None
    return dict(view["holdings"])


def test_shards_give_bit_identical_figures_that_match_an_independent_simulation(lake_dir: Path, tmp_path: Path) -> None:
    # GIVEN weights to measure (no optimization), the one-regime Normal model, 70,000 paths (5 blocks of 16,384)
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(WEIGHTS))
    holdings = _holdings()
    common = ["--weights", str(path), "--no-regime", "--innovations", "normal", "--paths", "70000", "--seed", "5"]
    chart = tmp_path / "risk.png"
    # WHEN the same run is simulated in 1 shard and in 4
    code_one, one = _report(*common, "--shards", "1")
    code_four, four = _report(*common, "--shards", "4", "--chart", str(chart))
    # THEN the Monte Carlo figures and the fan chart are identical, bit for bit
    assert code_one == code_four == 0, (one, four)
    assert (one["monte_carlo"]["shards"], four["monte_carlo"]["shards"]) == (1, 4)
    assert one["monte_carlo"]["figures"] == four["monte_carlo"]["figures"]
    assert one["monte_carlo"]["fan_chart"] == four["monte_carlo"]["fan_chart"]
    assert one["monte_carlo"]["states"] == ["all"] and one["optimization"]["method"] == "given"
    # AND the VaR agrees with numpy's own simulation of the model (daily N(w'mu, w'Sigma w) on the last 756 days,
    # compounded over 21 days) within 4 standard errors of a quantile estimated on 70,000 paths
    returns = _portfolio_returns(lake_dir, WEIGHTS)
    rng = np.random.default_rng(2024)
    daily = returns.mean() + returns.std(ddof=1) * rng.standard_normal((400_000, 21))
    losses = 1.0 - np.prod(1.0 + daily, axis=1)
    for level in (0.95, 0.99):
        reference = np.quantile(losses, level)
        density = 0.01 / (np.quantile(losses, level + 0.005) - np.quantile(losses, level - 0.005))
        error = np.sqrt(level * (1 - level) / 70_000) / density
        assert one["monte_carlo"]["figures"][f"var_{level:g}"] == pytest.approx(reference, abs=4 * error)
    # AND the weights' result document holds the spec in force; the portfolio's holdings are untouched
    stored = json.loads((lake_dir / "lake" / "risk" / one["run_id"] / "portfolio.json").read_text())
    assert stored["spec_in_force"]["name"] == "default" and stored["result"]["weights"] == pytest.approx(WEIGHTS)
    assert _holdings() == holdings
    # AND the PNG holds the fan chart and the stress bars
    assert chart.read_bytes().startswith(PNG_MAGIC) and four["chart"] == str(chart)


def test_a_tight_limit_is_a_critical_breach_with_a_hedge_and_alerts_only_when_asked(
    lake_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a spec whose volatility limit (1%) no stock portfolio meets
    spec = tmp_path / "tight.yaml"
    spec.write_text(TIGHT_YAML)
    log = lake_dir / "alerts" / "alerts.jsonl"
    before = log.read_text().count("\n") if log.exists() else 0
    html = tmp_path / "tight.html"
    # WHEN it is reported for people (no --json), then with --alert
    shown = runner.invoke(app, ["risk", "report", "--spec", str(spec), "--paths", "20000", "--chart", str(html)])
    code, document = _report("--spec", str(spec), "--paths", "20000", "--seed", "3", "--alert")
    # THEN the breach is critical (above 1.5 x the limit) and a hedge is proposed, never executed
    assert shown.exit_code == 0 and code == 0, (shown.stdout, document)
    limits = document["limits"]
    assert limits["any_breach"] and limits["worst_severity"] == "critical"
    assert [b["limit"] for b in limits["breaches"]] == ["max_volatility"]
    hedge = document["hedge"]
    assert hedge is not None and hedge["executed"] is False and hedge["chosen"]["kind"] == "scale_exposure"
    # AND scaling is the closed form for a homogeneous limit: keep s = limit / volatility of the book
    assert hedge["chosen"]["parameter"] == pytest.approx(0.01 / limits["measured"]["max_volatility"], rel=1e-6)
    # AND the terminal shows the tables, the HTML the hedge proposals
    for text in ("VaR / CVaR", "Stress", "Limits", "critical", "Hedge proposal", "scale_exposure"):
        assert text in shown.stdout
    assert "<table class='hedge'>" in html.read_text(encoding="utf-8")
    # AND only the --alert run sent the breach, to the local log
    assert document["alerts"]["sent"] == 1 and document["alerts"]["failed"] == 0
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1 and '"max_volatility"' in lines[-1] and '"critical"' in lines[-1]


@pytest.mark.parametrize(
    ("file_name", "content", "extra", "error", "named"),
    [
        ("nan.json", '{"AAPL": NaN, "JNJ": 0.5, "KO": 0.5}', [], "RiskInputError", "NaN"),
        ("short.csv", "symbol,weight\nAAPL,0.5\nJNJ,0.4\n", [], "RiskInputError", "sum to 0.9"),
        ("unknown.json", '{"AAPL": 0.5, "TSLA": 0.5}', [], "RiskInputError", "TSLA"),
        (None, None, ["--spec", "limits.yaml"], "SpecificationError", "max_leverage"),
        (None, None, ["--chart", "risk.pdf"], "ConfigurationError", ".pdf"),
        (None, None, ["--horizon", "0"], "ConfigurationError", "horizon_days"),
    ],
)
def test_bad_inputs_exit_1_with_a_typed_error_and_a_hint(
    lake_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_name: str | None,
    content: str | None,
    extra: list[str],
    error: str,
    named: str,
) -> None:
    # GIVEN bad weights, a spec with an unknown limit, a chart format, a horizon of 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "limits.yaml").write_text("name: bad\nlimits: {max_leverage: 2.0}\n")
    args = list(extra)
    if file_name is not None:
        (tmp_path / file_name).write_text(content or "")
        args += ["--weights", file_name]
    # WHEN the report is asked for
    code, document = _report(*args)
    # THEN it stops with the typed error naming the value, and a hint
    assert code == 1
    assert document["error"] == error and named in document["message"] and document["hint"]
    # AND nothing was simulated (the base run's risk folder is the only one)
    assert sorted(p.name for p in (lake_dir / "lake" / "risk").iterdir()) == ["base"]


def test_the_monitor_marks_the_holdings_bar_by_bar_like_a_buy_and_hold_by_hand(lake_dir: Path) -> None:
    result = runner.invoke(app, ["risk", "monitor", "--since", "2022-06-01", "--last", "3", "--json"])
    assert result.exit_code == 0, result.stdout
    shown = json.loads(result.stdout)
    held = _holdings()["weights"]
    weights = pd.Series({k: v for k, v in held.items() if v != 0})
    prices = _curated_prices(lake_dir)[list(weights.index)].loc["2022-06-01":].dropna()
    value = float((weights * prices.iloc[-1] / prices.iloc[0]).sum())
    assert shown["bars"] == len(prices) - 1 and shown["value"] == pytest.approx(value, rel=1e-12)
    path = (prices / prices.iloc[0]) @ weights
    assert shown["max_drawdown"] == pytest.approx(float((1 - path / path.cummax()).max()), rel=1e-12)
    assert len(shown["history"]) == 3 and shown["volatility"] > 0


def test_the_monitor_needs_holdings_and_a_known_interval(data_dir: Path) -> None:
    result = runner.invoke(app, ["risk", "monitor", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "EmptyDataError"
    result = runner.invoke(app, ["risk", "monitor", "--interval", "7m", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "ConfigurationError"
