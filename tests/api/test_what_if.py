"""``POST /what-if`` on a live `spe api` after a real `spe run`: weights, decision, limits, and nothing stored moves.

Given the data directory of one committed run (portfolio ``default`` holding five stocks), when a viewer asks what
an optimization would do now, then the answer's weights are those of the proposal's own moments, its size limits
answer 413 before any work, a bad spec 422, and the portfolio's stream (spec and holdings) is left as it was.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize

from .conftest import LiveApi, start_api

INLINE = {
    "name": "core",
    "universe": ["AAPL", "JPM", "XOM", "KO"],
    "method": "max_sharpe",
    "estimators": {"mean": "historical", "covariance": "sample"},
    "lookback_days": 252,
    "constraints": {"weight_bounds": [0.0, 1.0]},
}


@pytest.fixture(scope="module")
def what_if_api(api_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """One server for the module: a what-if changes nothing stored, so the tests share it (and check so)."""
    directory = tmp_path_factory.mktemp("what-if") / "spe-data"
    shutil.copytree(api_data, directory)
    yield from start_api(directory)


@pytest.fixture(scope="module")
def small_api(api_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """A server whose what-if limits are 3 assets and 100 trading days."""
    directory = tmp_path_factory.mktemp("what-if-small") / "spe-data"
    shutil.copytree(api_data, directory)
    limits = {"SPE_API_WHAT_IF_MAX_ASSETS": "3", "SPE_API_WHAT_IF_MAX_HISTORY_DAYS": "100"}
    yield from start_api(directory, extra_env=limits)


def _send(api: LiveApi, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    sent = {**(headers or {}), **({"Content-Type": "application/json"} if data is not None else {})}
    request = urllib.request.Request(api.url + path, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _what_if(api: LiveApi, body: dict[str, Any], role: str = "viewer") -> tuple[int, Any]:
    return _send(api, "POST", "/what-if", body, api.headers(role))  # type: ignore[no-any-return]


def _stream_version(api: LiveApi, name: str) -> int:
    from portfolio_engine.adapters.store import build_store
    from portfolio_engine.records.events import portfolio_stream
    from portfolio_engine.settings import Settings

    return build_store(Settings(data_dir=api.data_dir, store_uri=None)).stream_version(portfolio_stream(name))


def _stored(api: LiveApi) -> tuple[int, dict[str, Any]]:
    """The portfolio's stream version (from the store itself) and its read model (from the API)."""
    status, view = _send(api, "GET", "/portfolios/default", headers=api.headers("viewer"))
    assert status == 200
    return _stream_version(api, "default"), view


