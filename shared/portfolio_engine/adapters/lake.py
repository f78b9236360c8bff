"""The Parquet lake: one adapter for a local folder and for ``s3://``, through pyarrow's filesystems.

Layout under the lake root::

    raw/prices/source=<source>/year=<YYYY>/part-0.parquet      daily bars as the source gave them
    curated/prices/source=<source>/year=<YYYY>/part-0.parquet  daily bars that passed validation (what is used)
    <zone>/prices_<interval>/source=...                        intraday bars (``prices_5m``), same layout
    features/version=<hash>/year=<YYYY>/part-0.parquet     a feature set, one folder per definition
    features/version=<hash>/_spec.json                     the definition that produced it
    reference/<name>.parquet                               reference tables (factors, yield curve)
    reports/<kind>/<id>.json                               validation reports, run summaries

Ingest writes the raw zone; validation reads it and writes the curated zone, so bad data is kept
for inspection but never used. Hive partitions let a range or universe read prune files (``year``)
and push filters into the scan
(``symbol``, ``date``). Writes replace whole partition files: locally through a temporary file and
an atomic rename, on S3 with one PUT per object, so a reader never sees half a partition.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from portfolio_engine.data.schema import BAR_COLUMNS, conform_bars, empty_bars
from portfolio_engine.exceptions import EmptyDataError, LakeError

logger = logging.getLogger(__name__)

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
_PART = "part-0.parquet"
Zone = Literal["raw", "curated"]
ZONES: tuple[str, ...] = ("raw", "curated")


@dataclass(frozen=True)
class UpsertResult:
    """What one write of bars changed in the lake."""

    rows_new: int
    rows_updated: int
    rows_unchanged: int
    partitions_written: int

    def to_dict(self) -> dict[str, int]:
        return {
            "rows_new": self.rows_new,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "partitions_written": self.partitions_written,
        }


@dataclass(frozen=True, order=True)
class Coverage:
    """What the lake holds of one symbol."""

    symbol: str
    first_date: date
    last_date: date
    rows: int

    def to_dict(self) -> dict[str, str | int]:
        return {
            "symbol": self.symbol,
            "first_date": str(self.first_date),
            "last_date": str(self.last_date),
            "rows": self.rows,
        }


def describe(coverage: Sequence[Coverage]) -> dict[str, Any]:
    """Summary of several symbols' coverage: symbols, overall date range, total rows, and each symbol."""
    return {
        "symbols": [c.symbol for c in coverage],
        "n_symbols": len(coverage),
        "first_date": str(min(c.first_date for c in coverage)) if coverage else None,
        "last_date": str(max(c.last_date for c in coverage)) if coverage else None,
        "rows": sum(c.rows for c in coverage),
        "per_symbol": [c.to_dict() for c in coverage],
    }


