"""The `spe` command: --json output, exit codes and messages, on the real bundled data."""

from __future__ import annotations

import json
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd
import pytest
from typer.testing import CliRunner

from portfolio_engine.cli import app

runner = CliRunner()


def _json(args: list[str]) -> tuple[int, dict]:
    result = runner.invoke(app, args)
    return result.exit_code, json.loads(result.stdout)


def test_run_prints_a_json_summary_and_leaves_lake_features_and_run_record(data_dir: Path) -> None:
    code, summary = _json(["run", "--symbols", "AAPL,MSFT", "--run-id", "cli-run", "--json"])
    assert code == 0, summary
    universe = summary["universe"]
    assert universe["symbols"] == ["AAPL", "MSFT"] and universe["rows"] == 2 * 8313
    assert (universe["first_date"], universe["last_date"]) == ("1990-01-02", "2022-12-28")
    assert summary["benchmarks"] == ["^GSPC"] and summary["validation"]["passed"]
    # the states before the commit, with their timings, read from the execution's own history
    assert [s["state"] for s in summary["steps"]] == [
        "StartRun",
        "IngestPrices",
        "ValidatePrices",
        "BuildFeatures",
        "DetectRegime",
        "Optimize",
        "PlanRisk",
        "MonteCarlo",
        *["SimulateRiskShard"] * 4,
        "AggregateRisk",
        "StressTest",
        "CheckLimits",
        "ProposeHedge",
        "AlertBreaches",
    ]
    # Two stocks cannot meet the default limits made for twenty: the breach is alerted, the hedge proposed.
    assert summary["limits"]["any_breach"] and summary["alerts"]["sent"] >= 1 and summary["hedge"]["chosen"]
    assert sorted(summary["portfolio"]["target_weights"]) == ["AAPL", "MSFT"]
    # The bundled default adapted to the two stocks, and the summary says how and which regime policy applied
    portfolio = summary["portfolio"]
    assert portfolio["adaptations"][0].startswith("universe narrowed to the run's 2 symbols of the spec's 20")
    widened = "group cap Information Technology 0.35 -> 1 (the caps reach only 35.0% of the budget on these 2 assets)"
    assert widened in portfolio["adaptations"]
    assert portfolio["regime_role"] == portfolio["regime"] == summary["regime"]["regime"]
    assert portfolio["policy"] == ("turbulent" if portfolio["regime"] == "turbulent" else None)
    assert all(s["status"] == "succeeded" for s in summary["steps"])
    # AND the run is recorded in the store with its per-state timings and committed result
    assert summary["status"] == "SUCCEEDED" and summary["commit"]["holdings_moved"]
    assert all(s["status"] == "succeeded" and s["seconds"] >= 0 for s in summary["steps"])
    listed = json.loads(runner.invoke(app, ["runs", "list", "--json"]).stdout)["runs"]
    assert [r["run_id"] for r in listed] == ["cli-run"] and listed[0]["status"] == "SUCCEEDED"
    assert (data_dir / "lake" / summary["features"]["feature_key"] / "_manifest.json").exists()


def test_data_show_and_validate_report_what_the_lake_holds(data_dir: Path) -> None:
    assert runner.invoke(app, ["data", "ingest", "--symbols", "KO,PEP", "--start", "2020-01-01"]).exit_code == 0
    code, raw = _json(["data", "show", "--zone", "raw", "--json"])
    assert code == 0 and raw["symbols"] == ["KO", "PEP", "^GSPC"] and raw["first_date"] == "2020-01-02"
    code, report = _json(["data", "validate", "--json"])
    assert code == 0 and report["passed"] and report["symbols"] == ["KO", "PEP", "^GSPC"]
    assert report["report"]["n_rows_in"] == raw["rows"]
    code, curated = _json(["data", "show", "--json"])
    assert curated["rows"] == raw["rows"] and curated["feature_sets"] == []


def test_an_empty_lake_shows_nothing(data_dir: Path) -> None:
    code, shown = _json(["data", "show", "--json"])
    assert code == 0 and shown["n_symbols"] == 0 and shown["rows"] == 0


def test_a_failed_run_exits_1_with_the_step_error_and_cause(data_dir: Path) -> None:
    code, error = _json(["run", "--symbols", "AAPL,NOSUCH", "--json"])
    assert code == 1 and error["error"] == "UnknownSymbolError"
    assert "NOSUCH" in error["message"] and "Hint" not in error["message"]
    assert "Bundled symbols: AAPL" in error["hint"]


def test_bad_options_exit_1_naming_the_option(data_dir: Path) -> None:
    code, error = _json(["run", "--policy", "bogus", "--json"])
    assert code == 1 and error["error"] == "ConfigurationError" and "validation_policy" in error["message"]
    result = runner.invoke(app, ["data", "show", "--zone", "attic"])
    assert result.exit_code == 1 and "Unknown zone" in result.stderr


