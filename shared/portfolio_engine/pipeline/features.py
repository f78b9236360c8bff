"""BuildFeatures: curated bars -> a versioned feature set in the lake."""

from __future__ import annotations

import logging

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.contracts import FeaturesInput, FeaturesOutput
from portfolio_engine.features import FeatureSpec, compute_features

logger = logging.getLogger(__name__)


def build_features(task: FeaturesInput, *, lake: ParquetLake, spec: FeatureSpec) -> FeaturesOutput:
    """Compute the feature set ``spec`` on the curated bars of ``task.symbols`` and store it.

    The set lands under ``features/version=<spec.version>``: the same definition on the same data
    always lands in the same place.

    Raises
    ------
    EmptyDataError
        If the curated zone holds none of the symbols.
    """
    bars = lake.read_bars(task.source, task.symbols, zone="curated", interval=task.interval)
    index = task.index_symbol if task.index_symbol in set(bars["symbol"].astype(str)) else None
    if task.index_symbol and index is None:
        logger.warning("index %s not among curated symbols: no beta/correlation features", task.index_symbol)
    spec = spec.model_copy(update={"index_symbol": index})
    features = compute_features(bars, spec)
    key = lake.write_features(features, spec.version, spec.model_dump(mode="json"))
    columns = [c for c in features.columns if c not in ("date", "symbol")]
    return FeaturesOutput(
        run_id=task.run_id,
        feature_version=spec.version,
        feature_key=key,
        symbols=sorted(set(features["symbol"].astype(str))),
        columns=columns,
        rows=len(features),
        first_date=features["date"].min().date(),
        last_date=features["date"].max().date(),
    )
