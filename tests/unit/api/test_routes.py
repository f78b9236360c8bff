"""The API's routes in-process: API Gateway HTTP API events through the real app, store and token verifier."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
import yaml

from portfolio_engine.pipeline.launching import run_id_for
from portfolio_engine.records.events import NewEvent, portfolio_stream

from .conftest import Api

ERROR_KEYS = {"error", "message", "hint", "request_id"}


def _spec(name: str) -> dict[str, Any]:
    text = files("portfolio_engine.resources").joinpath("portfolios", "default.yaml").read_text()
    return {**yaml.safe_load(text), "name": name}


def _seed_portfolio(api: Api, name: str = "core") -> None:
    """A stored portfolio, appended as the CLI's save would record it (no lake needed)."""
    created = NewEvent(type="PortfolioCreated", data={"spec": _spec(name), "origin": "cli"})
    api.services.store.append(portfolio_stream(name), [created], expected_version=0)


def _seed_alerts(api: Api, name: str, run_id: str, severities: list[str]) -> None:
    """A run that sent one alert per severity, each appended on its own (events of one append share a time)."""
    store, stream = api.services.store, portfolio_stream(name)
    started = NewEvent(type="RunStarted", run_id=run_id, data={"machine": "rebalance", "trigger": "cli"})
    store.append(stream, [started], expected_version=store.stream_version(stream))
    for i, severity in enumerate(severities):
        data = {"limit": f"limit-{i}", "severity": severity, "status": "sent", "value": 0.3, "threshold": 0.25}
        alert = NewEvent(type="AlertSent", run_id=run_id, data=data)
        store.append(stream, [alert], expected_version=store.stream_version(stream))


# --- public routes, credentials, roles, errors --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_health_and_version_are_public(api: Api, path: str) -> None:
    status, headers, body = api.call("GET", path)
    assert status == 200, body
    assert headers["x-request-id"]


def test_a_protected_route_needs_credentials(api: Api) -> None:
    status, headers, body = api.call("GET", "/portfolios")
    assert status == 401
    assert set(body) == ERROR_KEYS and body["error"] == "UnauthorizedError"
    assert headers["www-authenticate"].startswith("Bearer")
    assert headers["x-request-id"] == body["request_id"]


def test_a_token_of_another_issuer_is_refused(api: Api) -> None:
    token = api.token("admin")
    header, payload, signature = token.split(".")
    status, _, body = api.call(
        "GET", "/portfolios", headers={"Authorization": f"Bearer {header}.{payload}.x{signature[1:]}"}
    )
    assert status == 401 and body["error"] == "UnauthorizedError"


def test_a_role_below_the_route_is_forbidden(api: Api) -> None:
    status, _, body = api.call("GET", "/api-keys", role="manager")
    assert status == 403
    assert body["error"] == "ForbiddenError" and "admin" in body["message"]
    assert api.call("GET", "/portfolios", role="viewer")[0] == 200


def test_an_unknown_path_is_a_404_with_the_error_shape(api: Api) -> None:
    status, headers, body = api.call("GET", "/nowhere", role="viewer")
    assert status == 404
    assert set(body) == ERROR_KEYS and body["error"] == "NotFoundError" and "/nowhere" in body["message"]
    assert api.call("GET", "/nowhere")[0] == 404  # for everyone: no credentials needed to learn it is not there
    assert headers["x-request-id"] == body["request_id"]


def test_a_request_that_fails_validation_is_a_422_with_details(api: Api) -> None:
    status, _, body = api.call("GET", "/runs", role="viewer", query={"limit": "0"})
    assert status == 422
    assert body["error"] == "ValidationError"
    assert body["details"] and all(d["msg"] for d in body["details"])
    assert any(d["loc"][-1] == "limit" for d in body["details"])


def test_a_request_that_fails_validation_without_credentials_is_a_401(api: Api) -> None:
    status, _, body = api.call("GET", "/runs", query={"limit": "0"})
    assert status == 401 and body["error"] == "UnauthorizedError" and "details" not in body
    # and without the role, a 403: the caller never learns what a valid request looks like
    status, _, body = api.call("POST", "/api-keys", role="viewer", body={"name": "", "role": "god"})
    assert status == 403 and body["error"] == "ForbiddenError"