def test_ingest_a_user_file_then_run_on_it(data_dir: Path, tmp_path: Path) -> None:
    file = tmp_path / "mine.csv"
    sessions = xcals.get_calendar("XNYS").sessions_in_range("2021-01-04", "2022-12-30")[:300]
    pd.DataFrame({"Date": sessions, "Ticker": "ZZZ", "Adj Close": range(100, 400)}).to_csv(file, index=False)
    code, ingest = _json(["data", "ingest", "--source", "file", "--file", str(file), "--json"])
    assert code == 0 and ingest["rows_new"] == 300 and ingest["symbols"] == ["ZZZ"]
    code, summary = _json(["run", "--source", "file", "--file", str(file), "--symbols", "ZZZ", "--json"])
    assert code == 0 and summary["ingest"]["rows_new"] == 0 and summary["universe"]["rows"] == 300


def test_run_and_show_print_readable_summaries(data_dir: Path) -> None:
    result = runner.invoke(app, ["run", "--symbols", "KO,PEP", "--start", "2022-01-01"])
    assert result.exit_code == 0, result.stderr
    printed = " ".join(result.stdout.split())  # rich wraps long lines
    assert "Default spec adapted to this run: universe narrowed to the run's 2 symbols" in printed
    assert "Universe: 2 symbols from 'bundled', 2022-01-03 .. 2022-12-28" in result.stdout
    assert "Validation (forward_fill): passed" in result.stdout and "^GSPC" in result.stdout
    shown = runner.invoke(app, ["data", "show"])
    assert shown.exit_code == 0 and "3 symbols" in shown.stdout


def test_regime_show_fit_and_charts_after_a_run(data_dir: Path, tmp_path: Path) -> None:
    # Given a run (which trains the first regime model on the index)
    code, summary = _json(["run", "--symbols", "KO", "--json"])
    assert code == 0 and summary["regime"]["trained_now"]
    # When the champion is shown
    code, shown = _json(["regime", "show", "--days", "5", "--json", "--chart", str(tmp_path / "r.png")])
    # Then its filtered probabilities are the run's, with the transition matrix and history
    assert code == 0, shown
    assert shown["version"] == summary["regime"]["model_version"] and shown["as_of"] == "2022-12-28"
    assert shown["probabilities"] == pytest.approx(summary["regime"]["probabilities"])
    assert len(shown["history"]) == 5 and len(shown["transition_matrix"]) == 2
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _ = _json(["regime", "show", "--json", "--chart", str(tmp_path / "r.html")])
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "data:image/png;base64," in page and "Transition matrix" in page
    # When a three-state challenger is trained, the promotion rule decides on the same holdout
    code, fitted = _json(["regime", "fit", "--states", "3", "--restarts", "2", "--json"])
    assert code == 0, fitted
    assert fitted["promoted"] == (fitted["challenger_metric"] >= fitted["champion_metric"])
    assert fitted["champion"] == (fitted["version"] if fitted["promoted"] else summary["regime"]["model_version"])
    # When the champion's definition is validated, the report is stored beside it and written as Markdown
    args = ["regime", "validate", "--splits", "3", "--seeds", "2", "--report", str(tmp_path / "v.md"), "--json"]
    code, report = _json(args)
    assert code == 0, report
    assert len(report["folds"]) == 3 and report["seed_stability"]["seeds"] == [0, 1]
    assert report["recovery"]["accuracy"] >= 0.9 and report["version"] == fitted["champion"]
    assert (data_dir / "lake/models/regime/market" / fitted["champion"] / "validation.json").exists()
    assert (tmp_path / "v.md").read_text().startswith("# Regime validation")


def test_regime_commands_fail_clearly_without_a_model_or_with_bad_options(data_dir: Path, tmp_path: Path) -> None:
    code, error = _json(["regime", "show", "--json"])
    assert code == 1 and error["error"] == "ModelNotFoundError" and "spe regime fit" in error["hint"]
    code, error = _json(["regime", "fit", "--json"])
    assert code == 1 and error["error"] == "EmptyDataError" and "spe run" in error["hint"]
    code, error = _json(["regime", "fit", "--covariance", "banana", "--json"])
    assert code == 1 and error["error"] == "ConfigurationError" and "covariance_type" in error["message"]
    code, error = _json(["regime", "show", "--chart", str(tmp_path / "x.pdf"), "--json"])
    assert code == 1 and error["error"] == "ConfigurationError"


def test_data_ingest_says_what_it_did_not_store(data_dir: Path, tmp_path: Path) -> None:
    # Given a user file ingested, then the same file with a negative price for a stored day
    file = tmp_path / "mine.csv"
    prices = pd.DataFrame({"Date": pd.bdate_range("2021-01-04", periods=5), "Ticker": "ZZZ", "Close": 100.0})
    prices.to_csv(file, index=False)
    assert runner.invoke(app, ["data", "ingest", "--source", "file", "--file", str(file)]).exit_code == 0
    prices.loc[2, "Close"] = -1.0
    prices.to_csv(file, index=False)
    # When it is ingested again
    result = runner.invoke(app, ["data", "ingest", "--source", "file", "--file", str(file)])
    # Then the printout says the bad row was quarantined, the stored value kept, and where the report is
    assert result.exit_code == 0, result.stderr
    assert "1 row(s) quarantined" in result.stdout and "reports/ingest/" in result.stdout
