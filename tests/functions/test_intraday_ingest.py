"""The intraday schedule: ``ingest_prices`` and ``validate_prices`` on Yahoo 5-minute bars, end to end.

The handlers run in-process (``InProcessLambda``) with the real settings, factory, lake and yfinance
code; only curl_cffi's transport is replaced, by a recorder that answers Yahoo's v8 chart API from
one recording of two AAPL sessions, Friday 8 and Monday 11 March 2024 (the US switched to daylight
time in between, so the sessions open at 14:30 and 13:30 UTC). Like Yahoo, it answers a history
request with the recorded bars between ``period1`` and ``period2`` that had closed by the recorder's
``now``; moving ``now`` past Monday's close is what "a later invocation" means here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from portfolio_engine.adapters import sources
from portfolio_engine.adapters.lake import ParquetLake
from portfolio_engine.local.runner import InProcessLambda
from portfolio_engine.pipeline.ingest import OVERLAP_DAYS
from tests.unit.adapters.market_data.conftest import (
    Answer,
    Call,
    YahooRecorder,
    load_fixture,
    refuse_network,
    serving_yahoo,
)

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

RECORDING = "yahoo_chart_AAPL_5m_2024-03-08_2024-03-11.json"
TZ_PROBE = "yahoo_chart_AAPL_range_1d.json"
NEW_YORK = "America/New_York"
FRIDAY, MONDAY = date(2024, 3, 8), date(2024, 3, 11)
AFTER_FRIDAY_CLOSE = pd.Timestamp("2024-03-08 17:00", tz=NEW_YORK)
AFTER_MONDAY_CLOSE = pd.Timestamp("2024-03-11 17:00", tz=NEW_YORK)
BARS_PER_SESSION = 78  # 09:30 .. 15:55 New York, every 5 minutes

# An EventBridge schedule polling through "now" (no end): its input never changes between invocations.
POLL = {"request": {"source": "yahoo", "symbols": ["AAPL"], "benchmarks": [], "interval": "5m", "start": "2024-03-08"}}


class YahooChartArchive(YahooRecorder):
    """Yahoo's chart API over one intraday recording, as seen at ``now``.

    A history request (``period1``/``period2``) gets the recorded bars with ``period1 <= t < period2``
    that closed by ``now``, and the trading periods of their sessions; no bar is Yahoo's empty answer.
    Everything else (time-zone probe, cookie, crumb) is the base recorder's.
    """

    def __init__(self, recording: dict[str, Any], now: pd.Timestamp) -> None:
        super().__init__()
        self.recording = recording
        self.now = now
        self.on_chart("AAPL", "tz", Answer.json(load_fixture(TZ_PROBE)))

    def history_calls(self) -> list[Call]:
        return [c for c in self.chart_calls("AAPL") if "period1" in c.params]

    def _route(self, call: Call) -> Answer | None:
        if call.path == "/v8/finance/chart/AAPL" and "period1" in call.params:
            return Answer.json(self._answer(int(call.params["period1"]), int(call.params["period2"])))
        return super()._route(call)

    def _answer(self, period1: int, period2: int) -> dict[str, Any]:
        payload = copy.deepcopy(self.recording)
        result = payload["chart"]["result"][0]
        bar_seconds = int(pd.Timedelta(result["meta"]["dataGranularity"].replace("m", "min")).total_seconds())
        cut = int(self.now.timestamp())
        keep = [i for i, t in enumerate(result["timestamp"]) if period1 <= t < period2 and t + bar_seconds <= cut]
        if not keep:
            del result["timestamp"]
            result["indicators"] = {"quote": [{}]}
            return payload
        quote = result["indicators"]["quote"][0]
        for field in quote:
            quote[field] = [quote[field][i] for i in keep]
        result["timestamp"] = [result["timestamp"][i] for i in keep]
        first, last = result["timestamp"][0], result["timestamp"][-1]
        result["meta"]["tradingPeriods"] = [
            day for day in result["meta"]["tradingPeriods"] if day[0]["end"] > first and day[0]["start"] <= last
        ]
        return payload


@pytest.fixture
def yahoo(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> Iterator[YahooChartArchive]:
    """The archive at Friday's close, serving yfinance; a fresh process-wide response cache; no network."""
    refuse_network(monkeypatch)
    # The archive's clock is simulated; the response cache's is not: polls must reach "Yahoo".
    monkeypatch.setenv("SPE_OPEN_RANGE_TTL_SECONDS", "0")
    sources._cache.cache_clear()  # the sources' response cache is process-wide: start and end empty
    with serving_yahoo(monkeypatch, YahooChartArchive(load_fixture(RECORDING), AFTER_FRIDAY_CLOSE)) as archive:
        yield archive
    sources._cache.cache_clear()


