"""Portfolios in the store: a spec validated completely when saved, every change an event, reads change nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.adapters.market_data.bundled import BundledSource
from portfolio_engine.adapters.store.sqlite import SqliteStore
from portfolio_engine.exceptions import (
    ConcurrencyError,
    InvalidTransitionError,
    RecordNotFoundError,
    SpecificationError,
)
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.pipeline.portfolios import (
    archive_portfolio,
    get_portfolio,
    portfolio_events,
    reset_holdings,
    restore_portfolio,
    save_portfolio,
)
from portfolio_engine.records.events import NewEvent, portfolio_stream

CORE = {"name": "core", "universe": ["AAPL", "MSFT", "KO"], "method": "min_variance", "limits": {"max_weight": 0.5}}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> ParquetLake:
    lake = ParquetLake(str(tmp_path_factory.mktemp("portfolios") / "lake"))
    bars = BundledSource().fetch(["AAPL", "MSFT", "KO"], start=date(2022, 1, 1), end=date(2022, 12, 28))
    lake.write_bars(bars, "bundled", zone="curated")
    return lake


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "store.db")


def test_saving_a_new_spec_creates_the_portfolio_and_saving_it_again_changes_nothing(
    store: SqliteStore, lake: ParquetLake
) -> None:
    spec = PortfolioSpec.from_dict(CORE)
    view, changed = save_portfolio(store, spec, lake=lake, registry=None)
    assert changed and view.spec_version == 1 and view.spec == spec.to_dict() and view.holdings is None
    again, changed_again = save_portfolio(store, spec, lake=lake, registry=None)
    assert not changed_again and again == view and store.stream_version(portfolio_stream("core")) == 1


def test_a_changed_spec_is_a_new_version_and_a_stale_editor_is_refused(store: SqliteStore, lake: ParquetLake) -> None:
    save_portfolio(store, PortfolioSpec.from_dict(CORE), lake=lake, registry=None)
    changed = PortfolioSpec.from_dict({**CORE, "method": "max_sharpe"})
    view, _ = save_portfolio(store, changed, lake=lake, registry=None, expected_spec_version=1)
    assert view.spec_version == 2 and view.spec["method"] == "max_sharpe"
    with pytest.raises(ConcurrencyError):  # another editor who read version 1
        save_portfolio(store, PortfolioSpec.from_dict(CORE), lake=lake, registry=None, expected_spec_version=1)
    assert get_portfolio(store, "core").spec["method"] == "max_sharpe"
    assert [e.type for e in portfolio_events(store, "core")] == ["PortfolioCreated", "SpecChanged"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({**CORE, "limits": {"max_wieght": 0.5}}, "max_wieght"),  # a misspelled limit name
        ({**CORE, "universe": ["AAPL", "MSFT", "MTUM"]}, "MTUM"),  # a symbol the lake does not hold
    ],
    ids=["limit-name", "universe"],
)
def test_a_spec_that_a_run_would_trip_on_is_refused_when_saved(
    store: SqliteStore, lake: ParquetLake, spec: dict, match: str
) -> None:
    with pytest.raises(SpecificationError, match=match):
        save_portfolio(store, PortfolioSpec.from_dict(spec), lake=lake, registry=None)
    assert store.view("portfolio", "core") is None


def test_reset_forgets_the_holdings_but_the_log_keeps_them(store: SqliteStore, lake: ParquetLake) -> None:
    save_portfolio(store, PortfolioSpec.from_dict(CORE), lake=lake, registry=None)
    stream = portfolio_stream("core")
    holdings = {"weights": {"KO": 1.0}, "as_of": "2022-12-28", "regime": "calm"}
    store.append(
        stream,
        [
            NewEvent(type="RunStarted", run_id="run-1", data={}),
            NewEvent(type="RunCommitted", run_id="run-1", data={"holdings_moved": True, "holdings": holdings}),
        ],
        expected_version=1,
    )
    view, before = reset_holdings(store, "core", reason="new mandate")
    assert view.holdings is None and before is not None and before["weights"] == {"KO": 1.0}
    reset = portfolio_events(store, "core")[-1]
    assert reset.type == "HoldingsReset" and reset.data["previous"]["weights"] == {"KO": 1.0}


def test_an_archived_portfolio_keeps_its_spec_until_restored(store: SqliteStore, lake: ParquetLake) -> None:
    save_portfolio(store, PortfolioSpec.from_dict(CORE), lake=lake, registry=None)
    assert archive_portfolio(store, "core").status == "archived"
    with pytest.raises(InvalidTransitionError, match="archived"):
        save_portfolio(store, PortfolioSpec.from_dict({**CORE, "method": "max_sharpe"}), lake=lake, registry=None)
    with pytest.raises(InvalidTransitionError):
        archive_portfolio(store, "core")
    assert restore_portfolio(store, "core").status == "active"


def test_an_unknown_portfolio_is_a_typed_error_naming_the_known_ones(store: SqliteStore, lake: ParquetLake) -> None:
    save_portfolio(store, PortfolioSpec.from_dict(CORE), lake=lake, registry=None)
    with pytest.raises(RecordNotFoundError, match="'nope'") as info:
        get_portfolio(store, "nope")
    assert "core" in (info.value.hint or "")
