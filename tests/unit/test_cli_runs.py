"""The store through the command line: runs listed and shown, a run replayed exactly, portfolios read and reset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from portfolio_engine.cli import app

runner = CliRunner()
RUN = ["run", "--symbols", "AAPL,JPM,XOM", "--start", "2012-01-01", "--json"]


def _json(*args: str) -> tuple[int, Any]:
    result = runner.invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after two `spe run`s (what `make run` twice does, on a smaller universe)."""
    directory = tmp_path_factory.mktemp("runs") / "spe-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory))
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        for run_id in ("first", "second"):
            result = runner.invoke(app, [*RUN, "--run-id", run_id])
            assert result.exit_code == 0, result.stdout
    return directory


@pytest.fixture
def store_dir(two_runs: Path, data_dir: Path) -> Path:
    shutil.copytree(two_runs, data_dir, dirs_exist_ok=True)
    return data_dir


def test_two_runs_are_listed_newest_first_and_each_shows_its_states(store_dir: Path) -> None:
    code, listed = _json("runs", "list")
    assert code == 0 and [(r["run_id"], r["status"]) for r in listed["runs"]] == [
        ("second", "SUCCEEDED"),
        ("first", "SUCCEEDED"),
    ]
    assert listed["cursor"] is None
    code, page = _json("runs", "list", "--limit", "1")
    assert [r["run_id"] for r in page["runs"]] == ["second"] and page["cursor"]
    code, rest = _json("runs", "list", "--limit", "1", "--cursor", page["cursor"])
    assert [r["run_id"] for r in rest["runs"]] == ["first"]
    code, shown = _json("runs", "show", "first")
    assert code == 0 and shown["machine"] == "rebalance" and shown["result"]["committed_weights"]
    assert shown["inputs"]["curated_fingerprint"] and shown["inputs"]["risk_settings"]["seed"]
    assert {s["state"] for s in shown["steps"]} >= {"StartRun", "Optimize", "MonteCarlo", "CheckLimits"}
    human = runner.invoke(app, ["runs", "show", "first"])
    assert human.exit_code == 0 and "SUCCEEDED" in human.stdout and "Optimize" in human.stdout


def test_the_first_run_replays_with_no_difference_and_changes_nothing(store_dir: Path) -> None:
    from portfolio_engine.cli.portfolio import open_store

    before = open_store().view("portfolio", "default")
    code, report = _json("replay", "first")
    assert code == 0, report
    assert report["max_abs_diff"] == 0.0 and report["inputs_changed"] == [] and report["decision_same"]
    assert set(report["diffs"]) >= {"target_weights", "monte_carlo", "historical", "limits", "regime_probabilities"}
    assert open_store().view("portfolio", "default") == before
    assert not (store_dir / "lake" / "portfolios" / "default" / "runs" / "replay-first.json").exists()


def test_a_replay_names_an_input_that_is_gone(store_dir: Path) -> None:
    code, shown = _json("runs", "show", "first")
    feature_set = store_dir / "lake" / shown["inputs"]["feature_key"]
    shutil.rmtree(feature_set)
    code, error = _json("replay", "first")
    assert code == 1 and error["error"] == "InputsMissingError"
    assert shown["inputs"]["feature_key"] in error["message"]


def test_a_restated_price_is_named_by_the_replay(store_dir: Path) -> None:
    # GIVEN the curated bars the run read, restated since (a dividend re-adjusted one day of AAPL)
    import pandas as pd

    from portfolio_engine.adapters.lake import ParquetLake

    lake = ParquetLake(str(store_dir / "lake"))
    bars = lake.read_bars("bundled", ["AAPL"], start=pd.Timestamp("2022-06-01"), end=pd.Timestamp("2022-06-01"))
    bars["adj_close"] *= 1.01
    lake.write_bars(bars, "bundled", zone="curated")
    # WHEN the run is replayed
    code, report = _json("replay", "first")
    # THEN the changed input is named and the difference it makes is measured
    assert code == 0 and "curated bars" in report["inputs_changed"][0] and report["max_abs_diff"] > 0


def test_only_committed_rebalance_runs_replay_and_unknown_runs_are_named(store_dir: Path) -> None:
    code, error = _json("replay", "nope")
    assert code == 1 and error["error"] == "RecordNotFoundError"
    code, error = _json("runs", "show", "nope")
    assert code == 1 and error["error"] == "RecordNotFoundError" and "spe runs list" in error["hint"]
    code, error = _json("runs", "list", "--status", "DONE")
    assert code == 1 and error["error"] == "ConfigurationError"


def test_portfolio_show_holdings_history_and_reset(store_dir: Path) -> None:
    code, shown = _json("portfolio", "show", "default")
    assert code == 0 and shown["spec_version"] == 1 and shown["latest"]["run_id"] == "second"
    code, held = _json("portfolio", "holdings", "default")
    assert held["holdings"]["run_id"] == "first" and sum(held["holdings"]["weights"].values()) == pytest.approx(1.0)
    code, history = _json("portfolio", "history", "default")
    types = [e["type"] for e in history]
    assert types[0] == "PortfolioCreated" and types.count("RunCommitted") == 2 and types.count("RunStarted") == 2
    # reset: the holdings are forgotten, the log keeps them
    code, reset = _json("portfolio", "reset", "default")
    assert code == 0 and reset["holdings_before"]["run_id"] == "first"
    code, held = _json("portfolio", "holdings", "default")
    assert held["holdings"] is None
    code, history = _json("portfolio", "history", "default")
    assert history[-1]["type"] == "HoldingsReset" and history[-1]["data"]["previous"]["run_id"] == "first"
    code, listed = _json("portfolio", "list")
    assert [p["name"] for p in listed] == ["default"]
    code, error = _json("portfolio", "show", "nope")
    assert code == 1 and error["error"] == "RecordNotFoundError"