def test_malformed_json_is_a_400(api: Api) -> None:
    status, _, body = api.call("POST", "/api-keys", role="admin", body='{"name": ')
    assert status == 400 and body["error"] == "BadRequestError"


def test_an_invalid_cursor_is_a_400(api: Api) -> None:
    status, _, body = api.call("GET", "/runs", role="viewer", query={"cursor": "not-a-cursor"})
    assert status == 400 and body["error"] == "InvalidCursorError"


def test_every_response_carries_api_gateways_request_id(api: Api) -> None:
    for method, path, role in [("GET", "/portfolios", "viewer"), ("GET", "/health", None), ("GET", "/x", None)]:
        _, headers, _ = api.call(method, path, role=role)
        assert headers["x-request-id"] == api.last_request_id


def test_the_rate_limit_answers_429_with_retry_after(make_api: Any) -> None:
    # Given an API allowing 3 requests a minute per caller
    api = make_api(api_rate_per_minute=3)
    token = {"Authorization": f"Bearer {api.token('viewer')}"}
    # When a caller sends 4
    statuses = [api.call("GET", "/portfolios", headers=token)[0] for _ in range(4)]
    # Then the 4th is refused, saying when to retry
    assert statuses == [200, 200, 200, 429]
    _, headers, body = api.call("GET", "/portfolios", headers=token)
    assert body["error"] == "TooManyRequestsError"
    assert 1 <= int(headers["retry-after"]) <= 60
    # And another caller still has its own allowance; public routes are not counted
    assert api.call("GET", "/portfolios", role="manager")[0] == 200
    assert api.call("GET", "/health")[0] == 200


def test_the_rate_limit_comes_before_validation(make_api: Any) -> None:
    # Given a caller that spent its 3 requests of the minute
    api = make_api(api_rate_per_minute=3)
    token = {"Authorization": f"Bearer {api.token('viewer')}"}
    assert [api.call("GET", "/portfolios", headers=token)[0] for _ in range(3)] == [200, 200, 200]
    # When it sends an invalid request
    status, headers, body = api.call("GET", "/runs", headers=token, query={"limit": "0"})
    # Then it is told to wait, not what is wrong with the request
    assert status == 429 and body["error"] == "TooManyRequestsError" and "retry-after" in headers


def test_invalid_requests_count_against_the_rate_limit(make_api: Any) -> None:
    api = make_api(api_rate_per_minute=3)
    token = {"Authorization": f"Bearer {api.token('viewer')}"}
    assert [api.call("GET", "/runs", headers=token, query={"limit": "0"})[0] for _ in range(4)] == [422, 422, 422, 429]


# --- API keys -----------------------------------------------------------------------------------------------


def test_an_api_key_authenticates_until_revoked(api: Api) -> None:
    # Given an admin creates a viewer key
    status, headers, created = api.call("POST", "/api-keys", role="admin", body={"name": "dash", "role": "viewer"})
    assert status == 201, created
    assert headers["location"] == f"/api-keys/{created['id']}" and headers["cache-control"] == "no-store"
    key = created["key"]
    # When it is used, it has the viewer role
    assert api.call("GET", "/portfolios", headers={"X-API-Key": key})[0] == 200
    assert api.call("GET", "/api-keys", headers={"X-API-Key": key})[0] == 403
    # And listing never shows the key or a digest
    _, _, listed = api.call("GET", "/api-keys", role="admin")
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0] and "digest" not in listed["items"][0]
    # When it is revoked
    status, _, revoked = api.call("DELETE", f"/api-keys/{created['id']}", role="admin")
    assert status == 200 and revoked["revoked_by"] == "local-admin"
    # Then it no longer authenticates, and a second revoke is a conflict
    assert api.call("GET", "/portfolios", headers={"X-API-Key": key})[0] == 401
    assert api.call("DELETE", f"/api-keys/{created['id']}", role="admin")[0] == 409
    assert api.call("DELETE", f"/api-keys/{'0' * 16}", role="admin")[0] == 404


# --- portfolios ---------------------------------------------------------------------------------------------