def _invoke(lambdas: InProcessLambda, name: str, event: dict[str, Any]) -> dict[str, Any]:
    payload, error = lambdas.invoke(name, event)
    body = json.loads(payload)
    assert error is None, body
    return dict(body)


def _lake(data_dir: Path) -> ParquetLake:
    return ParquetLake(str(data_dir / "lake"))


def _recorded_bars() -> pd.DataFrame:
    """The recording as canonical bars, read straight from the JSON (not through yfinance)."""
    result = load_fixture(RECORDING)["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(result["timestamp"], unit="s"),
            "symbol": pd.array(["AAPL"] * len(result["timestamp"]), dtype="string"),
            "open": quote["open"],
            "high": quote["high"],
            "low": quote["low"],
            "close": quote["close"],
            "adj_close": quote["close"],  # Yahoo sends no adjclose for intraday bars
            "volume": pd.Series(quote["volume"], dtype="float64"),
        }
    )
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def _new_york_midnight(params: dict[str, str], key: str) -> date:
    stamp = pd.Timestamp(int(params[key]), unit="s", tz="UTC").tz_convert(NEW_YORK)
    assert (stamp.hour, stamp.minute) == (0, 0), stamp
    return stamp.date()


def test_a_scheduled_5m_ingest_writes_the_session_in_utc_to_the_intraday_raw_zone(
    yahoo: YahooChartArchive, data_dir: Path
) -> None:
    # Given Yahoo after Friday's close, and a scheduled ingest of AAPL 5-minute bars for Friday
    event = {"request": {**POLL["request"], "start": "2024-03-08", "end": "2024-03-08"}}

    # When the ingest_prices function runs
    out = _invoke(InProcessLambda(), "ingest_prices", event)

    # Then it asked Yahoo for Friday in New York time (yfinance's end is exclusive)
    (history,) = yahoo.history_calls()
    assert history.params["interval"] == "5m"
    assert (_new_york_midnight(history.params, "period1"), _new_york_midnight(history.params, "period2")) == (
        FRIDAY,
        date(2024, 3, 9),
    )
    # And wrote Friday's 78 bars, all new, under the 5m dataset of the raw zone
    assert out["run_id"].startswith("ingest-") and out["interval"] == "5m"
    assert (out["rows_fetched"], out["rows_new"], out["rows_updated"]) == (BARS_PER_SESSION, BARS_PER_SESSION, 0)
    assert (out["first_date"], out["last_date"]) == ("2024-03-08", "2024-03-08")
    part = data_dir / "lake" / "raw" / "prices_5m" / "source=yahoo" / "year=2024" / "part-0.parquet"
    assert part.is_file()
    assert not (data_dir / "lake" / "raw" / "prices").exists()
    stored = pd.read_parquet(part)
    assert len(stored) == BARS_PER_SESSION and stored["date"].dt.tz is None
    # stamped in UTC: 09:30 EST is 14:30 UTC; the last bar opens at 15:55 EST
    first, last = stored.iloc[0], stored.iloc[-1]
    assert first["date"] == pd.Timestamp("2024-03-08 14:30")
    assert stored.iloc[1]["date"] == pd.Timestamp("2024-03-08 14:35")
    assert last["date"] == pd.Timestamp("2024-03-08 20:55")
    assert (first["open"], first["high"], first["low"], first["close"]) == (169.0, 169.3391, 168.94, 169.287)
    assert first["volume"] == 6877083
    assert (last["open"], last["high"], last["low"], last["close"]) == (170.6955, 170.8074, 170.6825, 170.73)
    assert (stored["adj_close"] == stored["close"]).all()
    assert (stored["date"].diff().dropna() == pd.Timedelta(minutes=5)).all()


