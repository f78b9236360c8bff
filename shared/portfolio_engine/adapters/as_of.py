"""The lake as it was on a day, with a scratch area for writes: what ``spe replay`` runs a past run's steps on.

Reads of bars and features stop at ``end`` (inclusive), so steps that read "all the history" read what the
run read; features are point-in-time, so a feature set rebuilt since gives the same rows up to ``end``.
Objects the replayed steps write (a Monte Carlo plan, shards, reports) go to a scratch lake, and are read
back from it first: the real lake is never written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date
from typing import Any

import pandas as pd

from portfolio_engine.exceptions import LakeError
from portfolio_engine.ports import Coverage, Lake, UpsertResult, Zone

__all__ = ["AsOfLake"]


def _clip(end: date, value: date | pd.Timestamp | None) -> pd.Timestamp:
    bound = pd.Timestamp(end)
    return bound if value is None else min(bound, pd.Timestamp(value))


class AsOfLake:
    """A read-only view of ``base`` up to ``end``, writing to ``scratch``.

    Parameters
    ----------
    base : Lake
        The lake to read.
    end : date
        The last day visible.
    scratch : Lake
        Where writes go (a temporary folder).
    """

    def __init__(self, base: Lake, end: date, scratch: Lake) -> None:
        self.base = base
        self.end = end
        self.scratch = scratch
        self.uri = scratch.uri

    # ------------------------------------------------------------------ clipped reads
    def read_bars(
        self,
        source: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        *,
        zone: Zone = "curated",
        interval: str = "1d",
    ) -> pd.DataFrame:
        return self.base.read_bars(source, symbols, start, _clip(self.end, end), zone=zone, interval=interval)

    def inventory(self, source: str, *, zone: Zone = "curated", interval: str = "1d") -> list[Coverage]:
        bars = self.read_bars(source, zone=zone, interval=interval)
        grouped = bars.groupby("symbol")["date"].agg(["min", "max", "count"])
        return sorted(
            Coverage(str(s), row["min"].date(), row["max"].date(), int(row["count"])) for s, row in grouped.iterrows()
        )

    def read_features(
        self,
        key: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        return self.base.read_features(key, symbols, start, _clip(self.end, end), columns)

    def feature_manifest(self, key: str) -> dict[str, Any] | None:
        return self.base.feature_manifest(key)

    def feature_sets(self) -> list[str]:
        return self.base.feature_sets()

    def read_reference(self, name: str) -> pd.DataFrame:
        return self.base.read_reference(name)

    def raw_history(
        self,
        source: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        *,
        interval: str = "1d",
    ) -> pd.DataFrame:
        return self.base.raw_history(source, symbols, start, _clip(self.end, end), interval=interval)

    # ------------------------------------------------------------------ objects: scratch first
    def exists(self, key: str) -> bool:
        return self.scratch.exists(key) or self.base.exists(key)

    def get_json(self, key: str) -> Any:
        return self.scratch.get_json(key) if self.scratch.exists(key) else self.base.get_json(key)

    def get_bytes(self, key: str) -> bytes:
        return self.scratch.get_bytes(key) if self.scratch.exists(key) else self.base.get_bytes(key)

    def put_json(self, key: str, document: Any) -> str:
        return self.scratch.put_json(key, document)

    def put_bytes(self, key: str, payload: bytes) -> str:
        return self.scratch.put_bytes(key, payload)

    def key_uri(self, key: str) -> str:
        return self.scratch.key_uri(key)

    # ------------------------------------------------------------------ datasets are never written
    def _refuse(self, what: str) -> LakeError:
        return LakeError(f"A replay as of {self.end} never writes {what}.", hint="Replay only recomputes.")

    def write_bars(
        self,
        bars: pd.DataFrame,
        source: str,
        *,
        zone: Zone,
        interval: str = "1d",
        replace: Collection[str] = (),
        ingest_id: str | None = None,
    ) -> UpsertResult:
        raise self._refuse("bars")

    def write_features(self, features: pd.DataFrame, key: str, manifest: dict[str, Any]) -> str:
        raise self._refuse("feature sets")

    def write_reference(self, name: str, frame: pd.DataFrame) -> str:
        raise self._refuse("reference tables")

    def write_quarantine(self, rows: pd.DataFrame, source: str, *, ingest_id: str, interval: str = "1d") -> str:
        raise self._refuse("quarantined bars")
