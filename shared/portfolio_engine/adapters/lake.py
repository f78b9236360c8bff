"""The Parquet lake: one adapter for a local folder and for ``s3://``, through pyarrow's filesystems.

Layout under the lake root::

    raw/prices/source=<source>/year=<YYYY>/part-0.parquet      daily bars as the source gave them
    curated/prices/source=<source>/year=<YYYY>/part-0.parquet  daily bars that passed validation (what is used)
    <zone>/prices_<interval>/source=...                        intraday bars (``prices_5m``), same layout
    features/version=<spec>/dataset=<data>/year=<YYYY>/... a feature set: definition x (source, interval, universe)
    features/version=<spec>/dataset=<data>/_manifest.json  written last: the set is complete and what it holds
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
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from portfolio_engine.data.schema import BAR_COLUMNS, conform_bars
from portfolio_engine.exceptions import EmptyDataError, LakeError
from portfolio_engine.ports import Coverage, UpsertResult, Zone

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
_MANIFEST = "_manifest.json"
ZONES: tuple[str, ...] = ("raw", "curated")


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
                # A leading dot keeps a crash's leftover out of every dataset scan (pyarrow skips it).
                name = path.rsplit("/", 1)[1]
                tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex}"
                with self.fs.open_output_stream(tmp, compression=None) as out:
                    out.write(payload)
                self.fs.move(tmp, path)
            else:
                with self.fs.open_output_stream(path, compression=None) as out:
                    out.write(payload)
        except OSError as exc:
            raise LakeError(f"Cannot write {path} in the lake {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc

    def _read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path, compression=None) as stream:
                return bytes(stream.read())
        except FileNotFoundError as exc:  # pyarrow's answer to a missing key, locally and on S3
            raise LakeError(f"No object {path} in the lake {self.uri}.", hint="Run `spe data ingest` first.") from exc
        except OSError as exc:
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

    def put_bytes(self, key: str, payload: bytes) -> str:
        """Write an object (a model artefact, a report) under ``key`` atomically and return its URI."""
        self._write_bytes(self._path(key), payload)
        return self.key_uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read the object at ``key``."""
        return self._read_bytes(self._path(key))

    def key_uri(self, key: str) -> str:
        """The full URI of a key, for references passed between tasks."""
        return f"{self.uri.rstrip('/')}/{key}"

    # ------------------------------------------------------------------ prices
    def _prices_dir(self, source: str, zone: Zone, interval: str) -> str:
        if zone not in ZONES:
            raise LakeError(f"Unknown lake zone {zone!r}.", hint=f"Use one of {ZONES}.")
        dataset = "prices" if interval == "1d" else f"prices_{interval}"
        return self._path(zone, dataset, f"source={source}")

    def write_bars(
        self,
        bars: pd.DataFrame,
        source: str,
        *,
        zone: Zone,
        interval: str = "1d",
        replace: Collection[str] = (),
    ) -> UpsertResult:
        """Write canonical bars for one source.

        By default an upsert: new (symbol, date) rows are added and existing ones replaced; writing
        the same bars twice changes nothing (the second result counts them all as unchanged). The
        bars are the complete history of the symbols in ``replace``: their rows that the write does
        not contain are deleted, a symbol with no bar in the write included (validation writes the
        curated zone this way, so dropped rows and quarantined symbols do not linger).

        Raises
        ------
        LakeError
            On duplicate (symbol, date) rows in the write, or when the lake cannot be written.
        """
        bars = conform_bars(bars)
        if bars.duplicated(["symbol", "date"]).any():
            raise LakeError(
                f"{int(bars.duplicated(['symbol', 'date']).sum())} duplicate (symbol, date) rows in the write.",
                hint="Validate the bars (duplicates are an error) before writing them.",
            )
        directory = self._prices_dir(source, zone, interval)
        chunks = {int(year): chunk for year, chunk in bars.groupby(bars["date"].dt.year, sort=True)}
        replaced = set(replace)
        years = set(chunks) | (set(self._partition_years(directory)) if replaced else set())
        counts = dict.fromkeys(("new", "updated", "unchanged", "deleted", "written"), 0)
        for year in sorted(years):
            path = f"{directory}/year={year}/{_PART}"
            chunk = chunks.get(year, bars.iloc[:0])
            existing = self._read_table(path).to_pandas() if self._exists(path) else None
            out = _merge_partition(existing, chunk, replaced, counts)
            if out is None:
                continue
            self._write_table(path, pa.Table.from_pandas(out, schema=BAR_SCHEMA, preserve_index=False))
            counts["written"] += 1
        result = UpsertResult(
            counts["new"], counts["updated"], counts["unchanged"], counts["written"], rows_deleted=counts["deleted"]
        )
        logger.info("lake write", extra={"source": source, "zone": zone, **result.to_dict()})
        return result

    def _partition_years(self, directory: str) -> list[int]:
        if not self._exists(directory):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(directory))
        return [int(i.base_name.split("=", 1)[1]) for i in infos if i.base_name.startswith("year=")]

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
    def write_features(self, features: pd.DataFrame, key: str, manifest: dict[str, Any]) -> str:
        """Write a whole feature set at ``key`` (under ``features/``), replacing any earlier copy.

        The manifest is removed first and written last: a reader that finds it finds a complete set.
        """
        base = f"features/{key}"
        directory = self._path(base)
        if self._exists(directory):
            if self.exists(f"{base}/{_MANIFEST}"):
                self.fs.delete_file(self._path(base, _MANIFEST))
            self.fs.delete_dir_contents(directory, missing_dir_ok=True)
        frame = features.copy()
        frame["symbol"] = frame["symbol"].astype(str)
        for year, chunk in frame.groupby(frame["date"].dt.year, sort=True):
            table = pa.Table.from_pandas(chunk.reset_index(drop=True), preserve_index=False)
            self._write_table(self._path(base, f"year={int(year)}", _PART), table)
        self.put_json(f"{base}/{_MANIFEST}", manifest)
        return base

    def feature_manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of the complete feature set at ``key``, or None if there is none."""
        path = f"features/{key}/{_MANIFEST}"
        return self.get_json(path) if self.exists(path) else None

    def read_features(
        self,
        key: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Read a stored feature set with the same pruning and pushdown as ``read_bars``.

        Raises
        ------
        EmptyDataError
            If there is no complete feature set at ``key`` (no manifest: missing or being written).
        """
        if self.feature_manifest(key) is None:
            raise EmptyDataError(
                f"No complete feature set at features/{key} in {self.uri}.",
                hint="Run `spe run` (BuildFeatures) first; `spe data show` lists the stored sets.",
            )
        partitioning = ds.partitioning(pa.schema([("year", pa.int32())]), flavor="hive")
        dataset = ds.dataset(
            self._path("features", key), filesystem=self.fs, format="parquet", partitioning=partitioning
        )
        cols = None if columns is None else ["date", "symbol", *[c for c in columns if c not in ("date", "symbol")]]
        frame = dataset.to_table(columns=cols, filter=_scan_filter(symbols, start, end)).to_pandas()
        if "year" in frame.columns:
            frame = frame.drop(columns="year")
        return frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)

    def feature_sets(self) -> list[str]:
        """Keys of the complete feature sets in the lake (``version=<v>/dataset=<d>``)."""
        root = self._path("features")
        if not self._exists(root):
            return []
        selector = pafs.FileSelector(root, recursive=True)
        suffix = f"/{_MANIFEST}"
        return sorted(
            i.path[len(root) + 1 : -len(suffix)] for i in self.fs.get_file_info(selector) if i.path.endswith(suffix)
        )

    # ------------------------------------------------------------------ reference tables
    def write_reference(self, name: str, frame: pd.DataFrame) -> str:
        """Write a reference table (index kept) as ``reference/<name>.parquet``."""
        key = f"reference/{name}.parquet"
        self._write_table(self._path(key), pa.Table.from_pandas(frame, preserve_index=True))
        return key

    def read_reference(self, name: str) -> pd.DataFrame:
        return self._read_table(self._path(f"reference/{name}.parquet")).to_pandas()


