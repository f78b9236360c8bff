"""The API Lambda's cold start stays light: importing it and serving two reads loads no numerical stack.

The Lambda module (``functions/api/app.py``) is loaded by path in a fresh interpreter with only the settings an
AWS deployment has (a store URI, a JWKS file, a region, no state machines), then resolves ``GET /portfolios``
and ``GET /portfolios/default/latest`` with a valid viewer token. The time this takes is measured in
``benchmarks/bench_api.py``, not here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from portfolio_engine.api.devkeys import ensure_dev_issuer

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER = REPO_ROOT / "functions" / "api" / "app.py"
HEAVY = ("pandas", "numpy", "scipy", "cvxpy", "sklearn")

SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("api_app", {handler!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

class Context:
    function_name = "spe-api"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:spe-api"
    aws_request_id = "cold-import"

def event(path):
    return {{
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {{"authorization": "Bearer " + {token!r}, "host": "api.example.com"}},
        "requestContext": {{
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {{"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                      "userAgent": "test"}},
            "requestId": "cold-import", "routeKey": "$default", "stage": "$default",
            "time": "07/Dec/2026:00:00:00 +0000", "timeEpoch": 1796601600000,
        }},
        "isBase64Encoded": False,
    }}

paths = ("/portfolios", "/portfolios/default/latest")
statuses = [module.lambda_handler(event(p), Context())["statusCode"] for p in paths]
print(json.dumps({{"statuses": statuses, "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def test_serving_reads_after_a_cold_import_loads_no_numerical_stack(api_data: Path, tmp_path: Path) -> None:
    # Given a fresh interpreter with the settings an AWS deployment has, the store of a committed run,
    # and a viewer token of a known issuer
    shutil.copyfile(api_data / "store.db", tmp_path / "store.db")
    token = ensure_dev_issuer(tmp_path).mint(role="viewer", issuer="spe-local", audience="spe-api")
    jwks = tmp_path / "api" / "jwks.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "SPE_DATA_DIR": str(tmp_path / "data"),
        "SPE_STORE_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "SPE_API_JWKS": str(jwks),
        "SPE_STATE_MACHINE_ARNS": "{}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    script = SCRIPT.format(handler=str(HANDLER), token=token, heavy=HEAVY)

    # When the Lambda module is imported and resolves GET /portfolios and GET /portfolios/default/latest
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )

    # Then both reads were answered and none of the heavy packages was imported
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["statuses"] == [200, 200], done.stdout
    assert found["heavy"] == [], f"heavy modules imported on the read path: {found['heavy']}"