def filesystem_for(
    uri: str, *, endpoint_url: str | None = None, region: str = "us-east-1"
) -> tuple[pafs.FileSystem, str]:
    """Return the pyarrow filesystem and the root path inside it for a lake URI.

    Raises
    ------
    LakeError
        If the scheme is neither a local path, ``file://`` nor ``s3://``.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        kwargs: dict[str, Any] = {"region": region}
        if endpoint_url:
            endpoint = urlparse(endpoint_url)
            kwargs["endpoint_override"] = endpoint.netloc or endpoint.path
            kwargs["scheme"] = endpoint.scheme or "https"
        fs: pafs.FileSystem = pafs.S3FileSystem(**kwargs)
        return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
    if parsed.scheme in ("", "file"):
        local = pafs.LocalFileSystem()
        root = parsed.path if parsed.scheme == "file" else uri
        return local, root.rstrip("/") or "/"
    raise LakeError(
        f"Unsupported lake URI scheme '{parsed.scheme}' in {uri!r}.", hint="Use a local folder or s3://bucket/prefix."
    )


class ParquetLake:
    """Read and write the lake's datasets.

    Parameters
    ----------
    uri : str
        Local folder or ``s3://bucket/prefix``.
    endpoint_url : str, optional
        S3 endpoint (moto server, LocalStack); None for AWS.
    region : str
        AWS region for S3.
    """

    def __init__(self, uri: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        self.uri = uri
        self.fs, self.root = filesystem_for(uri, endpoint_url=endpoint_url, region=region)
        self._local = isinstance(self.fs, pafs.LocalFileSystem)

    # ------------------------------------------------------------------ low level
    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _exists(self, path: str) -> bool:
        try:
            return self.fs.get_file_info(path).type != pafs.FileType.NotFound
        except OSError as exc:
            raise LakeError(f"Cannot reach the lake at {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc

    def _write_bytes(self, path: str, payload: bytes) -> None:
        try:
            parent = path.rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)
            if self._local:
                tmp = f"{path}.tmp-{uuid.uuid4().hex}"
                with self.fs.open_output_stream(tmp) as out:
                    out.write(payload)
                self.fs.move(tmp, path)
            else:
                with self.fs.open_output_stream(path) as out:
                    out.write(payload)
        except OSError as exc:
            raise LakeError(f"Cannot write {path} in the lake {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc

    def _read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError as exc:
            raise LakeError(f"No object {path} in the lake {self.uri}.", hint="Run `spe data ingest` first.") from exc
        except OSError as exc:
            if "not exist" in str(exc).lower() or "NoSuchKey" in str(exc):
                raise LakeError(
                    f"No object {path} in the lake {self.uri}.", hint="Run `spe data ingest` first."
                ) from exc
            raise LakeError(f"Cannot read {path} from the lake {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc

    def _write_table(self, path: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self._write_bytes(path, sink.getvalue().to_pybytes())

    def _read_table(self, path: str) -> pa.Table:
        return pq.read_table(pa.BufferReader(self._read_bytes(path)))

    def exists(self, key: str) -> bool:
        """Whether ``key`` (relative to the root) holds an object or a folder."""
        return self._exists(self._path(key))

    def put_json(self, key: str, document: Any) -> str:
        """Write a JSON document under ``key`` (relative to the root) and return its URI."""
        self._write_bytes(self._path(key), json.dumps(document, indent=2, sort_keys=True, default=str).encode())
        return self.key_uri(key)

    def get_json(self, key: str) -> Any:
        """Read the JSON document at ``key``."""
        return json.loads(self._read_bytes(self._path(key)))

    def key_uri(self, key: str) -> str:
        """The full URI of a key, for references passed between tasks."""
        return f"{self.uri.rstrip('/')}/{key}"

    # ------------------------------------------------------------------ prices
    def _prices_dir(self, source: str, zone: Zone, interval: str) -> str:
        if zone not in ZONES:
            raise LakeError(f"Unknown lake zone {zone!r}.", hint=f"Use one of {ZONES}.")
        dataset = "prices" if interval == "1d" else f"prices_{interval}"
        return self._path(zone, dataset, f"source={source}")

    def write_bars(self, bars: pd.DataFrame, source: str, *, zone: Zone, interval: str = "1d") -> UpsertResult:
        """Upsert canonical bars for one source: new (symbol, date) rows are added, existing ones replaced.

        Writing the same bars twice changes nothing (the second result counts them all as unchanged).
        """
        bars = conform_bars(bars)
        if bars.empty:
            return UpsertResult(0, 0, 0, 0)
        if bars.duplicated(["symbol", "date"]).any():
            raise LakeError(
                f"{int(bars.duplicated(['symbol', 'date']).sum())} duplicate (symbol, date) rows in the write.",
                hint="Validate the bars (duplicates are an error) before writing them.",
            )
        new_rows = updated = unchanged = written = 0
        for year, chunk in bars.groupby(bars["date"].dt.year, sort=True):
            path = f"{self._prices_dir(source, zone, interval)}/year={int(year)}/{_PART}"
            if self._exists(path):
                existing = self._read_table(path).to_pandas()
                merged = existing.merge(
                    chunk, on=["symbol", "date"], how="outer", suffixes=("_old", ""), indicator=True
                )
                is_new = merged["_merge"] == "right_only"
                both = merged["_merge"] == "both"
                value_cols = [c for c in BAR_COLUMNS if c not in ("symbol", "date")]
                same = pd.Series(True, index=merged.index)
                for col in value_cols:
                    a, b = merged[col], merged[f"{col}_old"]
                    same &= (a == b) | (a.isna() & b.isna())
                new_rows += int(is_new.sum())
                updated += int((both & ~same).sum())
                unchanged += int((both & same).sum())
                if not (is_new.any() or (both & ~same).any()):
                    continue
                keep_old = merged["_merge"] == "left_only"
                for col in value_cols:
                    merged.loc[keep_old, col] = merged.loc[keep_old, f"{col}_old"]
                out = merged[list(BAR_COLUMNS)]
            else:
                new_rows += len(chunk)
                out = chunk
            out = out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
            self._write_table(path, pa.Table.from_pandas(out, schema=BAR_SCHEMA, preserve_index=False))
            written += 1
        result = UpsertResult(new_rows, updated, unchanged, written)
        logger.info("lake upsert", extra={"source": source, "zone": zone, **result.to_dict()})
        return result

    def _bars_dataset(self, source: str, zone: Zone, interval: str) -> ds.Dataset | None:
        directory = self._prices_dir(source, zone, interval)
        if not self._exists(directory):
            return None
        partitioning = ds.partitioning(pa.schema([("year", pa.int32())]), flavor="hive")
        return ds.dataset(
            directory,
            filesystem=self.fs,
            format="parquet",
            partitioning=partitioning,
            schema=BAR_SCHEMA.append(pa.field("year", pa.int32())),
        )

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
        """Read canonical bars, pruning year partitions and pushing symbol/date filters into the scan.

        Raises
        ------
        EmptyDataError
            If the source has nothing in the lake, or nothing matches the filters.
        """
        dataset = self._bars_dataset(source, zone, interval)
        if dataset is None:
            raise EmptyDataError(
                f"The lake {self.uri} has no {zone} prices from source '{source}'.",
                hint="Run `spe data ingest` (raw) and `spe data validate` (curated) first.",
            )
        expr = _scan_filter(symbols, start, end)
        try:
            table = dataset.to_table(columns=list(BAR_COLUMNS), filter=expr)
        except OSError as exc:
            raise LakeError(f"Cannot scan prices in {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc
        frame = table.to_pandas()
        if frame.empty:
            raise EmptyDataError(
                f"No bars from '{source}' match symbols={list(symbols) if symbols else 'all'} start={start} end={end}.",
                hint="Check `spe data show` for what the lake holds.",
            )
        frame["symbol"] = frame["symbol"].astype("string")
        return frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)

    def inventory(self, source: str, *, zone: Zone = "curated", interval: str = "1d") -> list[Coverage]:
        """Per symbol, sorted: first date, last date and row count (reads only the symbol and date columns)."""
        dataset = self._bars_dataset(source, zone, interval)
        if dataset is None:
            return []
        table = dataset.to_table(columns=["symbol", "date"])
        grouped = table.group_by("symbol").aggregate([("date", "min"), ("date", "max"), ("date", "count")])
        return sorted(
            Coverage(str(symbol), pd.Timestamp(first).date(), pd.Timestamp(last).date(), int(rows))
            for symbol, first, last, rows in zip(
                *(grouped.column(c).to_pylist() for c in ("symbol", "date_min", "date_max", "date_count")), strict=True
            )
        )

    def sources(self, *, zone: Zone = "curated") -> list[str]:
        """Sources that have prices in a zone of the lake."""
        directory = self._path(zone, "prices")
        if not self._exists(directory):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(directory))
        return sorted(
            i.base_name.split("=", 1)[1] for i in infos if i.type == pafs.FileType.Directory and "=" in i.base_name
        )

    # ------------------------------------------------------------------ features
    def write_features(self, features: pd.DataFrame, version: str, spec: dict[str, Any]) -> str:
        """Write a whole feature set under its version (replacing any earlier copy) and return its key."""
        base = ("features", f"version={version}")
        directory = self._path(*base)
        if self._exists(directory):
            self.fs.delete_dir_contents(directory, missing_dir_ok=True)
        frame = features.copy()
        frame["symbol"] = frame["symbol"].astype(str)
        for year, chunk in frame.groupby(frame["date"].dt.year, sort=True):
            table = pa.Table.from_pandas(chunk.reset_index(drop=True), preserve_index=False)
            self._write_table(self._path(*base, f"year={int(year)}", _PART), table)
        self.put_json("/".join([*base, "_spec.json"]), {"version": version, "spec": spec, "rows": len(frame)})
        return "/".join(base)

    def read_features(
        self,
        version: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Read a stored feature set with the same pruning and pushdown as ``read_bars``."""
        directory = self._path("features", f"version={version}")
        if not self._exists(directory):
            raise EmptyDataError(
                f"No feature set version {version} in {self.uri}.", hint="Run `spe run` or the BuildFeatures step."
            )
        dataset = ds.dataset(
            directory, filesystem=self.fs, format="parquet", partitioning="hive", exclude_invalid_files=True
        )
        expr = _scan_filter(symbols, start, end)
        cols = None if columns is None else ["date", "symbol", *[c for c in columns if c not in ("date", "symbol")]]
        frame = dataset.to_table(columns=cols, filter=expr).to_pandas()
        if "year" in frame.columns:
            frame = frame.drop(columns="year")
        return frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)

    def feature_versions(self) -> list[str]:
        directory = self._path("features")
        if not self._exists(directory):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(directory))
        return sorted(i.base_name.split("=", 1)[1] for i in infos if i.base_name.startswith("version="))

    # ------------------------------------------------------------------ reference tables
    def write_reference(self, name: str, frame: pd.DataFrame) -> str:
        """Write a reference table (index kept) as ``reference/<name>.parquet``."""
        key = f"reference/{name}.parquet"
        self._write_table(self._path(key), pa.Table.from_pandas(frame, preserve_index=True))
        return key

    def read_reference(self, name: str) -> pd.DataFrame:
        return self._read_table(self._path(f"reference/{name}.parquet")).to_pandas()


def _scan_filter(
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
        te = pd.Timestamp(end)
        terms += [pc.field("year") <= te.year, pc.field("date") <= pa.scalar(te.to_pydatetime(), pa.timestamp("ns"))]
    expr = None
    for term in terms:
        expr = term if expr is None else expr & term
    return expr


def empty_bar_table() -> pa.Table:
    return pa.Table.from_pandas(empty_bars(), schema=BAR_SCHEMA, preserve_index=False)


def _reach_hint(uri: str) -> str:
    if uri.startswith("s3://"):
        return "Check the bucket exists, credentials, and AWS_ENDPOINT_URL when using moto or LocalStack."
    return "Check the folder exists and is writable (SPE_DATA_DIR / SPE_LAKE_URI)."
