"""Ports: the interfaces use cases depend on. Adapters in ``portfolio_engine.adapters`` implement them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class MarketDataSource(Protocol):
    """A source of bars in the canonical schema (``portfolio_engine.data.schema``)."""

    name: str

    def fetch(
        self,
        symbols: Sequence[str],
        start: date | None = None,
        end: date | None = None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Return bars for ``symbols`` between ``start`` and ``end`` inclusive (None: as far as known).

        Raises
        ------
        UnknownSymbolError, EmptyDataError, DataSourceError (and subclasses)
        """
        ...


@runtime_checkable
class ResponseCache(Protocol):
    """A byte cache with expiry, shared by the network sources (Redis or in-process)."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...
