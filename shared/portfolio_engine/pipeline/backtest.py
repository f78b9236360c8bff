"""PlanBacktest, RunBacktestWindow, AggregateBacktest: a walk-forward backtest fanned out over windows.

PlanBacktest resolves the spec and the universe, stores the universe's daily returns once (Parquet) with the
benchmarks' returns on the same dates, schedules the decisions and cuts them into consecutive windows
(:func:`~portfolio_engine.backtest.windows.split_windows`). Each Map item runs its window alone
(:func:`~portfolio_engine.backtest.engine.run_window`) and stores its daily marks and decisions; AggregateBacktest
merges the windows in order (bit for bit the single-process backtest), runs the equal-weight and the long-only
minimum-variance universe through the same engine, and stores the metrics table against every benchmark with the
equity curves, the weights, the regimes chosen (regime-aware policy), the attribution (Fama-French, Brinson-Fachler
against equal weight), the out-of-sample analysis and each window's figures
(:mod:`portfolio_engine.pipeline.backtest_analysis`). The request's risk-free rate (a constant or the 3-month
Treasury yield) pays the cash the engine holds, in the strategy and the engine-run benchmarks alike, and is the
rate of the Sharpe-type metrics.

Lake layout: ``backtests/<run_id>/{config.json, returns.parquet, benchmarks.parquet, windows/<i>/daily.parquet,
windows/<i>/decisions.parquet, result.json}``, with ``index.parquet`` (regime-aware policy) and
``risk_free.parquet`` (annual yields on the returns' dates, ``treasury_3m`` only).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.backtest.engine import (
    BacktestResult,
    DecisionContext,
    Policy,
    SpecPolicy,
    TransactionCosts,
    merge_results,
    run_backtest,
    run_window,
)
from portfolio_engine.backtest.metrics import metrics_table
from portfolio_engine.backtest.regime_policy import RegimeAwarePolicy
from portfolio_engine.backtest.windows import (
    EstimationWindow,
    WalkForwardWindow,
    calendar_schedule,
    split_windows,
)
from portfolio_engine.contracts.backtest import (
    AggregateBacktestInput,
    AggregateBacktestOutput,
    BacktestRequest,
    BacktestWindowOutput,
    BacktestWindowTask,
    PlanBacktestInput,
    PlanBacktestOutput,
)
from portfolio_engine.exceptions import EmptyDataError, InfeasibleError, SpecificationError
from portfolio_engine.optimization import PortfolioSpec
from portfolio_engine.optimization.spec_fitting import fit_caps_to_universe, narrow_universe
from portfolio_engine.pipeline.backtest_analysis import (
    attribution_json,
    clean_number,
    daily_risk_free,
    oos_json,
    risk_free_yields,
    windows_json,
)
from portfolio_engine.pipeline.optimize import bundled_spec, price_returns
from portfolio_engine.ports import Lake

logger = logging.getLogger(__name__)

EQUAL_WEIGHT = "equal_weight"
MIN_VARIANCE = "min_variance"
_DAILY = ["gross_returns", "costs", "net_returns", "cash"]


@dataclass(frozen=True)
class EqualWeightPolicy:
    """The equal-weight benchmark: ``1 / n`` in every asset at each decision (it ignores the history)."""

    def __call__(self, history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        """Equal weights over the history's columns."""
        n = history.shape[1]
        return pd.Series(np.full(n, 1.0 / n), index=history.columns)


