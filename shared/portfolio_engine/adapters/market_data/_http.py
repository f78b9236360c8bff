"""The HTTP edge shared by the ``requests``-based sources (Alpha Vantage, Nasdaq Data Link).

One GET, with transport failures, HTTP 429 and HTTP 5xx turned into the engine's transient errors
(chained to a ``requests.HTTPError`` that keeps the response, so the resilience wrapper can read
``Retry-After``). Other statuses are returned for the source to interpret, since each API words its
errors differently. API keys travel in query strings, so they are scrubbed from exception text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests

from portfolio_engine.exceptions import MalformedResponseError, RateLimitedError, SourceUnavailableError

logger = logging.getLogger(__name__)

_REDACTED = "***"


def scrub(exc: BaseException, secret: str | None) -> None:
    """Replace ``secret`` in the exception's arguments, so tracebacks and logs do not leak it."""
    if not secret:
        return
    exc.args = tuple(arg.replace(secret, _REDACTED) if isinstance(arg, str) else arg for arg in exc.args)


def _body_excerpt(response: requests.Response, limit: int = 200) -> str:
    text = response.text or ""
    return text[:limit] + ("..." if len(text) > limit else "")


def http_get(
    session: requests.Session,
    url: str,
    *,
    params: Mapping[str, str],
    timeout: float,
    source: str,
    secret: str | None = None,
) -> requests.Response:
    """GET ``url`` and return the response unless the failure is transient.

    Parameters
    ----------
    session : requests.Session
        The source's session.
    url : str
        Endpoint without query string.
    params : mapping
        Query parameters (may hold the API key).
    timeout : float
        Seconds for connect and read.
    source : str
        Source name for messages.
    secret : str, optional
        The API key, scrubbed from any error text.

    Returns
    -------
    requests.Response
        Any response with a status other than 429 and 5xx.

    Raises
    ------
    SourceUnavailableError
        Timeout, connection failure or HTTP 5xx.
    RateLimitedError
        HTTP 429.
    """
    try:
        response = session.get(url, params=dict(params), timeout=timeout)
    except requests.Timeout as exc:
        scrub(exc, secret)
        raise SourceUnavailableError(
            f"{source} did not answer within {timeout} s.",
            hint="Retry later, or raise the timeout (SPE_SOURCE_TIMEOUT_SECONDS).",
        ) from exc
    except requests.ConnectionError as exc:
        scrub(exc, secret)
        raise SourceUnavailableError(
            f"Cannot connect to {source}: {type(exc).__name__}.",
            hint="Check network access to the source (proxy, DNS, firewall) and retry.",
        ) from exc
    except requests.RequestException as exc:
        scrub(exc, secret)
        raise SourceUnavailableError(f"Request to {source} failed: {type(exc).__name__}: {exc}.") from exc
    status = response.status_code
    if status == 429 or status >= 500:
        http_error = requests.HTTPError(f"HTTP {status} {response.reason} from {source}", response=response)
        if status == 429:
            raise RateLimitedError(f"{source} answered HTTP 429 Too Many Requests.") from http_error
        raise SourceUnavailableError(
            f"{source} answered HTTP {status} {response.reason}: {_body_excerpt(response)!r}."
        ) from http_error
    return response


def decode_json(response: requests.Response, *, source: str) -> Any:
    """Parse the response body as JSON.

    Raises
    ------
    MalformedResponseError
        If the body is not JSON.
    """
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedResponseError(
            f"{source} answered HTTP {response.status_code} with a body that is not JSON: {_body_excerpt(response)!r}.",
            hint="The API may have changed or a proxy answered instead; retry later or report it.",
        ) from exc
