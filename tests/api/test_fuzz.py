"""Fuzz every operation of the committed OpenAPI document against the live server (schemathesis).

Given the committed contract, when schemathesis sends valid and invalid requests to every operation as an
admin, as a viewer and with no credentials, then the server never fails (no 5xx) and answers only statuses,
content types and bodies the document declares. Derandomized: the same requests on every run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portfolio_engine.cli.api import OPENAPI_PATH

from .conftest import LiveApi

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: For a request that is not HTTP (a control character in a header, which RFC 9110 forbids): uvicorn's parser
#: answers it with its own text/plain 400 before the API sees it (API Gateway does the same on AWS), so only
#: the status is checked.
TRANSPORT_CHECKS = [not_a_server_error, status_code_conformance]
_NOT_HTTP = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: Examples per operation and pass: 30 operations x 4 passes x 12 is 1,440 at most (operations with few inputs
#: exhaust theirs sooner: 1,350 sent, in about 50 s on 2 cores); the count is asserted below.
EXAMPLES = 12
MINIMUM_REQUESTS = 1000
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _run_pass(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    anonymous: bool,
    session: requests.Session,
    sent: list[str],
    failures: dict[tuple[str, str], str],
) -> None:
    """Send ``EXAMPLES`` generated cases of one operation; record (not raise) each distinct failure."""
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        if anonymous and case.headers:
            for name in [n for n in case.headers if n.lower() in CREDENTIAL_HEADERS]:
                del case.headers[name]
        sent.append(label)
        try:
            http = not any(_NOT_HTTP.search(f"{k}{v}") for k, v in (case.headers or {}).items())
            case.call_and_validate(
                headers=headers, checks=CHECKS if http else TRANSPORT_CHECKS, session=session, timeout=30
            )
        except (
            Exception,
            BaseExceptionGroup,
        ) as failed:  # every failure found, not only the first: a report lists them all
            first = str(failed).strip().splitlines()[:1]
            failures.setdefault((label, first[0] if first else type(failed).__name__), str(failed)[:3000])

    try:
        send()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body): the positive passes cover it
        assert mode == GenerationMode.NEGATIVE, label


def test_fuzz_every_operation_as_admin_viewer_and_anonymous(module_api: LiveApi) -> None:
    """No 5xx and no undocumented status, content type or body over about 1,000 generated requests."""
    schema = schemathesis.openapi.from_dict(json.loads(OPENAPI_PATH.read_text()))
    schema.config.update(base_url=module_api.url)
    passes: list[tuple[GenerationMode, Callable[[], dict[str, str]], bool]] = [
        (GenerationMode.POSITIVE, lambda: module_api.headers("admin"), False),
        (GenerationMode.NEGATIVE, lambda: module_api.headers("admin"), False),
        (GenerationMode.POSITIVE, lambda: module_api.headers("viewer"), False),
        (GenerationMode.POSITIVE, dict, True),
    ]
    session = requests.Session()
    sent: list[str] = []
    failures: dict[tuple[str, str], str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(
        1 for item in schema.raw_schema["paths"].values() for m in item if m in ("get", "put", "post", "delete")
    )
    # Operations that start runs last: each queues a real run in a child process, which would slow the rest.
    launching = [o for o in operations if "202" in o.definition.raw.get("responses", {})]
    plan = [(p, o) for p in passes for o in operations if o not in launching]
    plan += [(p, o) for p in passes for o in launching]
    began = time.monotonic()
    for (mode, headers, anonymous), operation in plan:
        _run_pass(operation, mode, headers(), anonymous, session, sent, failures)

    print(f"fuzzed {len(operations)} operations with {len(sent)} requests in {time.monotonic() - began:.0f} s")
    report = "\n\n".join(f"{label}: {text}" for (label, _), text in sorted(failures.items()))
    assert not failures, f"{len(failures)} distinct failures in {len(sent)} requests:\n{report}"
    assert len(sent) >= MINIMUM_REQUESTS, f"only {len(sent)} requests sent"
    assert {label for label in sent} >= {f"{o.method.upper()} {o.path}" for o in operations}


def test_spec_named_outside_the_store_rules_is_refused_not_a_crash(module_api: LiveApi) -> None:
    """Found by fuzzing: a spec named '/\\x96T' parsed, then the store's stream name check raised a 500."""
    spec = {"name": "/\x96T", "universe": ["AAPL", "JPM"], "method": "min_variance"}
    response = requests.post(
        f"{module_api.url}/portfolios", json={"spec": spec}, headers=module_api.headers("manager"), timeout=30
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "SpecificationError"