def test_a_polling_schedule_appends_the_next_session_then_writes_nothing(
    yahoo: YahooChartArchive, data_dir: Path
) -> None:
    # Given the polling schedule has run once after Friday's close
    lambdas = InProcessLambda()
    friday = _invoke(lambdas, "ingest_prices", POLL)
    assert (friday["rows_new"], friday["last_date"]) == (BARS_PER_SESSION, "2024-03-08")

    # When it runs again after Monday's close, with the same input
    yahoo.now = AFTER_MONDAY_CLOSE
    monday = _invoke(lambdas, "ingest_prices", POLL)

    # Then the overlap before the lake's last bar (Friday, possibly partial) is fetched again and
    # deduplicated, and only Monday's bars are added
    assert (monday["rows_fetched"], monday["rows_new"]) == (2 * BARS_PER_SESSION, BARS_PER_SESSION)
    assert (monday["rows_updated"], monday["rows_unchanged"]) == (0, BARS_PER_SESSION)
    assert (monday["first_date"], monday["last_date"]) == ("2024-03-08", "2024-03-11")

    # When it runs a third time with nothing new at Yahoo
    again = _invoke(lambdas, "ingest_prices", POLL)

    # Then it refetches only the overlap before Monday and writes nothing
    assert (again["rows_fetched"], again["rows_new"], again["rows_updated"]) == (2 * BARS_PER_SESSION, 0, 0)
    assert again["rows_unchanged"] == 2 * BARS_PER_SESSION and again["up_to_date"] == ["AAPL"]
    starts = [_new_york_midnight(c.params, "period1") for c in yahoo.history_calls()]
    overlap = timedelta(days=OVERLAP_DAYS)
    assert starts == [FRIDAY, FRIDAY - overlap, MONDAY - overlap]
    assert len(_lake(data_dir).read_bars("yahoo", ["AAPL"], zone="raw", interval="5m")) == 2 * BARS_PER_SESSION


def test_a_fixed_range_ingested_in_two_steps_adds_only_the_second_session(
    yahoo: YahooChartArchive, data_dir: Path
) -> None:
    # Given Friday's bars ingested after Friday's close
    lambdas = InProcessLambda()
    _invoke(lambdas, "ingest_prices", {"request": {**POLL["request"], "end": "2024-03-08"}})

    # When both sessions are asked for after Monday's close, twice
    yahoo.now = AFTER_MONDAY_CLOSE
    both = {"request": {**POLL["request"], "end": "2024-03-11"}}
    second = _invoke(lambdas, "ingest_prices", both)
    third = _invoke(lambdas, "ingest_prices", both)

    # Then the first adds Monday's bars only, and the identical second writes nothing
    assert (second["rows_new"], second["rows_updated"]) == (BARS_PER_SESSION, 0)
    assert (third["rows_new"], third["rows_updated"], third["rows_fetched"]) == (0, 0, 2 * BARS_PER_SESSION)
    assert third["up_to_date"] == ["AAPL"]


def test_validate_prices_passes_two_sessions_of_5m_bars_and_curates_them(
    yahoo: YahooChartArchive, data_dir: Path
) -> None:
    # Given both sessions in the raw zone
    yahoo.now = AFTER_MONDAY_CLOSE
    lambdas = InProcessLambda()
    _invoke(lambdas, "ingest_prices", POLL)

    # When validate_prices checks them under the strictest policy
    event = {
        "run_id": "intraday-check",
        "source": "yahoo",
        "symbols": ["AAPL"],
        "interval": "5m",
        "validation_policy": "reject",
    }
    out = _invoke(lambdas, "validate_prices", event)

    # Then they pass: the night and the weekend between the sessions are no calendar or long gap
    assert out["passed"] and out["errors"] == 0 and out["symbols"] == ["AAPL"] and out["quarantined"] == []
    report = _lake(data_dir).get_json(out["report_key"])
    checks = {issue["check"] for issue in report["issues"]}
    assert not checks & {"calendar_gap", "long_gap", "non_monotonic", "duplicate_timestamp", "ohlc_inconsistent"}
    assert report["n_rows_in"] == report["n_rows_out"] == 2 * BARS_PER_SESSION
    # And the curated 5m zone holds exactly the recorded bars
    curated = _lake(data_dir).read_bars("yahoo", ["AAPL"], zone="curated", interval="5m")
    pd.testing.assert_frame_equal(curated, _recorded_bars())


def test_the_lake_reads_back_exactly_the_recorded_5m_bars(yahoo: YahooChartArchive, data_dir: Path) -> None:
    # Given both sessions ingested by the polling schedule
    lambdas = InProcessLambda()
    _invoke(lambdas, "ingest_prices", POLL)
    yahoo.now = AFTER_MONDAY_CLOSE
    _invoke(lambdas, "ingest_prices", POLL)
    lake = _lake(data_dir)

    # When the raw 5m bars are read back
    bars = lake.read_bars("yahoo", ["AAPL"], zone="raw", interval="5m")

    # Then they are the recording, row for row, and the daily dataset stays empty
    pd.testing.assert_frame_equal(bars, _recorded_bars())
    assert [c.to_dict() for c in lake.inventory("yahoo", zone="raw", interval="5m")] == [
        {"symbol": "AAPL", "first_date": "2024-03-08", "last_date": "2024-03-11", "rows": 2 * BARS_PER_SESSION}
    ]
    assert lake.inventory("yahoo", zone="raw") == []