def test_a_stored_portfolio_is_read_archived_and_restored(api: Api) -> None:
    _seed_portfolio(api)
    status, headers, view = api.call("GET", "/portfolios/core", role="viewer")
    assert status == 200 and view["name"] == "core" and view["spec_version"] == 1 and headers["etag"] == '"1"'
    assert api.call("GET", "/portfolios/core/latest", role="viewer")[2] == {
        "portfolio": "core",
        "spec_version": 1,
        "holdings": None,
        "latest": None,
    }
    assert api.call("GET", "/portfolios/core/holdings", role="viewer")[2] == {"portfolio": "core", "holdings": None}
    _, _, events = api.call("GET", "/portfolios/core/events", role="viewer")
    assert [e["type"] for e in events["items"]] == ["PortfolioCreated"] and events["next_after"] is None
    assert api.call("GET", "/portfolios/core/runs", role="viewer")[2] == {"items": [], "cursor": None}
    # archive needs admin, and happens once
    assert api.call("POST", "/portfolios/core/archive", role="manager")[0] == 403
    status, _, archived = api.call("POST", "/portfolios/core/archive", role="admin", query={"reason": "merged"})
    assert status == 200 and archived["status"] == "archived"
    status, _, body = api.call("POST", "/portfolios/core/archive", role="admin")
    assert status == 409 and body["error"] == "InvalidTransitionError"
    # archived portfolios are listed only on request
    assert api.call("GET", "/portfolios", role="viewer")[2]["items"] == []
    listed = api.call("GET", "/portfolios", role="viewer", query={"include_archived": "true"})[2]["items"]
    assert [p["name"] for p in listed] == ["core"]
    status, _, restored = api.call("POST", "/portfolios/core/restore", role="admin")
    assert status == 200 and restored["status"] == "active"


def test_reading_an_unknown_portfolio_is_a_404(api: Api) -> None:
    status, _, body = api.call("GET", "/portfolios/ghost", role="viewer")
    assert status == 404 and body["error"] == "RecordNotFoundError"


def test_a_spec_change_is_validated_against_the_lake(api: Api) -> None:
    # Given a stored portfolio and an empty lake (no curated prices)
    _seed_portfolio(api)
    spec = {**_spec("core"), "method": "min_variance"}
    # When a manager changes its spec
    status, _, body = api.call(
        "PUT", "/portfolios/core", role="manager", body={"spec": spec, "expected_spec_version": 1}
    )
    # Then the spec is refused as unusable (no prices), with a hint, and nothing changes
    assert status == 422 and body["error"] == "SpecificationError", body
    assert set(body) == ERROR_KEYS and "spe data ingest" in body["hint"]
    assert api.call("GET", "/portfolios/core", role="viewer")[2]["spec_version"] == 1


def test_a_spec_renamed_in_a_change_is_refused(api: Api) -> None:
    _seed_portfolio(api)
    status, _, body = api.call(
        "PUT", "/portfolios/core", role="manager", body={"spec": _spec("other"), "expected_spec_version": 1}
    )
    assert status == 422 and body["error"] == "SpecificationError"


# --- runs ---------------------------------------------------------------------------------------------------


def test_a_rebalance_starts_once_per_idempotency_key(api: Api) -> None:
    _seed_portfolio(api)
    key = {"Idempotency-Key": "order-1"}
    # When a manager starts a run with a key
    status, headers, first = api.call("POST", "/portfolios/core/runs", role="manager", headers=key, body={})
    # Then it is accepted with where to read it, and the launcher started it once
    assert status == 202, first
    assert first["run_id"] == run_id_for("core", "order-1")
    assert headers["location"] == first["location"] == f"/runs/{first['run_id']}"
    assert first["status"] == "QUEUED" and first["replayed"] is False
    machine, request = api.launcher.started[first["run_id"]]
    assert machine == "rebalance" and request["portfolio"] == "core" and request["trigger"] == "api"
    # When the same request is sent again with the same key
    status, _, again = api.call("POST", "/portfolios/core/runs", role="manager", headers=key, body={})
    # Then it is the same run, replayed
    assert status == 202 and again["run_id"] == first["run_id"] and again["replayed"] is True
    assert len(api.launcher.started) == 1
    # When the key is reused with another request, it is a conflict
    status, _, body = api.call(
        "POST", "/portfolios/core/runs", role="manager", headers=key, body={"symbols": ["AAPL", "MSFT"]}
    )
    assert status == 409 and body["error"] == "DuplicateError"
    assert len(api.launcher.started) == 1


