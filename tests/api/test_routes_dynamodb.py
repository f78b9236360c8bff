"""The API as it runs on AWS: the Lambda resolver over the store on DynamoDB (moto's server) and Step Functions.

GIVEN a real rebalance committed to a DynamoDB store on moto's server, the Lambda function's resolver
(``build_app(local=False)``, API Gateway HTTP API events) with the Step Functions launcher pointed at a state
machine on the same server; WHEN the route table is called in turn; THEN each answers from the table, and
every change goes through the store's versioned appends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from typer.testing import CliRunner

from portfolio_engine.adapters.store.dynamodb import DynamoStore
from portfolio_engine.api.app import build_app
from portfolio_engine.api.devkeys import ensure_dev_issuer
from portfolio_engine.api.wiring import build_services
from portfolio_engine.cli import app as cli
from portfolio_engine.settings import Settings

Call = Callable[..., tuple[int, Any, dict[str, str]]]


class _Context:
    function_name = "spe-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:spe-api"
    aws_request_id = "req"


@pytest.fixture
def call(data_dir: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Call:
    table = f"spe-api-{abs(hash(str(data_dir))) % 10**8}"
    DynamoStore(table, endpoint_url=aws_env).create_table()
    monkeypatch.setenv("SPE_STORE_URI", f"dynamodb://{table}")
    result = CliRunner().invoke(cli, ["run", "--symbols", "AAPL,JPM,XOM", "--start", "2012-01-01", "--run-id", "first"])
    assert result.exit_code == 0, result.stdout
    sfn = boto3.client("stepfunctions", endpoint_url=aws_env, region_name="us-east-1")
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    role = "arn:aws:iam::123456789012:role/spe"
    arns = {
        machine: sfn.create_state_machine(name=f"{table}-{machine}", definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
        for machine in ("rebalance", "backtest")
    }
    monkeypatch.setenv("SPE_STATE_MACHINE_ARNS", json.dumps(arns))
    issuer = ensure_dev_issuer(data_dir)
    monkeypatch.setenv("SPE_API_JWKS", str(issuer.jwks_path))
    settings = Settings()
    resolver = build_app(build_services(settings, local=False))
    tokens = {r: issuer.mint(role=r, issuer="spe-local", audience="spe-api") for r in ("viewer", "manager", "admin")}

    def send(method: str, path: str, role: str | None = "viewer", body: Any = None, **headers: str) -> Any:
        query = path.partition("?")[2]
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path.partition("?")[0],
            "rawQueryString": query,
            "queryStringParameters": dict(kv.split("=", 1) for kv in query.split("&")) if query else None,
            "headers": {
                **({"authorization": f"Bearer {tokens[role]}"} if role else {}),
                **({"content-type": "application/json"} if body is not None else {}),
                **{k.replace("_", "-").lower(): v for k, v in headers.items()},
            },
            "requestContext": {
                "http": {"method": method, "path": path.partition("?")[0], "sourceIp": "127.0.0.1"},
                "requestId": "req-1",
                "stage": "$default",
            },
            "body": None if body is None else json.dumps(body),
            "isBase64Encoded": False,
        }
        response = resolver.resolve(event, _Context())
        document = json.loads(response["body"]) if response.get("body") else None
        return response["statusCode"], document, response.get("headers") or {}

    return send


def test_the_route_table_reads_and_changes_the_store_on_dynamodb(call: Call) -> None:
    # reads of what the run committed
    status, listed, _ = call("GET", "/portfolios")
    assert status == 200 and [p["name"] for p in listed["items"]] == ["default"]
    status, portfolio, headers = call("GET", "/portfolios/default")
    assert status == 200 and portfolio["holdings"]["run_id"] == "first" and headers["ETag"] == '"1"'
    status, latest, _ = call("GET", "/portfolios/default/latest")
    assert status == 200 and latest["latest"]["run_id"] == "first"
    assert sum(latest["holdings"]["weights"].values()) == pytest.approx(1.0)
    assert call("GET", "/portfolios/default/holdings")[1]["holdings"]["run_id"] == "first"
    status, runs, _ = call("GET", "/portfolios/default/runs")
    assert status == 200 and [r["run_id"] for r in runs["items"]] == ["first"]
    status, run, _ = call("GET", "/runs/first")
    assert status == 200 and run["status"] == "SUCCEEDED" and run["result"]["committed_weights"]
    assert {s["state"] for s in run["steps"]} >= {"StartRun", "Optimize", "CheckLimits"}
    types = [e["type"] for e in call("GET", "/runs/first/events")[1]["items"]]
    assert types[0] == "RunStarted" and types[-1] == "RunCommitted"
    status, regime, _ = call("GET", "/regime")
    assert status == 200 and regime["run_id"] == "first" and regime["champion"] == regime["detected_by"]
    assert sum(regime["probabilities"].values()) == pytest.approx(1.0)
    status, alerts, _ = call("GET", "/alerts?portfolio=default&severity=breach")
    assert status == 200 and alerts["items"] and {a["severity"] for a in alerts["items"]} == {"breach"}
    assert {a["run_id"] for a in alerts["items"]} == {"first"}
    assert call("GET", "/runs?status=FAILED")[1]["items"] == []

    # a spec change is versioned: the stale writer gets 409 and nothing is written
    spec = {"name": "default", "universe": ["AAPL", "JPM", "XOM"], "method": "min_variance"}  # the lake's symbols
    status, saved, _ = call("PUT", "/portfolios/default", "manager", {"spec": spec, "expected_spec_version": 1})
    assert status == 200, saved and saved["changed"] and saved["portfolio"]["spec_version"] == 2
    status, error, _ = call("PUT", "/portfolios/default", "manager", {"spec": spec, "expected_spec_version": 1})
    assert status == 409 and error["error"] == "ConcurrencyError" and error["request_id"] == "req-1"
    assert call("PUT", "/portfolios/default", "viewer", {"spec": spec, "expected_spec_version": 2})[0] == 403

    # a new portfolio, then a run started on Step Functions, once per idempotency key
    core = {"name": "core", "universe": ["AAPL", "JPM"], "method": "min_variance"}
    status, created, headers = call("POST", "/portfolios", "manager", {"spec": core})
    assert status == 201 and headers["Location"] == "/portfolios/core" and created["portfolio"]["spec_origin"] == "api"
    assert call("POST", "/portfolios", "manager", {"spec": core})[0] == 409
    status, accepted, headers = call("POST", "/portfolios/core/runs", "manager", {}, idempotency_key="k-1")
    assert status == 202 and headers["Location"] == f"/runs/{accepted['run_id']}" and not accepted["replayed"]
    again = call("POST", "/portfolios/core/runs", "manager", {}, idempotency_key="k-1")[1]
    assert again["run_id"] == accepted["run_id"] and again["replayed"]
    status, pending, _ = call("GET", f"/runs/{accepted['run_id']}")
    assert status == 200 and pending["machine"] == "rebalance" and pending["status"] in ("RUNNING", "SUCCEEDED")
    other = call("POST", "/portfolios/default/runs", "manager", {}, idempotency_key="k-1")[1]
    assert other["run_id"] != accepted["run_id"]

    # archive (admin), refused twice, restored; API keys created, used, revoked
    assert call("POST", "/portfolios/core/archive", "manager")[0] == 403
    assert call("POST", "/portfolios/core/archive", "admin")[1]["status"] == "archived"
    assert call("POST", "/portfolios/core/archive", "admin")[0] == 409
    assert call("POST", "/portfolios/core/runs", "manager", {})[0] == 409
    assert call("POST", "/portfolios/core/restore", "admin")[1]["status"] == "active"
    status, key, _ = call("POST", "/api-keys", "admin", {"name": "dashboard", "role": "viewer"})
    assert status == 201 and key["key"].startswith("spe_") and "digest" not in key
    assert call("GET", "/portfolios", None, x_api_key=key["key"])[0] == 200
    assert call("POST", "/portfolios/core/archive", None, x_api_key=key["key"])[0] == 403
    assert call("DELETE", f"/api-keys/{key['id']}", "admin")[1]["revoked_at"]
    assert call("GET", "/portfolios", None, x_api_key=key["key"])[0] == 401
    query = urlencode({"limit": 1})
    first_page = call("GET", f"/api-keys?{query}", "admin")[1]
    assert len(first_page["items"]) == 1 and "key" not in first_page["items"][0]
