"""How the lake's bar partitions are laid out and merged: schemas, versions, the merge of a write, scan filters.

Pure pandas and pyarrow (no filesystem): :class:`~portfolio_engine.adapters.lake.ParquetLake` reads a partition,
merges a write into it here, and writes the result (and, in the raw zone, the earlier versions it superseded).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from portfolio_engine.data.schema import BAR_COLUMNS

__all__ = [
    "BAR_SCHEMA",
    "HISTORY_SCHEMA",
    "RAW_SCHEMA",
    "VERSION_COLUMNS",
    "Stamp",
    "dataset_name",
    "merge_partition",
    "safe_name",
    "scan_filter",
]

BAR_SCHEMA = pa.schema(
    [
        ("date", pa.timestamp("ns")),
        ("symbol", pa.string()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("adj_close", pa.float64()),
        ("volume", pa.float64()),
    ]
)
#: Which write put a raw bar's value there: the ingest (run) id and when it wrote it.
VERSION_COLUMNS: tuple[str, ...] = ("ingest_id", "ingested_at")
RAW_SCHEMA = BAR_SCHEMA.append(pa.field("ingest_id", pa.string())).append(
    pa.field("ingested_at", pa.timestamp("us", tz="UTC"))
)
#: A superseded raw version, and the write that superseded it.
HISTORY_SCHEMA = RAW_SCHEMA.append(pa.field("superseded_by", pa.string())).append(
    pa.field("superseded_at", pa.timestamp("us", tz="UTC"))
)


@dataclass(frozen=True)
class Stamp:
    """The version a raw write gives the bars it stores."""

    ingest_id: str
    at: pd.Timestamp

    @classmethod
    def new(cls, ingest_id: str | None) -> Stamp:
        now = pd.Timestamp.now(tz="UTC").floor("us")
        return cls(ingest_id or f"write-{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}", now)


def dataset_name(interval: str) -> str:
    return "prices" if interval == "1d" else f"prices_{interval}"


def safe_name(ingest_id: str) -> str:
    """An ingest id as an object name (run ids are already safe: letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", ingest_id)


def merge_partition(
    existing: pd.DataFrame | None,
    chunk: pd.DataFrame,
    replaced: set[str],
    counts: dict[str, int],
    stamp: Stamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Merge new bars into one partition's rows; None when the partition would not change.

    Rows of ``replaced`` symbols absent from ``chunk`` are deleted; ``counts`` is updated in place.
    With a ``stamp`` (the raw zone), new and changed rows get its version columns and the earlier
    versions of changed and deleted rows are returned as the second frame (``HISTORY_SCHEMA``);
    without one it is empty.
    """
    versioned = stamp is not None
    columns = [*BAR_COLUMNS, *VERSION_COLUMNS] if versioned else list(BAR_COLUMNS)
    if existing is None:
        counts["new"] += len(chunk)
        if not len(chunk):
            return None
        out = chunk.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
        if stamp is not None:
            out = out.assign(ingest_id=stamp.ingest_id, ingested_at=stamp.at)
        return out, out.iloc[:0]
    if versioned:
        for column in VERSION_COLUMNS:  # a partition written before versions were kept
            if column not in existing.columns:
                existing[column] = (
                    None
                    if column == "ingest_id"
                    else pd.Series(pd.NaT, index=existing.index, dtype="datetime64[us, UTC]")
                )
    merged = existing.merge(chunk, on=["symbol", "date"], how="outer", suffixes=("_old", ""), indicator=True)
    value_cols = [c for c in BAR_COLUMNS if c not in ("symbol", "date")]
    same = pd.Series(True, index=merged.index)
    for col in value_cols:
        a, b = merged[col], merged[f"{col}_old"]
        same &= (a == b) | (a.isna() & b.isna())
    is_new, both, old_only = (merged["_merge"] == k for k in ("right_only", "both", "left_only"))
    changed = both & ~same
    dropped = old_only & merged["symbol"].astype(str).isin(replaced)
    counts["new"] += int(is_new.sum())
    counts["updated"] += int(changed.sum())
    counts["unchanged"] += int((both & same).sum())
    counts["deleted"] += int(dropped.sum())
    if not (is_new.any() or changed.any() or dropped.any()):
        return None
    superseded = pd.DataFrame()
    if stamp is not None:
        gone = changed | dropped
        superseded = merged.loc[gone, ["date", "symbol", *(f"{c}_old" for c in value_cols), *VERSION_COLUMNS]]
        superseded = superseded.rename(columns={f"{c}_old": c for c in value_cols})[columns]
        superseded = superseded.assign(superseded_by=stamp.ingest_id, superseded_at=stamp.at).reset_index(drop=True)
        fresh = is_new | changed
        merged["ingest_id"] = merged["ingest_id"].astype(object).where(~fresh, stamp.ingest_id)
        merged["ingested_at"] = merged["ingested_at"].where(~fresh, stamp.at)
    keep = old_only & ~dropped
    for col in value_cols:
        merged[col] = merged[col].where(~keep, merged[f"{col}_old"])
    out = merged.loc[~dropped, columns]
    return out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True), superseded


def scan_filter(
    symbols: Sequence[str] | None, start: date | pd.Timestamp | None, end: date | pd.Timestamp | None
) -> pc.Expression | None:
    """A scan filter on symbol and date; the ``year`` terms let pyarrow skip whole partitions."""
    terms = []
    if symbols is not None:
        terms.append(pc.field("symbol").isin(list(symbols)))
    if start is not None:
        ts = pd.Timestamp(start)
        terms += [pc.field("year") >= ts.year, pc.field("date") >= pa.scalar(ts.to_pydatetime(), pa.timestamp("ns"))]
    if end is not None:
        # ``end`` is a day: every bar of that day is in, intraday ones included.
        te = pd.Timestamp(end).normalize()
        after = (te + pd.Timedelta(days=1)).to_pydatetime()
        terms += [pc.field("year") <= te.year, pc.field("date") < pa.scalar(after, pa.timestamp("ns"))]
    expr = None
    for term in terms:
        expr = term if expr is None else expr & term
    return expr