def _merge_partition(
    existing: pd.DataFrame | None, chunk: pd.DataFrame, replaced: set[str], counts: dict[str, int]
) -> pd.DataFrame | None:
    """Merge new bars into one partition's rows; None when the partition would not change.

    Rows of ``replaced`` symbols absent from ``chunk`` are deleted; ``counts`` is updated in place.
    """
    if existing is None:
        counts["new"] += len(chunk)
        return chunk.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True) if len(chunk) else None
    merged = existing.merge(chunk, on=["symbol", "date"], how="outer", suffixes=("_old", ""), indicator=True)
    value_cols = [c for c in BAR_COLUMNS if c not in ("symbol", "date")]
    same = pd.Series(True, index=merged.index)
    for col in value_cols:
        a, b = merged[col], merged[f"{col}_old"]
        same &= (a == b) | (a.isna() & b.isna())
    is_new, both, old_only = (merged["_merge"] == k for k in ("right_only", "both", "left_only"))
    dropped = old_only & merged["symbol"].astype(str).isin(replaced)
    counts["new"] += int(is_new.sum())
    counts["updated"] += int((both & ~same).sum())
    counts["unchanged"] += int((both & same).sum())
    counts["deleted"] += int(dropped.sum())
    if not (is_new.any() or (both & ~same).any() or dropped.any()):
        return None
    keep = old_only & ~dropped
    for col in value_cols:
        merged.loc[keep, col] = merged.loc[keep, f"{col}_old"]
    out = merged.loc[~dropped, list(BAR_COLUMNS)]
    return out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


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
        # ``end`` is a day: every bar of that day is in, intraday ones included.
        te = pd.Timestamp(end).normalize()
        after = (te + pd.Timedelta(days=1)).to_pydatetime()
        terms += [pc.field("year") <= te.year, pc.field("date") < pa.scalar(after, pa.timestamp("ns"))]
    expr = None
    for term in terms:
        expr = term if expr is None else expr & term
    return expr


def _reach_hint(uri: str) -> str:
    if uri.startswith("s3://"):
        return "Check the bucket exists, credentials, and AWS_ENDPOINT_URL when using moto or LocalStack."
    return "Check the folder exists and is writable (SPE_DATA_DIR / SPE_LAKE_URI)."
