"""What every route module shares: the services the handlers use, and the decorator that declares a route.

``operation`` registers a handler on a module's ``Router`` with its required role (``x-required-role`` in the
OpenAPI document, enforced by ``app.guard``), its security schemes and every error status it can return, each
with the one error schema: a route cannot forget to declare its role or an error it may answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router

from portfolio_engine.api.errors import ErrorBody

if TYPE_CHECKING:
    from portfolio_engine.api.auth import Principal, TokenVerifier
    from portfolio_engine.api.limits import RateLimiter
    from portfolio_engine.ports import Lake, ModelRegistry, ResponseCache, RunLauncher, Store
    from portfolio_engine.settings import Settings

__all__ = ["PUBLIC", "Services", "operation", "principal", "services"]

Access = Literal["public", "viewer", "manager", "admin"]
PUBLIC: Access = "public"
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]

_ERRORS = {
    400: "Malformed request (JSON, encoding, content type, cursor)",
    401: "No credentials, or credentials that do not verify",
    403: "The caller's role is below the route's",
    404: "Not found",
    409: "Conflict: a version or state changed, or a duplicate",
    413: "Request too large",
    422: "Validation failed",
    429: "Too many requests (see Retry-After)",
    503: "The store of record cannot be reached",
}
_BODY_METHODS = {"POST", "PUT", "PATCH"}


@dataclass
class Services:
    """What handlers use, built once per process (module scope on Lambda, at start-up in ``spe api``).

    The lake is opened on first use: it imports pandas and pyarrow, which the read routes never need.
    """

    settings: Settings
    store: Store
    launcher: RunLauncher
    verifier: TokenVerifier
    limiter: RateLimiter
    open_lake: Callable[[], Lake]
    cache: ResponseCache | None = None
    _lake: list[Lake] = field(default_factory=list)

    def lake(self) -> Lake:
        """The lake (opened once)."""
        if not self._lake:
            self._lake.append(self.open_lake())
        return self._lake[0]

    def registry(self) -> ModelRegistry:
        """The model registry: artefacts in the lake, champions in the store."""
        from portfolio_engine.adapters.model_registry import StoreModelRegistry

        return StoreModelRegistry(self.lake(), self.store)


_current: list[Services] = []


def install(bound: Services) -> None:
    """Make ``bound`` the services every handler of this process uses."""
    _current[:] = [bound]


def services() -> Services:
    """The services of this process (``install`` must have run: ``app.build_app`` does)."""
    if not _current:
        raise RuntimeError("API services are not installed; build the app with portfolio_engine.api.app.build_app.")
    return _current[0]


def principal(router: Router) -> Principal:
    """The verified caller of the current request (set by the guard before any protected handler runs)."""
    found = router.context.get("principal")
    if found is None:
        raise RuntimeError("No principal on a protected route: the guard did not run.")
    return found


def operation(
    router: Router,
    method: str,
    path: str,
    *,
    role: Access,
    summary: str,
    errors: Iterable[int] = (),
    status_code: int = 200,
    include_in_schema: bool = True,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route needing ``role`` that may answer the ``errors`` listed (and what every route may)."""
    statuses = set(errors) | {400, 422, 503}
    if role != PUBLIC:
        statuses |= {401, 403, 429}
    if method in _BODY_METHODS:
        statuses.add(413)
    responses: dict[int, Any] = {
        code: {"description": _ERRORS[code], "content": {"application/json": {"model": ErrorBody}}}
        for code in sorted(statuses)
    }
    responses[status_code] = {"description": kwargs.pop("response_description", "Success")}
    responses.update(kwargs.pop("responses", {}))
    return router.route(
        path,
        method,
        summary=summary,
        responses=responses,
        status_code=status_code,
        security=None if role == PUBLIC else SECURITY,
        openapi_extensions={"x-required-role": role},
        include_in_schema=include_in_schema,
        **kwargs,
    )