def _proposal(api: LiveApi, key: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    document = json.loads((api.data_dir / "lake" / key).read_text())
    moments = document["moments"]
    return moments["assets"], np.array(moments["mu"]), np.array(moments["cov"])


def test_a_stored_portfolio_what_if_proposes_full_weights_and_moves_nothing(what_if_api: LiveApi) -> None:
    """Given the stored 'default', when a viewer asks a what-if, then weights sum to 1, and the stream is unchanged."""
    version, before = _stored(what_if_api)

    status, body = _what_if(what_if_api, {"portfolio": "default"})

    assert status == 200, body
    assert body["portfolio"] == "default" and body["spec_source"].startswith("store (spec v")
    weights = body["weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6)  # the default spec's budget
    assert min(weights.values()) >= -1e-8  # long only
    assert set(body["decision"]) == {"rebalance", "reason", "drift", "turnover", "cost", "benefit"}
    assert body["regime"]["available"] is True and body["regime"]["model_version"]
    # Independent reference: the volatility and return of the weights under the proposal's stored moments.
    assets, mu, cov = _proposal(what_if_api, body["proposal_key"])
    w = np.array([weights[a] for a in assets])
    assert body["volatility"] == pytest.approx(float(np.sqrt(w @ cov @ w)), rel=1e-6)
    assert body["expected_return"] == pytest.approx(float(w @ mu), rel=1e-6, abs=1e-9)
    after_version, after = _stored(what_if_api)
    assert after_version == version
    assert after["version"] == before["version"] and after["spec_version"] == before["spec_version"]
    assert after["holdings"] == before["holdings"]


def test_an_inline_spec_with_a_method_override_is_the_minimum_variance_portfolio(what_if_api: LiveApi) -> None:
    """Given an inline max-Sharpe spec, when the method is overridden to min_variance, then the weights minimize
    the variance of the proposal's covariance (checked against scipy's SLSQP)."""
    version = _stream_version(what_if_api, "default")

    status, body = _what_if(what_if_api, {"spec": INLINE, "method": "min_variance", "regime": False})

    assert status == 200, body
    assert body["spec_source"] == "inline" and body["method"] == body["spec_method"] == "min_variance"
    assert body["regime"] is None and set(body["weights"]) == set(INLINE["universe"])
    assets, _, cov = _proposal(what_if_api, body["proposal_key"])
    n = len(assets)
    reference = minimize(
        lambda x: x @ cov @ x,
        np.full(n, 1 / n),
        jac=lambda x: 2 * cov @ x,
        bounds=[(0.0, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    got = np.array([body["weights"][a] for a in assets])
    np.testing.assert_allclose(got, reference.x, atol=1e-4)
    assert _stream_version(what_if_api, "default") == version
    assert _stream_version(what_if_api, "core") == 0  # an inline what-if never creates a portfolio


def test_too_many_assets_is_413_before_any_work(what_if_api: LiveApi) -> None:
    """Given a 201-asset inline spec, when asked, then 413 naming the limit of 200, and no proposal is written."""
    spec = {"name": "wide", "universe": [f"S{i:03d}" for i in range(201)], "method": "min_variance"}

    status, body = _what_if(what_if_api, {"spec": spec})

    assert status == 413 and body["error"] == "PayloadTooLargeError"
    assert "201 assets" in body["message"] and "at most 200" in body["message"]
    assert "SPE_API_WHAT_IF_MAX_ASSETS" in body["hint"]
    assert not (what_if_api.data_dir / "lake" / "portfolios" / "wide").exists()


def test_the_limits_are_settings(small_api: LiveApi) -> None:
    """Given limits of 3 assets and 100 days, then a 20-asset portfolio and a 252-day lookback are 413; 60 is not."""
    status, body = _what_if(small_api, {"portfolio": "default"})
    assert status == 413 and "at most 3" in body["message"]

    narrow = {**INLINE, "name": "narrow", "universe": ["AAPL", "JPM", "KO"]}
    status, body = _what_if(small_api, {"spec": narrow, "regime": False})
    assert status == 413 and body["error"] == "PayloadTooLargeError"
    assert "252 trading days" in body["message"] and "at most 100" in body["message"]
    assert "SPE_API_WHAT_IF_MAX_HISTORY_DAYS" in body["hint"]
    assert not (small_api.data_dir / "lake" / "portfolios" / "narrow").exists()

    status, body = _what_if(small_api, {"spec": {**narrow, "lookback_days": 60}, "regime": False})
    assert status == 200, body
    assert sum(body["weights"].values()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [
        ({"spec": {"name": "bad", "universe": ["AAPL", "KO"], "method": "bogus"}}, "SpecificationError", "bogus"),
        ({"spec": {**INLINE, "universe": ["AAPL", "NOSUCH"]}}, "SpecificationError", "NOSUCH"),
        ({"portfolio": "default", "method": "bogus"}, "SpecificationError", "'bogus'"),
        ({"portfolio": "nosuch"}, "SpecificationError", "nosuch"),
        ({"portfolio": "default", "spec": INLINE}, "ValidationError", "exactly one"),
        ({}, "ValidationError", "exactly one"),
        ({"portfolio": "default", "source": "elsewhere"}, "ValidationError", "source"),
    ],
)
def test_an_invalid_request_is_422(what_if_api: LiveApi, body: dict[str, Any], error: str, says: str) -> None:
    status, answer = _what_if(what_if_api, body)

    assert status == 422, answer
    assert answer["error"] == error and says in answer["message"]


def test_credentials_and_role_are_checked(what_if_api: LiveApi) -> None:
    """Without credentials 401; with a token granting no known role 403; both before the body is validated."""
    status, body = _send(what_if_api, "POST", "/what-if", {"portfolio": "default"})
    assert status == 401 and body["error"] == "UnauthorizedError"
    status, body = _send(what_if_api, "POST", "/what-if", {"bogus": 1})
    assert status == 401
    status, body = _what_if(what_if_api, {"portfolio": "default"}, role="guest")
    assert status == 403 and body["error"] == "ForbiddenError"
