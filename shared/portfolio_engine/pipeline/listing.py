"""Filtered pages of the store's listings, with cursors that lose nothing.

The store lists a kind by one order (runs and alerts by time); a filter on another field (a status, a
severity) reads on until the page is full. Each read asks for no more rows than the page still needs, so the
cursor handed back always points just after the last row looked at: the next page starts exactly there. A
scan stops after ``max_reads`` reads with a short page and a cursor (as DynamoDB does with a filter), so one
request never reads a whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portfolio_engine.ports import Page, Store

__all__ = ["filtered_page"]

Document = dict[str, Any]


def filtered_page(
    store: Store,
    kind: str,
    *,
    limit: int,
    cursor: str | None = None,
    owner: str | None = None,
    keep: Callable[[Document], bool] = lambda _: True,
    stop: Callable[[Document], bool] = lambda _: False,
    descending: bool = True,
    max_reads: int = 20,
) -> Page:
    """Up to ``limit`` documents that ``keep`` accepts, in listing order, and the next page's cursor.

    ``stop`` ends the listing at the first document it accepts (a time window passed in a listing by time):
    the page then has no next cursor.
    """
    items: list[Document] = []
    for _ in range(max_reads):
        page = store.views(kind, owner=owner, limit=limit - len(items), cursor=cursor, descending=descending)
        for document in page.items:
            if stop(document):
                return Page(items, None)
            if keep(document):
                items.append(document)
        cursor = page.cursor
        if cursor is None or len(items) >= limit:
            break
    return Page(items, cursor)