def test_the_same_key_for_two_portfolios_starts_two_runs(api: Api) -> None:
    _seed_portfolio(api, "core")
    _seed_portfolio(api, "growth")
    key = {"Idempotency-Key": "nightly"}
    one = api.call("POST", "/portfolios/core/runs", role="manager", headers=key, body={})[2]
    two = api.call("POST", "/portfolios/growth/runs", role="manager", headers=key, body={})[2]
    assert one["run_id"] != two["run_id"]
    assert set(api.launcher.started) == {one["run_id"], two["run_id"]}


def test_runs_without_a_key_are_each_new(api: Api) -> None:
    _seed_portfolio(api)
    one = api.call("POST", "/portfolios/core/runs", role="manager", body={})[2]
    two = api.call("POST", "/portfolios/core/runs", role="manager", body={})[2]
    assert one["run_id"] != two["run_id"] and len(api.launcher.started) == 2


def test_a_run_of_an_archived_or_unknown_portfolio_is_refused(api: Api) -> None:
    _seed_portfolio(api)
    assert api.call("POST", "/portfolios/core/archive", role="admin")[0] == 200
    status, _, body = api.call("POST", "/portfolios/core/runs", role="manager", body={})
    assert status == 409 and body["error"] == "InvalidTransitionError"
    status, _, body = api.call("POST", "/portfolios/ghost/runs", role="manager", body={})
    assert status == 404 and body["error"] == "RecordNotFoundError"
    # the bundled default portfolio may run before it is stored (`spe run` stores it)
    assert api.call("POST", "/portfolios/default/runs", role="manager", body={})[0] == 202
    assert api.call("POST", "/portfolios/core/runs", role="viewer", body={})[0] == 403
    assert len(api.launcher.started) == 1


def test_a_bad_idempotency_key_is_refused(api: Api) -> None:
    _seed_portfolio(api)
    status, _, body = api.call(
        "POST", "/portfolios/core/runs", role="manager", headers={"Idempotency-Key": "-bad key"}, body={}
    )
    assert status == 422 and body["error"] == "ValidationError"
    assert api.launcher.started == {}


def test_a_started_run_not_yet_recorded_reads_as_pending(api: Api) -> None:
    # Given a run the launcher started that has not recorded itself
    started = api.call("POST", "/portfolios/default/runs", role="manager", body={})[2]
    api.launcher.statuses[started["run_id"]] = ("FAILED", "could not import")
    # When it is read
    status, _, body = api.call("GET", started["location"], role="viewer")
    # Then the launcher's status answers
    assert status == 200
    assert body == {
        "run_id": started["run_id"],
        "machine": "rebalance",
        "status": "FAILED",
        "cause": "could not import",
    }
    assert api.call("GET", "/runs/never-started", role="viewer")[0] == 404
    assert api.call("GET", f"{started['location']}/events", role="viewer")[0] == 404


def test_a_recorded_run_is_read_from_the_store(api: Api) -> None:
    _seed_portfolio(api)
    _seed_alerts(api, "core", "run-1", ["warning"])
    status, _, body = api.call("GET", "/runs/run-1", role="viewer")
    assert status == 200 and body["run_id"] == "run-1" and body["status"] == "RUNNING"
    _, _, events = api.call("GET", "/runs/run-1/events", role="viewer")
    assert [e["type"] for e in events["items"]] == ["RunStarted", "AlertSent"]
    listed = api.call("GET", "/portfolios/core/runs", role="viewer")[2]["items"]
    assert [r["run_id"] for r in listed] == ["run-1"]


# --- alerts -------------------------------------------------------------------------------------------------


def test_alerts_are_filtered_by_portfolio_and_severity(api: Api) -> None:
    _seed_portfolio(api, "core")
    _seed_portfolio(api, "growth")
    _seed_alerts(api, "core", "run-1", ["warning", "breach", "critical", "breach"])
    _seed_alerts(api, "growth", "run-2", ["breach"])
    every = api.call("GET", "/alerts", role="viewer")[2]["items"]
    assert len(every) == 5
    assert [a["at"] for a in every] == sorted((a["at"] for a in every), reverse=True)
    core = api.call("GET", "/alerts", role="viewer", query={"portfolio": "core"})[2]["items"]
    assert {a["subject"] for a in core} == {"core"} and len(core) == 4
    breaches = api.call("GET", "/alerts", role="viewer", query={"severity": "breach"})[2]["items"]
    assert sorted(a["subject"] for a in breaches) == ["core", "core", "growth"]
    both = api.call("GET", "/alerts", role="viewer", query={"portfolio": "growth", "severity": "warning"})[2]
    assert both == {"items": [], "cursor": None}
    assert api.call("GET", "/alerts", role="viewer", query={"severity": "info"})[0] == 422


