"""The Parquet lake: one adapter for a local folder and for ``s3://``, through pyarrow's filesystems.

Layout under the lake root::

    raw/prices/source=<source>/year=<YYYY>/part-0.parquet      daily bars as the source gave them: the current
                                                               value of each (symbol, date), with the ingest
                                                               that wrote it (``ingest_id``, ``ingested_at``)
    raw/history/prices/source=<source>/year=<YYYY>/<ingest>.parquet  earlier values the ingest superseded
    curated/prices/source=<source>/year=<YYYY>/part-0.parquet  daily bars that passed validation (what is used)
    <zone>/prices_<interval>/source=...                        intraday bars (``prices_5m``), same layout
    quarantine/prices/source=<source>/<ingest>.parquet         bars an ingest refused to store (see ingest)
    features/version=<spec>/dataset=<data>/year=<YYYY>/... a feature set: definition x (source, interval, universe)
    features/version=<spec>/dataset=<data>/_manifest.json  written last: the set is complete and what it holds
    reference/<name>.parquet                               reference tables (factors, yield curve)
    reports/<kind>/<id>.json                               ingest and validation reports, run summaries

Ingest writes the raw zone; validation reads it and writes the curated zone, so bad data is kept
for inspection but never used. The raw zone is history: a write that changes or deletes a stored
(symbol, date) first appends the earlier version to ``raw/history`` (``raw_history`` reads every
version); a write that changes nothing writes nothing. The curated zone holds only what is in force.
Hive partitions let a range or universe read prune files (``year``) and push filters into the scan
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
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from portfolio_engine.adapters.lake_partitions import (
    BAR_SCHEMA,
    HISTORY_SCHEMA,
    RAW_SCHEMA,
    VERSION_COLUMNS,
    Stamp,
    dataset_name,
    merge_partition,
    safe_name,
    scan_filter,
)
from portfolio_engine.data.schema import BAR_COLUMNS, conform_bars
from portfolio_engine.exceptions import EmptyDataError, LakeError
from portfolio_engine.ports import Coverage, UpsertResult, Zone

logger = logging.getLogger(__name__)

_PART = "part-0.parquet"
_MANIFEST = "_manifest.json"
ZONES: tuple[str, ...] = ("raw", "curated")
_YEAR = pa.schema([("year", pa.int32())])


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
        return self._path(zone, dataset_name(interval), f"source={source}")

    def _history_dir(self, source: str, interval: str) -> str:
        return self._path("raw", "history", dataset_name(interval), f"source={source}")

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
        """Write canonical bars for one source.

        By default an upsert: new (symbol, date) rows are added and existing ones replaced; writing
        the same bars twice changes nothing (the second result counts them all as unchanged, and no
        file is written). The bars are the complete history of the symbols in ``replace``: their rows
        that the write does not contain are deleted, a symbol with no bar in the write included
        (validation writes the curated zone this way, so dropped rows and quarantined symbols do not
        linger).

        In the raw zone nothing is lost: each bar carries the ``ingest_id`` and ``ingested_at`` of
        the write that stored its value, and the earlier version of a bar this write changes or
        deletes is first appended to ``raw/history/`` (``rows_superseded``; read it with
        ``raw_history``). The curated zone keeps only what is in force.

        Parameters
        ----------
        ingest_id : str, optional
            The raw versions' ingest id (ingest passes its run id, so a retried run rewrites the same
            history object); a fresh timestamped id by default. Ignored for the curated zone.

        Raises
        ------
        LakeError
            On duplicate (symbol, date) rows or rows without a date or symbol in the write, or when the
            lake cannot be written.
        """
        bars = conform_bars(bars)
        keyless = bars["date"].isna() | bars["symbol"].isna()
        if keyless.any():
            raise LakeError(
                f"{int(keyless.sum())} row(s) without a date or symbol in the write.",
                hint="Drop (and report) rows without a date or symbol before writing bars.",
            )
        if bars.duplicated(["symbol", "date"]).any():
            raise LakeError(
                f"{int(bars.duplicated(['symbol', 'date']).sum())} duplicate (symbol, date) rows in the write.",
                hint="Validate the bars (duplicates are an error) before writing them.",
            )
        directory = self._prices_dir(source, zone, interval)
        stamp = Stamp.new(ingest_id) if zone == "raw" else None
        schema = RAW_SCHEMA if stamp is not None else BAR_SCHEMA
        chunks = {int(year): chunk for year, chunk in bars.groupby(bars["date"].dt.year, sort=True)}
        replaced = set(replace)
        years = set(chunks) | (set(self._partition_years(directory)) if replaced else set())
        counts = dict.fromkeys(("new", "updated", "unchanged", "deleted", "superseded", "written"), 0)
        for year in sorted(years):
            path = f"{directory}/year={year}/{_PART}"
            chunk = chunks.get(year, bars.iloc[:0])
            existing = self._read_table(path).to_pandas() if self._exists(path) else None
            merged = merge_partition(existing, chunk, replaced, counts, stamp)
            if merged is None:
                continue
            out, superseded = merged
            if stamp is not None and len(superseded):
                # History first: a crash between the two writes leaves the old value in both places, never in none.
                self._append_history(superseded, source, interval, year, stamp.ingest_id)
                counts["superseded"] += len(superseded)
            self._write_table(path, pa.Table.from_pandas(out, schema=schema, preserve_index=False))
            counts["written"] += 1
        result = UpsertResult(
            counts["new"],
            counts["updated"],
            counts["unchanged"],
            counts["written"],
            rows_deleted=counts["deleted"],
            rows_superseded=counts["superseded"],
        )
        logger.info(
            "lake write",
            extra={"source": source, "zone": zone, "ingest_id": stamp and stamp.ingest_id, **result.to_dict()},
        )
        return result

    def _append_history(self, superseded: pd.DataFrame, source: str, interval: str, year: int, ingest_id: str) -> None:
        """Add superseded raw versions to the write's history object of one year (merged if a retry wrote it)."""
        path = f"{self._history_dir(source, interval)}/year={year}/{safe_name(ingest_id)}.parquet"
        if self._exists(path):
            earlier = self._read_table(path).to_pandas()
            superseded = pd.concat([earlier, superseded], ignore_index=True).drop_duplicates(
                ["symbol", "date", "ingest_id", "ingested_at"], keep="first"
            )
        self._write_table(path, pa.Table.from_pandas(superseded, schema=HISTORY_SCHEMA, preserve_index=False))

    def _partition_years(self, directory: str) -> list[int]:
        if not self._exists(directory):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(directory))
        return [int(i.base_name.split("=", 1)[1]) for i in infos if i.base_name.startswith("year=")]

    def _bars_dataset(self, source: str, zone: Zone, interval: str) -> ds.Dataset | None:
        directory = self._prices_dir(source, zone, interval)
        return self._year_dataset(directory, RAW_SCHEMA if zone == "raw" else BAR_SCHEMA)

    def _year_dataset(self, directory: str, schema: pa.Schema) -> ds.Dataset | None:
        if not self._exists(directory):
            return None
        # An explicit schema reads raw partitions written before version columns existed (as nulls).
        return ds.dataset(
            directory,
            filesystem=self.fs,
            format="parquet",
            partitioning=ds.partitioning(_YEAR, flavor="hive"),
            schema=schema.append(pa.field("year", pa.int32())),
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
        expr = scan_filter(symbols, start, end)
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

    def raw_history(
        self,
        source: str,
        symbols: Sequence[str] | None = None,
        start: date | pd.Timestamp | None = None,
        end: date | pd.Timestamp | None = None,
        *,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Every version of the raw bars that match: the superseded ones and the current one.

        Returns
        -------
        DataFrame of shape (n_versions, 13)
            The bar columns, ``ingest_id`` and ``ingested_at`` (the write that stored the value; null
            for bars written before versions were kept), ``superseded_by`` and ``superseded_at`` (the
            write that replaced or deleted it; null for the current version) and ``current``.
            Sorted by symbol, date, then oldest version first.

        Raises
        ------
        EmptyDataError
            If the raw zone has nothing of the source, or no version matches the filters.
        """
        expr = scan_filter(symbols, start, end)
        columns = [*BAR_COLUMNS, *VERSION_COLUMNS]
        frames = []
        try:
            current = self._bars_dataset(source, "raw", interval)
            if current is not None:
                table = current.to_table(columns=columns, filter=expr)
                for name in ("superseded_by", "superseded_at"):
                    table = table.append_column(
                        HISTORY_SCHEMA.field(name), pa.nulls(len(table), HISTORY_SCHEMA.field(name).type)
                    )
                frames.append(table)
            history = self._year_dataset(self._history_dir(source, interval), HISTORY_SCHEMA)
            if history is not None:
                frames.append(history.to_table(columns=list(HISTORY_SCHEMA.names), filter=expr))
        except OSError as exc:
            raise LakeError(f"Cannot scan raw prices in {self.uri}: {exc}", hint=_reach_hint(self.uri)) from exc
        frame = pa.concat_tables(frames).to_pandas() if frames else pd.DataFrame()
        if frame.empty:
            raise EmptyDataError(
                f"No raw bars from '{source}' match symbols={list(symbols) if symbols else 'all'} start={start} "
                f"end={end}.",
                hint="Run `spe data ingest` first; `spe data show --zone raw` lists what the raw zone holds.",
            )
        frame["symbol"] = frame["symbol"].astype("string")
        frame["current"] = frame["superseded_by"].isna()
        frame = frame.sort_values(["symbol", "date", "superseded_at"], kind="stable", na_position="last")
        return frame.reset_index(drop=True)

    def write_quarantine(self, rows: pd.DataFrame, source: str, *, ingest_id: str, interval: str = "1d") -> str:
        """Keep the bars an ingest refused to store, as ``quarantine/<prices>/source=<s>/<ingest_id>.parquet``.

        ``rows`` are kept as given (bars plus the reason and the stored values they would have
        replaced). Returns the object's key.
        """
        key = f"quarantine/{dataset_name(interval)}/source={source}/{safe_name(ingest_id)}.parquet"
        self._write_table(self._path(key), pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False))
        return key

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
        frame = dataset.to_table(columns=cols, filter=scan_filter(symbols, start, end)).to_pandas()
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


def _reach_hint(uri: str) -> str:
    if uri.startswith("s3://"):
        return "Check the bucket exists, credentials, and AWS_ENDPOINT_URL when using moto or LocalStack."
    return "Check the folder exists and is writable (SPE_DATA_DIR / SPE_LAKE_URI)."
