"""BuildFeatures: curated bars -> a versioned feature set in the lake."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import date

import pandas as pd

from portfolio_engine.contracts import FeaturesInput, FeaturesOutput
from portfolio_engine.features import FeatureSpec, compute_features
from portfolio_engine.ports import Lake

logger = logging.getLogger(__name__)


def feature_set_key(spec: FeatureSpec, source: str, interval: str, symbols: Sequence[str]) -> str:
    """Where a feature set lives: its definition's version, then a fingerprint of the data it covers.

    Cross-sectional features depend on the universe, so two universes never share a set.
    """
    data = {"source": source, "interval": interval, "symbols": sorted(symbols), "index": spec.index_symbol}
    fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return f"version={spec.version}/dataset={fingerprint}"


def bars_fingerprint(bars: pd.DataFrame) -> str:
    """A digest of every value of a bar table, to tell whether its features need recomputing."""
    hashed = pd.util.hash_pandas_object(bars.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def build_features(task: FeaturesInput, *, lake: Lake, spec: FeatureSpec) -> FeaturesOutput:
    """Compute the feature set ``spec`` on the curated bars of ``task.symbols`` and store it.

    The same definition on the same universe always lands at the same key; when the bars are the
    ones the stored set was computed from, nothing is recomputed or rewritten.

    Raises
    ------
    EmptyDataError
        If the curated zone holds none of the symbols.
    FeatureError
        If the bars cannot carry the features (see ``compute_features``).
    """
    bars = lake.read_bars(task.source, task.symbols, zone="curated", interval=task.interval)
    present = sorted(set(bars["symbol"].astype(str)))
    index = task.index_symbol if task.index_symbol in present else None
    if task.index_symbol and index is None:
        logger.warning("index %s is not among the curated symbols: no beta/correlation features", task.index_symbol)
    spec = spec.model_copy(update={"index_symbol": index})
    key = feature_set_key(spec, task.source, task.interval, present)
    fingerprint = bars_fingerprint(bars)
    manifest = lake.feature_manifest(key)
    if manifest is None or manifest.get("bars_fingerprint") != fingerprint:
        features = compute_features(bars, spec)
        manifest = {
            "version": spec.version,
            "spec": spec.model_dump(mode="json"),
            "source": task.source,
            "interval": task.interval,
            "symbols": present,
            "index_symbol": index,
            "bars_fingerprint": fingerprint,
            "columns": [c for c in features.columns if c not in ("date", "symbol")],
            "rows": len(features),
            "first_date": str(features["date"].min().date()),
            "last_date": str(features["date"].max().date()),
        }
        lake.write_features(features, key, manifest)
    else:
        logger.info("feature set %s is up to date with the bars", key)
    return FeaturesOutput(
        run_id=task.run_id,
        feature_version=spec.version,
        feature_key=f"features/{key}",
        symbols=present,
        index_symbol=index,
        columns=manifest["columns"],
        rows=manifest["rows"],
        first_date=date.fromisoformat(manifest["first_date"]),
        last_date=date.fromisoformat(manifest["last_date"]),
    )
