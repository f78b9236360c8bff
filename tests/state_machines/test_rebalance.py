"""The real rebalance state machine JSON, executed end to end by the local runner on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.local.runner import LocalStateMachineRunner
from portfolio_engine.records.events import NewEvent, portfolio_stream

SMALL = ["AAPL", "JPM", "XOM"]
REFERENCE_TABLES = ["ff3_monthly", "ff_industries_monthly", "treasury_curve", "vix", "spy_total_return", "sectors"]


def _run(payload: dict, name: str) -> tuple:
    events: list[tuple[str, str]] = []
    runner = LocalStateMachineRunner(listener=lambda e, f, d: events.append((e, f)), wait_scale=0)
    return runner.run("rebalance", payload, name=name), events


def test_default_run_ingests_validates_builds_features_and_detects_the_regime(data_dir: Path) -> None:
    # When the rebalance machine runs with an empty input (everything defaulted)
    result, events = _run({}, "run-default")
    # Then every step ran once, in order, and the execution succeeded
    assert result.status == "SUCCEEDED", result.cause
    # (the default's caps are its limits: a cap the optimizer reaches, e.g. Health Care at 35%, is a warning, alerted)
    warned = bool(result.output["limits"]["breaches"])
    assert [f for e, f in events if e == "start"] == [
        "start_run",
        "ingest_prices",
        "validate_prices",
        "build_features",
        "detect_regime",
        "optimize_portfolio",
        "plan_risk",
        *["simulate_risk_shard"] * 4,
        "aggregate_risk",
        "stress_test",
        "check_limits",
        *(["send_alerts"] if warned else []),
        "commit_run",
    ]
    out = result.output
    assert out["run_id"] == "run-default"
    # the 20 stocks and the index, 1990-01-02 .. 2022-12-28, all new, all cleared by validation
    assert len(out["ingest"]["symbols"]) == 21 and out["ingest"]["index_symbol"] == "^GSPC"
    assert out["ingest"]["first_date"] == "1990-01-02" and out["ingest"]["last_date"] == "2022-12-28"
    assert out["ingest"]["rows_new"] == out["ingest"]["rows_fetched"] > 20 * 8313
    assert out["validation"]["passed"] and out["validation"]["quarantined"] == []
    assert sorted(out["validation"]["symbols"]) == sorted(out["ingest"]["symbols"])
    # and the lake holds the curated prices, the report and the feature set the output points at
    lake = ParquetLake(str(data_dir / "lake"))
    stocks = [c for c in lake.inventory("bundled") if c.symbol != "^GSPC"]
    assert len(stocks) == 20 and {c.rows for c in stocks} == {8313}
    assert lake.get_json(out["validation"]["report_key"])["run_id"] == "run-default"
    key = out["features"]["feature_key"].removeprefix("features/")
    features = lake.read_features(key, symbols=["AAPL"])
    assert len(features) == 8313 and out["features"]["rows"] == 21 * 8313 - _missing_index_days(lake)
    assert lake.feature_sets() == [key] and out["features"]["index_symbol"] == "^GSPC"
    assert sorted(out["ingest"]["reference_tables"]) == sorted(REFERENCE_TABLES)
    ff3 = lake.read_reference("ff3_monthly")
    assert list(ff3.columns) == ["Mkt-RF", "SMB", "HML", "RF"] and abs(ff3["Mkt-RF"]).max() < 1  # decimal
    # and the first run trained, stored and promoted the regime model it then used (filtered, up to the last day)
    regime = out["regime"]
    assert regime["available"] and regime["trained_now"] and regime["as_of"] == "2022-12-28"
    assert regime["state_names"] == ["calm", "turbulent"] and abs(sum(regime["probabilities"].values()) - 1) < 1e-9
    registry = StoreModelRegistry(lake, SqliteStore(data_dir / "store.db"))
    assert registry.champion("market") == regime["model_version"]
    assert registry.metadata("market", regime["model_version"])["feature_key"] == out["features"]["feature_key"]
    # and it ends with the default portfolio's target weights, regime-aware, within the spec's bounds
    portfolio = out["portfolio"]
    assert portfolio["portfolio"] == "default" and portfolio["regime_aware"] and portfolio["regime"] == regime["regime"]
    weights = portfolio["target_weights"]
    assert sorted(weights) == sorted(s for s in out["ingest"]["symbols"] if s != "^GSPC")
    cap = 0.10 if regime["regime"] == "turbulent" else 0.15
    assert (
        abs(sum(weights.values()) - 1) < 1e-9 and max(weights.values()) <= cap + 1e-9 and min(weights.values()) > -1e-9
    )
    assert portfolio["decision"]["reason"] == "initial" and lake.exists(portfolio["result_key"])
    # and its risk: 200,000 paths over 21 days in four shards, stress scenarios, the default limits all met
    assert out["risk"]["n_paths"] == 200_000 and out["risk"]["horizon_days"] == 21
    assert out["risk"]["monte_carlo"]["cvar_0.99"] >= out["risk"]["monte_carlo"]["var_0.99"] > 0
    assert out["stress"]["worst_scenario"] in {s["name"] for s in out["stress"]["scenarios"]}
    assert not out["limits"]["any_breach"] and out["hedge"] is None and (out["alerts"] is not None) is warned
    # and the default's limits are its own: no cap was widened on its full universe, so the risk stage grades
    # the book against 35% a sector, as `spe risk monitor` does
    assert portfolio["adaptations"] == [] and out["limits"]["limits"]["max_sector_weight"] == 0.35
    assert all(b["severity"] == "warning" for b in out["limits"]["breaches"])


def _missing_index_days(lake: ParquetLake) -> int:
    index = next(c for c in lake.inventory("bundled") if c.symbol == "^GSPC")
    return 8313 - index.rows


def test_a_second_run_fetches_nothing_and_leaves_the_lake_unchanged(data_dir: Path) -> None:
    first, _ = _run({"symbols": SMALL}, "run-1")
    files_before = {p: p.stat().st_mtime_ns for p in (data_dir / "lake/raw").rglob("*.parquet")}
    second, _ = _run({"symbols": SMALL}, "run-2")
    assert first.succeeded and second.succeeded
    ingest = second.output["ingest"]
    assert ingest["rows_new"] == ingest["rows_updated"] == 0 and ingest["restated"] == []
    assert ingest["rows_unchanged"] == ingest["rows_fetched"] == 4 * 5  # the overlap: 5 sessions before the last
    assert sorted(ingest["up_to_date"]) == sorted([*SMALL, "^GSPC"])
    files_after = {p: p.stat().st_mtime_ns for p in (data_dir / "lake/raw").rglob("*.parquet")}
    assert files_after == files_before
    # the same definition on the same data lands in the same feature version
    assert second.output["features"]["feature_version"] == first.output["features"]["feature_version"]


def test_an_unknown_symbol_fails_the_run_at_ingest_with_a_typed_error_and_writes_nothing(data_dir: Path) -> None:
    result, events = _run({"symbols": ["AAPL", "NOSUCH"]}, "run-unknown")
    assert result.status == "FAILED" and result.error == "UnknownSymbolError"
    assert "NOSUCH" in json.loads(result.cause)["errorMessage"]
    assert [f for e, f in events if e == "start"] == ["start_run", "ingest_prices", "record_failure"]
    assert not (data_dir / "lake/raw").exists()
    # and the failed run is recorded with its error and the state that failed; the portfolio holds nothing
    store = SqliteStore(data_dir / "store.db")
    run = store.view("run", "run-unknown")
    assert run is not None and run["status"] == "FAILED" and run["error"] == "UnknownSymbolError"
    assert run["failed_state"] == "IngestPrices" and "NOSUCH" in run["cause"]
    assert store.view("portfolio", "default")["holdings"] is None  # type: ignore[index]


def test_a_malformed_request_fails_with_the_parser_error_as_cause(data_dir: Path) -> None:
    result, _ = _run({"symbols": [], "surprise": 1}, "run-bad-input")
    assert result.status == "FAILED"
    assert result.error == "ValidationError"
    assert "surprise" in result.cause and "Extra inputs are not permitted" in result.cause


def _write_prices(path: Path, broken: bool, bad: float = -1.0, days: int | None = None) -> Path:
    px = pd.read_csv(
        Path(__file__).resolve().parents[2] / "shared/portfolio_engine/resources/bundled/sp500_dataset.csv.gz",
        index_col=0,
        parse_dates=True,
    )[["AAPL", "KO"]].loc["2019"]
    if broken:
        px.iloc[100:120, 1] = bad  # 20 days of bad prices for KO: beyond any forward-fill
    px.index.name = "date"
    px.iloc[:days].to_csv(path)
    return path


@pytest.mark.parametrize("policy", ["reject", "quarantine"])
def test_bad_user_data_is_never_used_silently(data_dir: Path, tmp_path: Path, policy: str) -> None:
    file = _write_prices(tmp_path / "prices.csv", broken=True)
    payload = {
        "source": "file",
        "file_uri": str(file),
        "symbols": ["AAPL", "KO"],
        "benchmarks": [],
        "validation_policy": policy,
    }
    result, _ = _run(payload, f"run-{policy}")
    lake = ParquetLake(str(data_dir / "lake"))
    report = lake.get_json(f"reports/validation/run-{policy}.json")
    assert any(i["symbol"] == "KO" and i["severity"] == "error" for i in report["issues"])
    if policy == "reject":
        assert result.status == "FAILED" and result.error == "DataValidationError"
        assert lake.sources() == []  # nothing reached the curated zone
    else:
        assert result.succeeded, result.cause
        assert result.output["validation"]["quarantined"] == ["KO"]
        assert result.output["features"]["symbols"] == ["AAPL"]
        assert [c.symbol for c in lake.inventory("file")] == ["AAPL"]


def test_a_symbol_quarantined_later_loses_its_curated_history(data_dir: Path, tmp_path: Path) -> None:
    # Given a clean run that curated AAPL and KO over the first 100 days of 2019
    payload = {"source": "file", "symbols": ["AAPL", "KO"], "validation_policy": "quarantine"}
    clean_file = _write_prices(tmp_path / "clean.csv", broken=False, days=100)
    clean, _ = _run({**payload, "file_uri": str(clean_file)}, "run-clean")
    lake = ParquetLake(str(data_dir / "lake"))
    assert clean.succeeded and [c.symbol for c in lake.inventory("file")] == ["AAPL", "KO"]
    # When the source later delivers the year with broken KO prices on new days and the run quarantines KO
    broken, _ = _run({**payload, "file_uri": str(_write_prices(tmp_path / "broken.csv", broken=True))}, "run-broken")
    # Then KO's earlier curated bars are gone too: nothing downstream can read them
    assert broken.succeeded and broken.output["validation"]["quarantined"] == ["KO"]
    assert [c.symbol for c in lake.inventory("file")] == ["AAPL"]


@pytest.mark.parametrize("bad", [-1.0, 0.0, float("nan")], ids=["negative", "zero", "blank"])
def test_a_good_stored_price_survives_a_bad_file(data_dir: Path, tmp_path: Path, bad: float) -> None:
    # Given a clean run that stored and curated AAPL and KO over 2019
    payload = {"source": "file", "symbols": ["AAPL", "KO"], "benchmarks": [], "validation_policy": "forward_fill"}
    clean, _ = _run({**payload, "file_uri": str(_write_prices(tmp_path / "clean.csv", broken=False))}, "run-clean")
    assert clean.succeeded, clean.cause
    lake = ParquetLake(str(data_dir / "lake"))
    raw, curated = lake.read_bars("file", zone="raw"), lake.read_bars("file")
    # When the same file comes back with 20 bad KO prices on days the lake holds
    file = _write_prices(tmp_path / "bad.csv", broken=True, bad=bad)
    result, _ = _run({**payload, "file_uri": str(file)}, "run-bad")
    # Then the run succeeds on the good prices: raw and curated bars are exactly as before, KO is cleared
    assert result.succeeded, result.cause
    pd.testing.assert_frame_equal(lake.read_bars("file", zone="raw"), raw)
    pd.testing.assert_frame_equal(lake.read_bars("file"), curated)
    assert result.output["validation"]["quarantined"] == [] and result.output["validation"]["forward_filled"] == 0
    # and the 20 refused rows are reported: quarantined (negative, zero) or dropped (a blank cell)
    ingest = result.output["ingest"]
    assert ingest["restated"] == [] and ingest["rows_updated"] == 0
    report = lake.get_json(ingest["report_key"])
    if pd.isna(bad):  # the wide CSV has a blank cell, which the file source drops and counts
        assert (ingest["rows_dropped"], ingest["rows_quarantined"]) == (20, 0)
        assert [(r["symbol"], r["reason"]) for r in report["dropped"]] == [("KO", "no price")] * 20
    else:
        assert (ingest["rows_quarantined"], ingest["rows_dropped"]) == (20, 0)
        assert {r["symbol"] for r in report["quarantined"]} == {"KO"}
        assert all(r["rejected"]["close"] == bad and r["kept"]["close"] > 0 for r in report["quarantined"])
        assert len(pd.read_parquet(data_dir / "lake" / ingest["quarantine_key"])) == 20


@pytest.mark.slow
def test_the_same_run_writes_to_s3_through_moto_server(
    data_dir: Path, s3_lake_uri: str, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPE_LAKE_URI", s3_lake_uri)
    result, _ = _run({"symbols": SMALL}, "run-s3")
    assert result.succeeded, result.cause
    lake = ParquetLake(s3_lake_uri, endpoint_url=aws_env)
    assert sorted(c.symbol for c in lake.inventory("bundled")) == sorted([*SMALL, "^GSPC"])
    key = result.output["features"]["feature_key"].removeprefix("features/")
    assert lake.read_features(key, symbols=["JPM"]).shape[0] == 8313
    assert not (data_dir / "lake").exists()


def test_every_engine_error_a_task_retries_on_exists_under_that_name() -> None:
    # Step Functions matches error names exactly: a typo or a renamed class would silently never retry.
    from portfolio_engine import exceptions

    definition = json.loads((Path(__file__).resolve().parents[2] / "state_machines/rebalance.asl.json").read_text())
    names = {
        name
        for state in definition["States"].values()
        for retrier in state.get("Retry", [])
        for name in retrier["ErrorEquals"]
        if not name.startswith(("Lambda.", "States."))
    }
    assert names == {"SourceUnavailableError", "RateLimitedError", "CircuitOpenError", "ThrottledError"} | {
        "StoreError",  # RecordFailure retries a store it could not reach
        "ConcurrencyError",
    }
    for name in names:
        assert issubclass(getattr(exceptions, name), exceptions.DataSourceError | exceptions.StoreError)
    # and every transient error class, subclasses included, is retried
    transient = [exceptions.SourceUnavailableError, exceptions.RateLimitedError]
    while transient:
        cls = transient.pop()
        assert cls.__name__ in names
        transient.extend(cls.__subclasses__())


def _store_spec(data_dir: Path, limits: dict[str, float]) -> None:
    spec = {"name": "default", "method": "min_variance", "constraints": {"weight_bounds": [0.0, 0.6]}, "limits": limits}
    created = NewEvent(type="PortfolioCreated", data={"spec": spec, "origin": "cli"})
    SqliteStore(data_dir / "store.db").append(portfolio_stream("default"), [created], expected_version=0)


def test_a_breached_limit_gets_a_hedge_proposal_and_an_alert(data_dir: Path) -> None:
    # Given a stored spec whose volatility limit no stock portfolio can meet
    _store_spec(data_dir, {"max_volatility": 0.05})
    result, events = _run({"symbols": SMALL}, "run-breach")
    # Then the run takes the breach branch: a hedge is proposed (not executed) and the breach is alerted
    assert result.status == "SUCCEEDED", result.cause
    assert [f for e, f in events if e == "start"][-4:] == ["check_limits", "propose_hedge", "send_alerts", "commit_run"]
    out = result.output
    assert out["limits"]["any_breach"] and out["limits"]["worst_severity"] == "critical"
    assert not out["hedge"]["executed"] and out["hedge"]["chosen"]["kind"]
    assert out["alerts"]["sent"] == 1 and out["alerts"]["failed"] == 0
    log = [json.loads(line) for line in (data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [(a["limit"], a["severity"], a["run_id"]) for a in log] == [("max_volatility", "critical", "run-breach")]


def test_a_limit_close_to_its_threshold_is_a_warning_alert_without_a_hedge(data_dir: Path) -> None:
    # A long-only, fully invested portfolio has gross leverage 1.0: within 10% of a 1.05 limit
    _store_spec(data_dir, {"max_gross_leverage": 1.05})
    result, events = _run({"symbols": SMALL}, "run-warning")
    assert result.status == "SUCCEEDED", result.cause
    assert "propose_hedge" not in [f for _, f in events]
    out = result.output
    assert not out["limits"]["any_breach"] and out["limits"]["worst_severity"] == "warning"
    assert out["alerts"]["sent"] == 1 and out["hedge"] is None


def test_the_same_machine_commits_to_dynamodb_on_motos_server(
    data_dir: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the store of record on DynamoDB (moto's server over HTTP, reached through AWS_ENDPOINT_URL only)
    from portfolio_engine.adapters.store.dynamodb import DynamoStore

    table = f"spe-store-{abs(hash(str(data_dir))) % 10**8}"
    DynamoStore(table, endpoint_url=aws_env).create_table()
    monkeypatch.setenv("SPE_STORE_URI", f"dynamodb://{table}")
    # WHEN the rebalance machine runs
    result, _ = _run({"symbols": SMALL, "start": "2012-01-01"}, "run-dynamo")
    # THEN the run, the portfolio, its holdings and the champion are in the table, and no SQLite file was made
    assert result.succeeded, result.cause
    store = DynamoStore(table, endpoint_url=aws_env)
    run = store.view("run", "run-dynamo")
    assert run is not None and run["status"] == "SUCCEEDED" and run["steps"]
    portfolio = store.view("portfolio", "default")
    assert portfolio is not None and portfolio["holdings"]["run_id"] == "run-dynamo"
    assert store.view("champion", "regime/market")["champion"] == result.output["regime"]["model_version"]  # type: ignore[index]
    types = [e.type for e in store.events("portfolio/default") if e.run_id == "run-dynamo"]
    assert types[:2] == ["RunStarted", "TargetProposed"] and types[-1] == "RunCommitted"
    assert not (data_dir / "store.db").exists()
