"""Inputs and outputs of the backtest machine: PlanBacktest, the Map of RunBacktestWindow, AggregateBacktest.

Every payload stays small: the returns, each window's daily marks and the aggregated result live in the lake
under ``backtests/<run_id>/``; tasks pass their keys and a window's decision dates.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, model_validator

from portfolio_engine.contracts.tasks import Interval, RunId, SourceName, Symbols, TriggerFields, _Contract

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "yearly"]
BacktestPolicy = Literal["spec", "regime_aware"]


class BacktestRequest(TriggerFields, _Contract):
    """What starts a backtest: the machine's input. Every field has a default.

    ``symbols`` None means every curated symbol of ``source`` except the benchmarks (the bundled 20 stocks after
    ``spe run``). ``spec`` None means the bundled default spec, with ``regime_aware`` off unless ``policy`` is
    ``regime_aware``. Decisions fall on the last trading day of each ``frequency`` period, once ``window_length``
    days of history exist; each sees the last ``window_length`` days (``rolling``) or all of them (``expanding``).
    ``risk_free`` is the annual rate earned by the cash the engine holds and subtracted in the Sharpe-type
    metrics: a constant (0.02 for 2%) or ``treasury_3m``, the lake's ``treasury_curve`` reference table's
    ``3month`` yield, forward-filled onto the trading days (a quote holds until the next one).
    """

    source: SourceName = "bundled"
    symbols: Symbols | None = None
    spec: dict[str, Any] | None = Field(default=None, description="A PortfolioSpec as a dict (YAML/JSON loaded).")
    start: date | None = None
    end: date | None = None
    interval: Interval = "1d"
    frequency: Frequency = "monthly"
    window: Literal["rolling", "expanding"] = "rolling"
    window_length: int = Field(default=252, ge=2, le=20_000, description="Trading days (rolling) or the minimum.")
    cost_bps: float = Field(default=10.0, ge=0.0, le=10_000.0, description="Proportional cost per unit traded.")
    n_windows: int = Field(default=8, ge=1, le=1000, description="Map items: consecutive blocks of decisions.")
    policy: BacktestPolicy = "spec"
    risk_free: float | Literal["treasury_3m"] = Field(
        default=0.0,
        description="Annual risk-free rate (decimal, e.g. 0.02) or 'treasury_3m' (the lake's 3-month yields).",
    )
    benchmarks: Symbols = Field(
        default_factory=lambda: ["^GSPC"], description="Buy-and-hold series from the lake (the index, user series)."
    )
    factor_etfs: list[str] = Field(
        default_factory=lambda: ["MTUM", "QUAL", "SIZE", "USMV", "VLUE"],
        description="Factor ETFs for the daily factor attribution (used when their prices are in the lake).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BacktestRequest:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if isinstance(self.risk_free, float) and not -1.0 < self.risk_free < 1.0:
            raise ValueError(f"risk_free {self.risk_free} is not an annual rate in decimal (0.02 for 2%)")
        if self.symbols == []:
            raise ValueError("symbols is empty; omit it for every curated symbol but the benchmarks")
        overlap = sorted(set(self.symbols or []) & set(self.benchmarks))
        if overlap:
            raise ValueError(f"symbols {overlap} are also benchmarks; a benchmark is not part of the universe")
        return self


class PlanBacktestInput(_Contract):
    run_id: RunId
    request: BacktestRequest = Field(default_factory=BacktestRequest)


class BacktestWindowTask(_Contract):
    """One Map item: the decisions of one walk-forward block (``WalkForwardWindow.to_dict`` fields)."""

    run_id: str
    config_key: str
    returns_key: str
    index: int = Field(ge=0)
    decisions: list[str] = Field(min_length=1, description="ISO decision dates, increasing.")
    previous: str | None = None
    end: str | None = None


class PlanBacktestOutput(_Contract):
    run_id: str
    config_key: str = Field(description="Lake key of the resolved spec and settings.")
    returns_key: str = Field(description="Lake key of the universe's daily returns (Parquet).")
    benchmarks_key: str = Field(description="Lake key of the benchmarks' daily returns on the same dates (Parquet).")
    symbols: list[str]
    n_days: int
    n_decisions: int
    first_decision: str
    last_decision: str
    windows: list[BacktestWindowTask]


class BacktestWindowOutput(_Contract):
    run_id: str
    index: int
    key: str = Field(description="Lake prefix of the window's daily.parquet and decisions.parquet.")
    n_days: int
    n_decisions: int
    regimes: dict[str, str | None] = Field(
        default_factory=dict,
        description="Regime-aware policy only: the state chosen at each decision (ISO date; None before a model).",
    )


class AggregateBacktestInput(_Contract):
    run_id: RunId
    config_key: str
    returns_key: str
    benchmarks_key: str
    windows: list[BacktestWindowOutput] = Field(min_length=1)


class AggregateBacktestOutput(_Contract):
    run_id: str
    result_key: str = Field(description="Lake key of result.json (metrics table, equity curves, weights).")
    strategy: str
    first_date: str
    last_date: str
    n_days: int
    n_decisions: int
    columns: list[str] = Field(description="Columns of the metrics table: the strategy, then each benchmark.")
    headline: dict[str, float | None] = Field(description="The strategy's metrics (None where undefined).")
    skipped: list[str] = Field(default_factory=list, description="Parts of the analysis skipped, with the reason.")
