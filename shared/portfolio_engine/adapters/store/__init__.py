"""Adapters of the store of record (:class:`~portfolio_engine.ports.Store`): SQLite locally, DynamoDB on AWS."""

from __future__ import annotations

from urllib.parse import urlparse

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.ports import Store
from portfolio_engine.settings import Settings

__all__ = ["build_store", "open_store"]


def open_store(uri: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> Store:
    """The store at ``uri``: ``sqlite:///<path>`` or ``dynamodb://<table>``.

    Raises
    ------
    ConfigurationError
        If the scheme is neither.
    """
    parsed = urlparse(uri)
    if uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        from portfolio_engine.adapters.store.sqlite import SqliteStore

        # SQLAlchemy's convention: sqlite:///relative/path, sqlite:////absolute/path.
        return SqliteStore(uri.removeprefix("sqlite:///"))
    if parsed.scheme == "dynamodb" and parsed.netloc:
        from portfolio_engine.adapters.store.dynamodb import DynamoStore

        return DynamoStore(parsed.netloc, region=region, endpoint_url=endpoint_url)
    raise ConfigurationError(
        f"Unsupported store URI {uri!r}.",
        hint="Set SPE_STORE_URI to sqlite:///path/to/store.db or dynamodb://<table-name>.",
    )


def build_store(settings: Settings) -> Store:
    """The store the settings name (``SPE_STORE_URI``; the SQLite file under the data directory by default)."""
    return open_store(settings.resolved_store_uri(), endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
