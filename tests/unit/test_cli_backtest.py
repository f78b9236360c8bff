"""`spe backtest`: the backtest machine run from the command line, its JSON, its table, its report and errors."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource, load_sectors
from portfolio_engine.backtest.metrics import metrics_table
from portfolio_engine.cli import app

runner = CliRunner()
SMALL = ["AAPL", "KO", "XOM"]
MIN_VARIANCE = "name: calm\nmethod: min_variance\nestimators: {mean: historical, covariance: sample}\n"


@pytest.fixture
def lake(data_dir: Path) -> ParquetLake:
    lake = ParquetLake(str(data_dir / "lake"))
    bars = BundledSource().fetch([*SMALL, "^GSPC"], start=date(2017, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    lake.write_reference("sectors", pd.DataFrame(sorted(load_sectors().items()), columns=["symbol", "sector"]))
    return lake


def test_backtest_json_reports_the_metrics_of_the_strategy_and_benchmarks(
    lake: ParquetLake, tmp_path: Path, data_dir: Path
) -> None:
    # Given a min-variance spec on three stocks, 2018-2022, quarterly, two windows
    spec = tmp_path / "strategy.yaml"
    spec.write_text(MIN_VARIANCE)
    args = ["backtest", "--spec", str(spec), "--symbols", ",".join(SMALL), "--start", "2018-01-01"]
    args += ["--frequency", "quarterly", "--windows", "2", "--cost-bps", "5", "--run-id", "bt-cli"]
    # When it runs with --json, --report, --figures and a 2% risk-free rate
    report, figures = tmp_path / "out.html", tmp_path / "figures"
    args += ["--risk-free", "0.02", "--figures", str(figures), "--report", str(report)]
    result = runner.invoke(app, [*args, "--json", "--data-dir", str(data_dir)])
    # Then the JSON names the strategy, its benchmarks and the windows, and the report is a self-contained page
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["strategy"] == "calm" and summary["n_windows"] == 2
    assert summary["columns"] == ["calm", "^GSPC", "equal_weight", "min_variance"] and set(summary["metrics"]) == set(
        summary["columns"]
    )
    # 2018 has 251 trading days, all history: quarter ends from 2019-03-29 to 2022-09-30 (the data end in 2022-12-28)
    assert summary["n_decisions"] == 15 and summary["first_date"] == "2019-03-29"
    stored = lake.get_json("backtests/bt-cli/result.json")
    assert stored["metrics"] == summary["metrics"] and stored["request"]["cost_bps"] == 5.0
    html = report.read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "data:image/png;base64," in html
    # with the Brinson attribution by sector and the out-of-sample table; no ff3 table: Fama-French skipped, said so
    assert "<h2>Attribution</h2>" in html and "Brinson-Fachler" in html and "Out-of-sample" in html
    assert any("ff3_monthly" in reason for reason in summary["skipped"])
    # and the walk-forward windows' figures follow as a second table, one row per window
    assert "<h2>Walk-forward windows</h2>" in html and set(stored["windows"]) == {"0", "1"}
    # and the figures folder holds one PNG per figure
    names = {"equity", "drawdown", "rolling_sharpe", "weights", "attribution"}
    assert {p.name for p in figures.iterdir()} == {f"{n}.png" for n in names}
    assert sorted(summary["figures"]) == sorted(str(figures / f"{n}.png") for n in names)
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in figures.iterdir())
    # and the Sharpe ratio is in excess of 2% a year (the daily returns read back from the stored equity)
    equity = pd.Series(stored["equity"]["calm"])
    equity.index = pd.DatetimeIndex(equity.index)
    net = equity / equity.shift(1, fill_value=1.0) - 1.0
    expected = metrics_table({"calm": net}, risk_free=0.02)["calm"]["Sharpe"]
    assert stored["request"]["risk_free"] == 0.02 and summary["metrics"]["calm"]["Sharpe"] == pytest.approx(expected)


def test_backtest_prints_the_table_and_a_bad_policy_exits_with_its_error(lake: ParquetLake, data_dir: Path) -> None:
    base = ["backtest", "--symbols", ",".join(SMALL), "--start", "2020-01-01", "--frequency", "quarterly"]
    # When it runs without --json, it prints the metrics table
    result = runner.invoke(app, [*base, "--windows", "1", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "Sharpe" in result.stdout and "equal_weight" in result.stdout
    # When the policy is unknown, it exits 1 with the option named
    bad = runner.invoke(app, [*base, "--policy", "astrology", "--json", "--data-dir", str(data_dir)])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"] == "ConfigurationError" and "policy" in json.loads(bad.stdout)["message"]
    # and so does a risk-free rate that is neither a decimal nor treasury_3m
    bad = runner.invoke(app, [*base, "--risk-free", "libor", "--json", "--data-dir", str(data_dir)])
    assert bad.exit_code == 1 and "risk_free" in json.loads(bad.stdout)["message"]