@dataclass(frozen=True)
class FallbackPolicy:
    """The spec's policy, falling back to its minimum-variance twin where the spec has no solution.

    A maximum-Sharpe spec has no solution when no portfolio's expected return beats the risk-free rate (a bear
    market's history); a backtest must still hold something, so that decision takes the minimum-variance
    portfolio under the same constraints. Both are pure functions of the history, so windows still merge exactly.
    """

    policy: Policy
    fallback: Policy

    def __call__(self, history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        """The policy's weights, or the fallback's when the policy's problem is infeasible."""
        try:
            return self.policy(history, context)
        except InfeasibleError as exc:
            logger.warning("backtest decision fell back", extra={"date": str(context.date), "reason": exc.message})
            return self.fallback(history, context)


def min_variance_policy() -> Policy:
    """The minimum-variance benchmark: long-only, fully invested, sample covariance of the estimation window."""
    return SpecPolicy(
        PortfolioSpec.from_dict(
            {
                "name": MIN_VARIANCE,
                "method": "min_variance",
                "estimators": {"mean": "historical", "covariance": "sample"},
            }
        )
    )


def chosen_regimes(policy: Policy, dates: pd.DatetimeIndex) -> dict[str, str | None]:
    """The state a regime-aware policy (possibly behind a fallback) chose at each of ``dates`` (empty otherwise)."""
    inner = policy.policy if isinstance(policy, FallbackPolicy) else policy
    if not isinstance(inner, RegimeAwarePolicy):
        return {}
    return {d.date().isoformat(): inner.regimes.get(d) for d in dates}


def _prefix(run_id: str) -> str:
    return f"backtests/{run_id}"


def resolve_backtest_spec(request: BacktestRequest, universe: list[str] | None = None) -> PortfolioSpec:
    """The request's spec, or the bundled default (regime-aware only under the regime-aware policy).

    The bundled default holds the backtest's assets of its own universe (:func:`narrow_universe`), and only its
    caps (its regime policies' too) that cannot be met on them widen (:func:`fit_caps_to_universe`); each change
    is logged. A user's spec is used as given.

    Raises
    ------
    SpecificationError
        An invalid spec.
    """
    if request.spec is not None:
        return PortfolioSpec.from_dict(request.spec)
    spec = bundled_spec("default")
    if spec is None:  # pragma: no cover - the package ships it
        raise SpecificationError("The bundled default spec is missing.", hint="Reinstall the package.")
    spec = spec.model_copy(update={"regime_aware": request.policy == "regime_aware"})
    if not universe:
        return spec
    narrowed = narrow_universe(spec, universe)
    fitted = fit_caps_to_universe(narrowed.spec, narrowed.spec.universe or universe)
    for change in (*narrowed.adaptations, *fitted.adaptations):
        logger.info("bundled default spec adapted: %s", change)
    return fitted.spec


def build_policy(spec: PortfolioSpec, policy: str, index_returns: pd.Series | None = None) -> Policy:
    """The decision rule of a backtest: the spec's optimizer, or the regime-aware policy on the index.

    Either falls back to the spec's minimum-variance twin on infeasible decisions (:class:`FallbackPolicy`).

    Parameters
    ----------
    spec : PortfolioSpec
    policy : {"spec", "regime_aware"}
    index_returns : Series of shape (n_days,), optional
        The index's daily returns, required by ``regime_aware`` (its HMM is refitted on them, point in time).

    Raises
    ------
    SpecificationError
        ``policy`` is unknown, or ``regime_aware`` without index returns.
    """
    if policy not in ("spec", "regime_aware"):
        raise SpecificationError(f"Unknown backtest policy {policy!r}.", hint="Choose 'spec' or 'regime_aware'.")
    main: Policy
    if policy == "spec":
        main = SpecPolicy(spec)
    elif index_returns is None:
        raise SpecificationError(
            "The regime-aware policy needs the index's returns; the backtest has no benchmark.",
            hint="Pass benchmarks with the index first (e.g. ['^GSPC']).",
        )
    else:
        main = RegimeAwarePolicy(spec, index_returns=index_returns)
    if spec.method == "min_variance":
        return main
    return FallbackPolicy(main, SpecPolicy(spec.model_copy(update={"method": "min_variance", "regime_aware": False})))


def index_returns(lake: Lake, request: BacktestRequest) -> pd.Series | None:
    """The first benchmark's daily returns over all its history to ``request.end`` (None without benchmarks).

    The regime-aware policy reads only the rows before each decision, so history before ``start`` is fair game.
    """
    if not request.benchmarks:
        return None
    series = price_returns(lake, request.source, [request.benchmarks[0]], request.interval)[request.benchmarks[0]]
    return series.loc[: pd.Timestamp(request.end)] if request.end else series


def _universe(task: PlanBacktestInput, lake: Lake, spec_universe: list[str] | None) -> list[str]:
    request = task.request
    if request.symbols:
        return list(request.symbols)
    if spec_universe:
        return list(spec_universe)
    held = [c.symbol for c in lake.inventory(request.source, interval=request.interval)]
    universe = sorted(s for s in held if s not in request.benchmarks and s not in request.factor_etfs)
    if not universe:
        raise EmptyDataError(
            f"No curated prices from '{request.source}' in {lake.uri}.",
            hint="Run `spe run` or `spe data ingest` first, or pass symbols.",
        )
    return universe


def _benchmark_returns(lake: Lake, request: BacktestRequest, calendar: pd.DatetimeIndex) -> pd.DataFrame:
    """Each benchmark's buy-and-hold return on ``calendar`` (its price as of each date, so no day is lost)."""
    columns: dict[str, pd.Series] = {}
    for symbol in request.benchmarks:
        bars = lake.read_bars(request.source, [symbol], zone="curated", interval=request.interval)
        if bars.empty:
            raise EmptyDataError(
                f"No curated prices for benchmark {symbol!r} from '{request.source}'.",
                hint="Ingest it with the universe (`spe data ingest`), or drop it from benchmarks.",
            )
        prices = bars.set_index("date")["adj_close"].sort_index()
        prices.index = pd.DatetimeIndex(prices.index)
        levels = prices.reindex(prices.index.union(calendar)).ffill().reindex(calendar)
        columns[symbol] = levels.pct_change(fill_method=None)
    return pd.DataFrame(columns, index=calendar)


def _frame_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _read_frame(lake: Lake, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(lake.get_bytes(key)))


def load_returns(lake: Lake, key: str) -> pd.DataFrame:
    """The stored returns (DataFrame of shape (n_days, n_assets)), as PlanBacktest computed them."""
    return _read_frame(lake, key)


def plan_backtest(task: PlanBacktestInput, *, lake: Lake) -> PlanBacktestOutput:
    """Store the returns and settings of a backtest and split its decisions into window tasks.

    Raises
    ------
    SpecificationError
        An invalid spec or policy, or too little history for one decision after the estimation window.
    EmptyDataError
        No curated prices for a symbol or a benchmark; ``treasury_3m`` without yields for the backtest's days.
    """
    request, prefix = task.request, _prefix(task.run_id)
    user_spec = PortfolioSpec.from_dict(request.spec) if request.spec is not None else None
    universe = _universe(task, lake, user_spec.universe if user_spec else None)
    spec = resolve_backtest_spec(request, universe)
    universe = spec.universe if user_spec is None and spec.universe else universe  # the default's own assets
    index = index_returns(lake, request) if request.policy == "regime_aware" else None
    build_policy(spec, request.policy, index)  # fail here, before the fan-out, on a policy that cannot be built
    returns = price_returns(lake, request.source, universe, request.interval)
    returns = returns.loc[
        pd.Timestamp(request.start) if request.start else None : (pd.Timestamp(request.end) if request.end else None)
    ]
    decisions = (
        calendar_schedule(returns.index, request.frequency, min_history=request.window_length)
        if len(returns)
        else pd.DatetimeIndex([])
    )
    if len(decisions) == 0:
        raise SpecificationError(
            f"No decision date: {len(returns)} days of returns from {request.start} to {request.end} leave none "
            f"after the {request.window_length}-day estimation window.",
            hint="Widen start/end or shorten window_length.",
        )
    benchmarks = _benchmark_returns(lake, request, pd.DatetimeIndex(returns.index))
    risk_free = risk_free_yields(lake, request.risk_free, pd.DatetimeIndex(returns.index))
    config_key, returns_key, benchmarks_key = (
        f"{prefix}/config.json",
        f"{prefix}/returns.parquet",
        f"{prefix}/benchmarks.parquet",
    )
    lake.put_bytes(returns_key, _frame_bytes(returns))
    lake.put_bytes(benchmarks_key, _frame_bytes(benchmarks))
    if index is not None:
        lake.put_bytes(f"{prefix}/index.parquet", _frame_bytes(index.to_frame("index")))
    if isinstance(risk_free, pd.Series):  # stored once: every window and the aggregate use the same yields
        lake.put_bytes(f"{prefix}/risk_free.parquet", _frame_bytes(risk_free.to_frame("annual")))
    lake.put_json(
        config_key,
        {
            "request": request.model_dump(mode="json"),
            # A JSON string: the lake's JSON sorts keys, and the order of a spec's groups orders the solver's
            # constraints (the last bits of the weights).
            "spec": json.dumps(spec.model_dump(mode="json")),
            "symbols": universe,
        },
    )
    windows = [
        BacktestWindowTask(run_id=task.run_id, config_key=config_key, returns_key=returns_key, **w.to_dict())
        for w in split_windows(decisions, request.n_windows)
    ]
    logger.info("backtest planned", extra={"run_id": task.run_id, "decisions": len(decisions)})
    return PlanBacktestOutput(
        run_id=task.run_id,
        config_key=config_key,
        returns_key=returns_key,
        benchmarks_key=benchmarks_key,
        symbols=universe,
        n_days=len(returns),
        n_decisions=len(decisions),
        first_decision=decisions[0].date().isoformat(),
        last_decision=decisions[-1].date().isoformat(),
        windows=windows,
    )


def _settings(lake: Lake, config_key: str) -> tuple[BacktestRequest, PortfolioSpec]:
    config = lake.get_json(config_key)
    return BacktestRequest.model_validate(config["request"]), PortfolioSpec.from_json(config["spec"])


def annual_risk_free(lake: Lake, config_key: str, request: BacktestRequest) -> float | pd.Series:
    """The backtest's annual risk-free rate: the request's constant, or the yields PlanBacktest stored."""
    if isinstance(request.risk_free, str):
        return _read_frame(lake, config_key.replace("config.json", "risk_free.parquet"))["annual"]
    return float(request.risk_free)


def _engine_args(request: BacktestRequest, risk_free: float | pd.Series) -> dict[str, Any]:
    return {
        "window": EstimationWindow(kind=request.window, length=request.window_length),
        "costs": TransactionCosts(cost_bps=request.cost_bps),
        "risk_free_rate": daily_risk_free(risk_free),
    }


def result_frames(result: BacktestResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A result as two frames: daily marks (n_days, 4) and decisions (n_decisions, 2 n_assets + 1)."""
    daily = pd.DataFrame({name: getattr(result, name) for name in _DAILY})
    decisions = pd.concat(
        [
            result.weights.add_prefix("w:"),
            result.pre_trade_weights.add_prefix("p:"),
            result.turnover.rename("turnover").to_frame(),
        ],
        axis=1,
    )
    return daily, decisions


def result_from_frames(daily: pd.DataFrame, decisions: pd.DataFrame) -> BacktestResult:
    """Read :func:`result_frames` back (exactly: Parquet keeps float64 and the dates)."""
    names = {"gross_returns": "gross_return", "costs": "cost", "net_returns": "net_return", "cash": "cash"}
    series = {k: daily[k].rename(v) for k, v in names.items()}
    dates = pd.DatetimeIndex(decisions.index, name="date")
    weights = decisions.filter(like="w:", axis=1)
    pre = decisions.filter(like="p:", axis=1)
    return BacktestResult(
        **series,
        weights=weights.set_axis([c[2:] for c in weights.columns], axis=1).set_axis(dates, axis=0),
        pre_trade_weights=pre.set_axis([c[2:] for c in pre.columns], axis=1).set_axis(dates, axis=0),
        turnover=decisions["turnover"].set_axis(dates),
        decision_dates=dates,
    )


def run_backtest_window(task: BacktestWindowTask, *, lake: Lake) -> BacktestWindowOutput:
    """Run one window of the plan and store its daily marks and decisions.

    Raises
    ------
    SpecificationError, InfeasibleError, SolverFailedError, RiskInputError
        From the policy and the engine.
    """
    request, spec = _settings(lake, task.config_key)
    returns = load_returns(lake, task.returns_key)
    window = WalkForwardWindow.from_dict(task.model_dump(include={"index", "decisions", "previous", "end"}))
    index = (
        _read_frame(lake, task.config_key.replace("config.json", "index.parquet"))["index"]
        if request.policy == "regime_aware"
        else None
    )
    policy = build_policy(spec, request.policy, index)
    engine_args = _engine_args(request, annual_risk_free(lake, task.config_key, request))
    result = run_window(returns, policy, window, **engine_args)
    daily, decisions = result_frames(result)
    key = f"{_prefix(task.run_id)}/windows/{task.index}"
    lake.put_bytes(f"{key}/daily.parquet", _frame_bytes(daily))
    lake.put_bytes(f"{key}/decisions.parquet", _frame_bytes(decisions))
    return BacktestWindowOutput(
        run_id=task.run_id,
        index=task.index,
        key=key,
        n_days=len(daily),
        n_decisions=len(decisions),
        regimes=chosen_regimes(policy, result.decision_dates),
    )


def load_windows(lake: Lake, windows: list[BacktestWindowOutput]) -> list[BacktestResult]:
    """Each stored window's own result, in window order."""
    return [
        result_from_frames(_read_frame(lake, f"{w.key}/daily.parquet"), _read_frame(lake, f"{w.key}/decisions.parquet"))
        for w in sorted(windows, key=lambda w: w.index)
    ]


def load_backtest(lake: Lake, windows: list[BacktestWindowOutput]) -> BacktestResult:
    """Merge the stored windows, in order, into the whole backtest's result."""
    return merge_results(load_windows(lake, windows))


def _series_json(series: pd.Series) -> dict[str, float | None]:
    return {d.date().isoformat(): clean_number(v) for d, v in zip(pd.DatetimeIndex(series.index), series, strict=True)}


def _merged_regimes(windows: list[BacktestWindowOutput]) -> dict[str, str | None]:
    merged: dict[str, str | None] = {}
    for w in sorted(windows, key=lambda w: w.index):
        merged.update(w.regimes)
    return dict(sorted(merged.items()))


def aggregate_backtest(task: AggregateBacktestInput, *, lake: Lake) -> AggregateBacktestOutput:
    """Merge the windows, run the benchmarks, and store the metrics table and the analysis (``result.json``).

    The benchmarks are the request's series, the equal-weight universe and the long-only minimum-variance
    universe (:func:`min_variance_policy`), both run by the engine on the strategy's decision dates with its
    estimation window, costs and risk-free rate (also the metrics'). ``windows`` holds each walk-forward
    window's figures (:func:`~portfolio_engine.backtest.analysis.window_results`). Attribution and the
    out-of-sample analysis are skipped, with the reason stored under ``skipped``, when their inputs are missing
    (see :mod:`portfolio_engine.pipeline.backtest_analysis`).

    Raises
    ------
    SpecificationError
        Overlapping or missing windows.
    DataError
        A benchmark that does not cover the backtest's dates.
    InfeasibleError, SolverFailedError
        From the minimum-variance benchmark's optimizer.
    """
    request, spec = _settings(lake, task.config_key)
    parts = load_windows(lake, task.windows)
    result = merge_results(parts)
    returns = load_returns(lake, task.returns_key)
    risk_free = annual_risk_free(lake, task.config_key, request)
    engine_args = _engine_args(request, risk_free)
    equal = run_backtest(returns, EqualWeightPolicy(), result.decision_dates, **engine_args)
    min_var = run_backtest(returns, min_variance_policy(), result.decision_dates, **engine_args)
    days = result.net_returns.index
    benchmarks: dict[str, pd.Series] = {str(c): s.loc[days] for c, s in _read_frame(lake, task.benchmarks_key).items()}
    benchmarks[EQUAL_WEIGHT] = equal.net_returns.loc[days]
    benchmarks[MIN_VARIANCE] = min_var.net_returns.loc[days]
    name = spec.name
    table = metrics_table(
        {name: result.net_returns},
        benchmark=benchmarks,
        risk_free=risk_free,
        trades_by_name={name: result.weights - result.pre_trade_weights},
        costs_by_name={name: result.costs.loc[result.decision_dates]},
    )
    equity = {name: result.equity, **{k: (1.0 + s).cumprod() for k, s in benchmarks.items()}}
    attribution, skipped = attribution_json(lake, result, equal, returns, request=request)
    oos, reason = oos_json(result, returns, engine_args["window"])
    if oos is None:
        skipped.append(reason)
    result_key = f"{_prefix(task.run_id)}/result.json"
    lake.put_json(
        result_key,
        {
            "run_id": task.run_id,
            "strategy": name,
            "request": request.model_dump(mode="json"),
            "metrics": {str(c): {str(m): clean_number(v) for m, v in table[c].items()} for c in table.columns},
            "equity": {k: _series_json(s) for k, s in equity.items()},
            "weights": {
                "dates": [d.date().isoformat() for d in result.weights.index],
                "assets": [str(a) for a in result.weights.columns],
                "values": result.weights.to_numpy().tolist(),
                "mean": {str(a): float(v) for a, v in result.weights.mean().items()},
                "last": {str(a): float(v) for a, v in result.weights.iloc[-1].items()},
                "turnover": _series_json(result.turnover),
            },
            "total_costs": result.total_costs,
            "regimes": _merged_regimes(task.windows),
            "attribution": attribution,
            "out_of_sample": oos,
            "windows": windows_json(parts, [str(w.index) for w in sorted(task.windows, key=lambda w: w.index)]),
            "skipped": skipped,
        },
    )
    return AggregateBacktestOutput(
        run_id=task.run_id,
        result_key=result_key,
        strategy=name,
        first_date=days[0].date().isoformat(),
        last_date=days[-1].date().isoformat(),
        n_days=len(days),
        n_decisions=len(result.decision_dates),
        columns=[str(c) for c in table.columns],
        headline={str(m): clean_number(v) for m, v in table[name].items()},
        skipped=skipped,
    )
