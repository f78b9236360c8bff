"""``/health`` and ``/version``: public, for load balancers and for people checking what is deployed."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, Field

from portfolio_engine.api.routing import PUBLIC, operation, services

router = Router()


class Health(BaseModel):
    """The API answers and its store of record can be read."""

    status: Literal["ok"]
    store: str = Field(description="The store's kind: sqlite or dynamodb.")


class Version(BaseModel):
    """What is deployed."""

    api_version: str = Field(description="The contract's version (openapi.json's info.version).")
    code_version: str = Field(description="The deployed commit (SPE_CODE_VERSION) or a hash of the sources.")
    packages: dict[str, str | None]


@operation(router, "GET", "/health", role=PUBLIC, summary="Liveness and store reachability", tags=["health"])
def health() -> Health:
    """200 when the store answers a read; 503 (StoreError) when it does not."""
    bound = services()
    bound.store.views("portfolio", limit=1)
    return Health(status="ok", store=bound.store.uri.split(":", 1)[0])


@operation(
    router, "GET", "/version", role=PUBLIC, summary="Versions of the API, the code and the packages", tags=["health"]
)
def version() -> Version:
    from portfolio_engine.api.app import API_VERSION
    from portfolio_engine.provenance import code_version, package_versions

    return Version(
        api_version=API_VERSION,
        code_version=code_version(services().settings.code_version),
        packages=package_versions(),
    )