def test_alerts_are_filtered_by_time(api: Api) -> None:
    _seed_portfolio(api)
    _seed_alerts(api, "core", "run-1", ["warning", "breach", "critical", "warning", "breach"])
    every = api.call("GET", "/alerts", role="viewer")[2]["items"]
    times = sorted(a["at"] for a in every)  # oldest first
    # since is inclusive, until exclusive
    window = {"since": times[1], "until": times[3]}
    found = api.call("GET", "/alerts", role="viewer", query=window)[2]["items"]
    assert sorted(a["at"] for a in found) == times[1:3]
    found = api.call("GET", "/alerts", role="viewer", query={"since": times[3]})[2]["items"]
    assert sorted(a["at"] for a in found) == times[3:]
    # an empty window is refused
    status, _, body = api.call("GET", "/alerts", role="viewer", query={"since": times[3], "until": times[1]})
    assert status == 422 and body["error"] == "SpecificationError"


def test_paging_alerts_with_a_filter_loses_nothing(api: Api) -> None:
    # Given 13 alerts of which 7 are breaches
    _seed_portfolio(api)
    severities = ["breach", "warning"] * 6 + ["breach"]
    _seed_alerts(api, "core", "run-1", severities)
    expected = [
        a["id"]
        for a in api.call("GET", "/alerts", role="viewer", query={"limit": "200"})[2]["items"]
        if a["severity"] == "breach"
    ]
    assert len(expected) == 7
    # When breaches are read 2 at a time
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        query = {"severity": "breach", "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, _, page = api.call("GET", "/alerts", role="viewer", query=query)
        assert status == 200 and len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    # Then every breach is seen once, in order
    assert seen == expected


def _curate_prices(api: Api) -> None:
    """Curated bundled prices of the default universe for two months: what saving a spec checks it against."""
    from datetime import date

    from portfolio_engine.adapters.lake import ParquetLake
    from portfolio_engine.adapters.market_data.bundled import BundledSource

    universe = _spec("core")["universe"]
    bars = BundledSource().fetch(universe, start=date(2022, 1, 3), end=date(2022, 2, 28))
    ParquetLake(api.services.settings.resolved_lake_uri()).write_bars(bars, "bundled", zone="curated")


def test_a_portfolio_is_created_and_changed_on_the_version_read(api: Api) -> None:
    # Given a lake with curated prices of the universe
    _curate_prices(api)
    # When a manager creates a portfolio
    status, headers, created = api.call("POST", "/portfolios", role="manager", body={"spec": _spec("core")})
    assert status == 201, created
    assert headers["location"] == "/portfolios/core" and headers["etag"] == '"1"'
    assert created["changed"] is True and created["portfolio"]["spec_origin"] == "api"
    # Then creating it again is a conflict
    status, _, body = api.call("POST", "/portfolios", role="manager", body={"spec": _spec("core")})
    assert status == 409 and body["error"] == "DuplicateError"
    # When its spec is changed on version 1
    changed = {**_spec("core"), "method": "min_variance"}
    status, headers, saved = api.call(
        "PUT", "/portfolios/core", role="manager", body={"spec": changed, "expected_spec_version": 1}
    )
    assert status == 200, saved
    assert saved["portfolio"]["spec_version"] == 2 and headers["etag"] == '"2"'
    assert saved["portfolio"]["spec"]["method"] == "min_variance"
    # Then another change made on version 1 (stale) is a conflict, and changes nothing
    stale = {**_spec("core"), "method": "max_sharpe"}
    status, _, body = api.call(
        "PUT", "/portfolios/core", role="manager", body={"spec": stale, "expected_spec_version": 1}
    )
    assert status == 409 and body["error"] == "ConcurrencyError", body
    assert api.call("GET", "/portfolios/core", role="viewer")[2]["spec"]["method"] == "min_variance"
    # And a viewer may not change it
    assert (
        api.call("PUT", "/portfolios/core", role="viewer", body={"spec": changed, "expected_spec_version": 2})[0] == 403
    )
