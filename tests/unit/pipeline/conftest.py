"""A small real world for the pipeline's later steps: curated prices, a feature set, a trained regime model."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import (
    BundledSource,
    load_ff3_monthly,
    load_sectors,
    load_treasury_curve,
)
from portfolio_engine.adapters.model_registry import StoreModelRegistry
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.adapters.training_job import LocalTrainingJob
from portfolio_engine.contracts import DetectRegimeInput
from portfolio_engine.features import DEFAULT_FEATURE_SPEC, compute_features
from portfolio_engine.pipeline.champion import commit_training
from portfolio_engine.pipeline.features import feature_set_key
from portfolio_engine.pipeline.regime import detect_regime
from portfolio_engine.regime.definition import RegimeModelSpec

STOCKS = ["JNJ", "KO", "PG", "XOM", "MSFT"]
SYMBOLS = [*STOCKS, "^GSPC"]
SMALL_MODEL = RegimeModelSpec(n_restarts=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Curated prices, a feature set and a trained regime model, 2000-2022, built once for the module."""
    root = tmp_path_factory.mktemp("opt")
    lake = ParquetLake(str(root / "lake"))
    bars = BundledSource().fetch(SYMBOLS, start=date(2000, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    lake.write_reference("ff3_monthly", load_ff3_monthly())
    lake.write_reference("treasury_curve", load_treasury_curve())
    lake.write_reference("sectors", pd.DataFrame(sorted(load_sectors().items()), columns=["symbol", "sector"]))
    spec = DEFAULT_FEATURE_SPEC.model_copy(update={"index_symbol": "^GSPC"})
    key = feature_set_key(spec, "bundled", "1d", SYMBOLS)
    lake.write_features(compute_features(bars, spec), key, {"version": spec.version, "symbols": SYMBOLS})
    store = SqliteStore(root / "store.db")
    registry = StoreModelRegistry(lake, store)
    regime = detect_regime(
        DetectRegimeInput(run_id="r0", feature_key=f"features/{key}", model=SMALL_MODEL),
        lake=lake,
        registry=registry,
        jobs=LocalTrainingJob(in_process=True),
    )
    # The first model a run trains is promoted when the run commits: record that here.
    assert regime.proposal is not None
    commit_training(store, registry, regime.proposal)
    return {"lake": lake, "registry": registry, "store": store, "feature_key": f"features/{key}", "regime": regime}
