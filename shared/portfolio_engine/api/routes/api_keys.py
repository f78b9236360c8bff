"""``/api-keys`` (admin): keys for machine clients, each scoped to a role, shown once, stored as a digest."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from portfolio_engine.api.routing import operation, principal, services
from portfolio_engine.pipeline.api_keys import create_api_key, list_api_keys, revoke_api_key

router = Router()


class ApiKeyCreate(BaseModel):
    """A key for a machine client."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Who uses it, e.g. risk-dashboard.")
    role: Literal["viewer", "manager", "admin"]


class ApiKeyRecord(BaseModel):
    """A key's record: never the key, never its digest."""

    id: str
    name: str
    role: str
    created_by: str | None = None
    created_at: str
    revoked_at: str | None = None
    revoked_by: str | None = None


class ApiKeyCreated(ApiKeyRecord):
    """The new key's record and the key itself, shown this once: send it as ``X-API-Key``."""

    key: str


class ApiKeyList(BaseModel):
    """A page of keys, newest first."""

    items: list[ApiKeyRecord]
    cursor: str | None


@operation(router, "POST", "/api-keys", role="admin", summary="Create an API key (shown once)", tags=["api-keys"],
           status_code=201)  # fmt: skip
def create(body: ApiKeyCreate) -> Response[ApiKeyCreated]:
    key, record = create_api_key(services().store, name=body.name, role=body.role, created_by=principal(router).subject)
    created = ApiKeyCreated(key=key, **record)
    return Response(
        status_code=201, content_type="application/json", body=created,
        headers={"Location": f"/api-keys/{record['id']}", "Cache-Control": "no-store"},
    )  # fmt: skip


@operation(router, "GET", "/api-keys", role="admin", summary="List API keys", tags=["api-keys"])
def list_keys(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> ApiKeyList:
    items, next_cursor = list_api_keys(services().store, limit=limit, cursor=cursor)
    return ApiKeyList(items=[ApiKeyRecord.model_validate(i) for i in items], cursor=next_cursor)


@operation(router, "DELETE", "/api-keys/<key_id>", role="admin", summary="Revoke an API key", tags=["api-keys"],
           errors=(404, 409))  # fmt: skip
def revoke(key_id: Annotated[str, Path(pattern="^[0-9a-f]{16}$")]) -> ApiKeyRecord:
    """It stops authenticating at once; 409 if already revoked."""
    return ApiKeyRecord.model_validate(revoke_api_key(services().store, key_id, by=principal(router).subject))
