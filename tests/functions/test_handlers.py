"""Each Lambda handler, invoked in-process with Lambda's JSON semantics, on the sample events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portfolio_engine.contracts import (
    DetectRegimeInput,
    FeaturesInput,
    IngestInput,
    OptimizeInput,
    RunRequest,
    ValidateInput,
)
from portfolio_engine.local.runner import InProcessLambda

EVENTS = Path(__file__).resolve().parents[1] / "events"
MODELS = {
    "ingest_prices.json": IngestInput,
    "ingest_prices_schedule.json": IngestInput,
    "validate_prices.json": ValidateInput,
    "build_features.json": FeaturesInput,
    "detect_regime.json": DetectRegimeInput,
    "optimize_portfolio.json": OptimizeInput,
    "rebalance.json": RunRequest,
}


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_every_sample_event_parses_into_its_model() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(MODELS)
    for name, model in MODELS.items():
        model.model_validate(_event(name))


def _invoke(lambdas: InProcessLambda, name: str, event: dict) -> dict:
    payload, error = lambdas.invoke(name, event)
    body = json.loads(payload)
    assert error is None, body
    return body


def test_ingest_then_validate_then_features_on_the_sample_events(data_dir: Path) -> None:
    lambdas = InProcessLambda()
    ingest = _invoke(lambdas, "ingest_prices", _event("ingest_prices.json"))
    assert ingest["run_id"] == "sample-run" and ingest["rows_new"] == 3 * 253
    assert (ingest["first_date"], ingest["last_date"]) == ("2020-01-02", "2020-12-31")
    validation = _invoke(lambdas, "validate_prices", _event("validate_prices.json"))
    assert validation["passed"] and validation["symbols"] == ["AAPL", "MSFT", "^GSPC"]
    features = _invoke(lambdas, "build_features", _event("build_features.json"))
    assert features["rows"] == 3 * 253 and "beta_63d" in features["columns"]
    # One year is too little to train a first regime model: the step says so and the run goes on.
    regime = _invoke(lambdas, "detect_regime", {**_event("detect_regime.json"), "feature_key": features["feature_key"]})
    assert not regime["available"] and "too little history" in regime["reason"] and regime["probabilities"] == {}
    # Without a regime the spec's own estimators run: minimum variance of AAPL and MSFT over 126 days.
    event = {**_event("optimize_portfolio.json"), "feature_key": features["feature_key"], "regime": regime}
    portfolio = _invoke(lambdas, "optimize_portfolio", event)
    assert portfolio["method"] == "min_variance" and not portfolio["regime_aware"]
    assert sorted(portfolio["target_weights"]) == ["AAPL", "MSFT"]
    assert abs(sum(portfolio["target_weights"].values()) - 1) < 1e-9 and portfolio["decision"]["reason"] == "initial"


def test_a_scheduled_ingest_is_idempotent_and_makes_its_own_run_id(data_dir: Path) -> None:
    lambdas = InProcessLambda()
    first = _invoke(lambdas, "ingest_prices", _event("ingest_prices_schedule.json"))
    second = _invoke(lambdas, "ingest_prices", _event("ingest_prices_schedule.json"))
    assert first["run_id"].startswith("ingest-") and first["run_id"] != second["run_id"]
    assert first["rows_new"] == 3 * 8313
    assert (second["rows_new"], second["rows_updated"], second["rows_unchanged"]) == (0, 0, second["rows_fetched"])
    assert sorted(second["up_to_date"]) == ["AAPL", "MSFT", "^GSPC"]


@pytest.mark.parametrize(
    ("function", "event", "fragment"),
    [
        ("ingest_prices", {"run_id": "x", "request": {"source": "nowhere"}}, "source"),
        ("ingest_prices", {"run_id": "x y"}, "run_id"),
        ("ingest_prices", {"run_id": "x", "request": {"start": "2020-02-01", "end": "2020-01-01"}}, "after end"),
        ("validate_prices", {"run_id": "x", "source": "bundled"}, "symbols"),
        ("build_features", {"run_id": "x", "source": "bundled", "symbols": ["A", "A"]}, "repeated"),
        ("detect_regime", {"run_id": "x", "feature_key": "prices/AAPL"}, "feature set key"),
        (
            "optimize_portfolio",
            {"run_id": "x", "source": "bundled", "symbols": ["AAPL"], "portfolio": "a b"},
            "portfolio",
        ),
        (
            "detect_regime",
            {"run_id": "x", "feature_key": _event("detect_regime.json")["feature_key"], "model": {"n_states": 99}},
            "n_states",
        ),
    ],
)
def test_a_bad_event_is_a_validation_error_naming_the_field(
    data_dir: Path, function: str, event: dict, fragment: str
) -> None:
    payload, error = InProcessLambda().invoke(function, event)
    body = json.loads(payload)
    assert error == "Unhandled" and body["errorType"] == "ValidationError"
    assert fragment in body["errorMessage"]


def test_validating_before_any_ingest_is_an_empty_data_error(data_dir: Path) -> None:
    payload, error = InProcessLambda().invoke("validate_prices", _event("validate_prices.json"))
    body = json.loads(payload)
    assert error and body["errorType"] == "EmptyDataError" and "spe data ingest" in body["errorMessage"]


def test_alpha_vantage_without_a_key_is_an_authentication_error(data_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("SPE_ALPHA_VANTAGE_API_KEY", raising=False)
    monkeypatch.delenv("SPE_ALPHA_VANTAGE_SECRET_ID", raising=False)
    payload, error = InProcessLambda().invoke(
        "ingest_prices", {"run_id": "x", "request": {"source": "alpha_vantage", "symbols": ["IBM"], "benchmarks": []}}
    )
    body = json.loads(payload)
    assert error and body["errorType"] == "AuthenticationError" and "SPE_ALPHA_VANTAGE_API_KEY" in body["errorMessage"]
