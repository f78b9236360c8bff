"""StressTest, CheckLimits, ProposeHedge, Alert: what the risk figures mean for the portfolio's limits.

* StressTest replays the target weights over the historical windows of ``risk.stress.DEFAULT_SCENARIOS``
  (a held asset without data in a window takes the index's return), applies hypothetical shocks
  (equity -20% scaled by each asset's beta, each sector -20%, Fama-French factor shocks through the
  assets' loadings, volatility x2, correlations to 1) and
  finds the smallest market fall that loses the portfolio's drawdown limit (20% without one).
* CheckLimits measures each limit of the spec in force (VaR/CVaR at the Monte Carlo horizon from the
  simulation, at other horizons historically on the last three years; volatility, drawdowns, beta and
  tracking error historically; weights, sectors, leverage from the weights) and grades it.
* ProposeHedge proposes (never executes) the cheapest hedge that brings every limit back within bounds.
* Alert (``pipeline/alerts.py``) sends warnings and breaches through the notifiers.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from portfolio_engine.contracts.risk import (
    CheckLimitsInput,
    CheckLimitsOutput,
    ProposeHedgeInput,
    ProposeHedgeOutput,
    StressInput,
    StressOutput,
)
from portfolio_engine.exceptions import DataError, LakeError, RiskInputError
from portfolio_engine.optimization import PortfolioSpec, fama_french_model
from portfolio_engine.pipeline.optimize import price_returns
from portfolio_engine.pipeline.risk import HISTORY_DAYS, held_weights, index_returns
from portfolio_engine.ports import Lake
from portfolio_engine.risk.hedging import HedgeRiskModel, propose_hedge
from portfolio_engine.risk.limits import SEVERITY_RANK, LimitSpec, evaluate_limits, parse_limits
from portfolio_engine.risk.measures import annualized_volatility, portfolio_returns, tail_risk
from portfolio_engine.risk.measures import beta as beta_of
from portfolio_engine.risk.measures import drawdown as drawdown_of
from portfolio_engine.risk.measures import tracking_error as tracking_error_of
from portfolio_engine.risk.stress import (
    correlation_shock,
    equity_shock,
    factor_shock,
    replay_scenarios,
    reverse_equity_shock,
    sector_shock,
    volatility_shock,
)

logger = logging.getLogger(__name__)
SHOCK = -0.20


def sector_map(lake: Lake, assets: list[str]) -> dict[str, str]:
    """Sectors of the assets from the lake's ``sectors`` reference table (empty when it is not there)."""
    try:
        table = lake.read_reference("sectors")
    except LakeError:
        return {}
    mapping = dict(zip(table["symbol"].astype(str), table["sector"].astype(str), strict=True))
    return {a: mapping[a] for a in assets if a in mapping}


def spec_in_force(lake: Lake, result_key: str) -> PortfolioSpec:
    """The spec the optimization used (stored with its result)."""
    return PortfolioSpec.from_dict(lake.get_json(result_key)["spec_in_force"])


def _betas(history: pd.DataFrame, index: pd.Series | None) -> pd.Series | None:
    if index is None:
        return None
    joined = history.join(index.rename("__index__"), how="inner").dropna()
    if len(joined) < 60:
        return None
    cov = joined.cov()
    variance = float(cov.to_numpy()[-1, -1])
    return cov["__index__"].drop("__index__") / variance


#: Fama-French factor shocks: a market fall, a small-cap crash, a value rout (monthly factor returns).
FACTOR_SHOCKS = {
    "ff_market_-20%": {"Mkt-RF": -0.20},
    "ff_small_caps_-10%": {"SMB": -0.10},
    "ff_value_-10%": {"HML": -0.10},
}


def _factor_shocks(lake: Lake, weights: pd.Series, history: pd.DataFrame) -> list[Any]:
    """Fama-French factor shocks through the assets' loadings (none when the factors are not in the lake)."""
    try:
        factors = lake.read_reference("ff3_monthly")
        loadings = fama_french_model(history, factors).loadings_
    except (LakeError, DataError) as exc:  # no factors in the lake, or too few months in common with them
        logger.warning("no Fama-French factor shocks: %s", exc)
        return []
    return [factor_shock(weights, loadings, shock, name=name) for name, shock in FACTOR_SHOCKS.items()]


def stress_test(task: StressInput, *, lake: Lake) -> StressOutput:
    """Historical replays, hypothetical shocks and a reverse stress of the target weights."""
    weights = held_weights(task.portfolio)
    assets = list(weights.index)
    history = price_returns(lake, task.source, assets, task.interval)
    index = index_returns(lake, task.source, task.index_symbol, task.interval)
    replays = [r.to_dict() for r in replay_scenarios(weights, history, proxy=index)]
    window = history.iloc[-HISTORY_DAYS:]
    betas = _betas(window, index)
    cov = window.cov()
    shocks: list[dict[str, Any]] = [equity_shock(weights, SHOCK, betas=betas).to_dict()]
    sectors = sector_map(lake, assets)
    shocks += [sector_shock(weights, sectors, s, SHOCK).to_dict() for s in sorted(set(sectors.values()))]
    shocks += [f.to_dict() for f in _factor_shocks(lake, weights, history)]
    shocks += [volatility_shock(weights, cov, factor=2.0, level=0.99).to_dict()]
    shocks += [correlation_shock(weights, cov, correlation=1.0, level=0.99).to_dict()]
    limit = spec_in_force(lake, task.portfolio.result_key).limits.get("max_drawdown", -SHOCK)
    reverse = reverse_equity_shock(weights, limit, betas=betas).to_dict()
    losses = [(r["loss"], r["name"]) for r in replays if r.get("loss") is not None]
    worst_loss, worst = max(losses) if losses else (0.0, None)
    report_key = f"risk/{task.run_id}/stress.json"
    lake.put_json(report_key, {"scenarios": replays, "shocks": shocks, "reverse": reverse})
    return StressOutput(
        run_id=task.run_id,
        worst_scenario=worst,
        worst_loss=float(worst_loss),
        scenarios=[
            {k: r[k] for k in ("name", "start", "end", "status", "loss", "worst_day_return", "max_drawdown")}
            for r in replays
        ],
        shocks=[{"name": s["name"], "loss": s.get("loss", s.get("stressed_var"))} for s in shocks],
        reverse=reverse,
        report_key=report_key,
    )


def measure_limits(
    limits: dict[str, float],
    weights: pd.Series,
    history: pd.DataFrame,
    *,
    monte_carlo: dict[str, float],
    horizon_days: int,
    index: pd.Series | None,
    sectors: dict[str, str],
) -> dict[str, float]:
    """The measured value of every limit (keyed by the limit's name).

    Raises
    ------
    SpecificationError
        An unknown limit name.
    RiskInputError
        A limit that cannot be measured here (tracking error or beta without an index; sectors without a map).
    """
    measured: dict[str, float] = {}
    for name, value in measurable(limits, weights, history, monte_carlo=monte_carlo, horizon_days=horizon_days,
                                  index=index, sectors=sectors):  # fmt: skip
        if isinstance(value, RiskInputError):
            raise value
        measured[name] = value
    return measured


def measurable(
    limits: dict[str, float],
    weights: pd.Series,
    history: pd.DataFrame,
    *,
    monte_carlo: dict[str, float],
    horizon_days: int,
    index: pd.Series | None,
    sectors: dict[str, str],
) -> list[tuple[str, float | RiskInputError]]:
    """Each limit's measured value, or the typed error saying why the run's data cannot measure it."""
    out: list[tuple[str, float | RiskInputError]] = []
    for name, spec in parse_limits(limits).items():
        try:
            out.append((name, _measure(name, spec, weights, history, monte_carlo, horizon_days, index, sectors)))
        except RiskInputError as exc:
            out.append((name, exc))
    return out


def _measure(
    name: str,
    spec: LimitSpec,
    weights: pd.Series,
    history: pd.DataFrame,
    monte_carlo: dict[str, float],
    horizon_days: int,
    index: pd.Series | None,
    sectors: dict[str, str],
) -> float:
    """One limit's measured value (see the module docstring for which data measures which limit)."""
    daily = portfolio_returns(weights, history)
    if spec.kind in ("var", "cvar"):
        level, horizon = spec.tail
        mc_key = f"{spec.kind}_{level:g}"
        if horizon == horizon_days and mc_key in monte_carlo:
            loss = float(monte_carlo[mc_key])
        else:
            risk = tail_risk(weights, history, level=level, horizon=horizon, method="historical")
            loss = float(risk.var if spec.kind == "var" else risk.cvar)
        # A negative loss (a gain even in the tail) is within any loss limit; limits grade magnitudes.
        return max(loss, 0.0)
    if spec.kind == "volatility":
        return float(annualized_volatility(daily))
    if spec.kind in ("max_drawdown", "current_drawdown"):
        stats = drawdown_of(daily)
        return float(stats.maximum if spec.kind == "max_drawdown" else stats.current)
    if spec.kind == "weight":
        return float(weights.abs().max())
    if spec.kind == "gross_leverage":
        return float(weights.abs().sum())
    if spec.kind == "sector_weight":
        if not sectors:
            raise RiskInputError(f"{name} needs a sector map.", hint="Ingest the reference tables (`spe run`).")
        return float(weights.groupby(pd.Series(sectors)).sum().abs().max())
    if index is None:
        raise RiskInputError(f"{name} needs the index's prices.", hint="Run with --benchmarks ^GSPC.")
    bench = index.reindex(daily.index)
    return float(tracking_error_of(daily, bench) if spec.kind == "tracking_error" else abs(beta_of(daily, bench)))


def check_limits(task: CheckLimitsInput, *, lake: Lake) -> CheckLimitsOutput:
    """Measure and grade the spec's limits for the target weights."""
    limits = dict(spec_in_force(lake, task.portfolio.result_key).limits)
    weights = held_weights(task.portfolio)
    history = price_returns(lake, task.source, list(weights.index), task.interval).iloc[-HISTORY_DAYS:]
    index = index_returns(lake, task.source, task.index_symbol, task.interval)
    results = measurable(
        limits,
        weights,
        history,
        monte_carlo=task.risk.monte_carlo,
        horizon_days=task.risk.horizon_days,
        index=index,
        sectors=sector_map(lake, list(weights.index)),
    )
    measured = {name: value for name, value in results if not isinstance(value, RiskInputError)}
    # A limit the run's data cannot measure (beta without the index) is reported, not a failed run.
    unmeasured = {name: value.message for name, value in results if isinstance(value, RiskInputError)}
    for name, reason in unmeasured.items():
        logger.warning("limit %s not measured: %s", name, reason)
    breaches = evaluate_limits({k: v for k, v in limits.items() if k in measured}, measured)
    worst = max((b.severity for b in breaches), key=SEVERITY_RANK.__getitem__, default=None)
    return CheckLimitsOutput(
        run_id=task.run_id,
        portfolio=task.portfolio.portfolio,
        limits=limits,
        measured={k: float(v) for k, v in measured.items()},
        unmeasured=unmeasured,
        breaches=[b.to_dict() for b in breaches],
        any_breach=any(SEVERITY_RANK[b.severity] >= SEVERITY_RANK["breach"] for b in breaches),
        worst_severity=worst,
    )


def hedge(task: ProposeHedgeInput, *, lake: Lake) -> ProposeHedgeOutput:
    """Propose hedges (scale exposure, index hedge at the beta, a move toward minimum variance)."""
    from portfolio_engine.optimization import Constraints, Moments, min_variance

    weights = held_weights(task.portfolio)
    history = price_returns(lake, task.source, list(weights.index), task.interval).iloc[-HISTORY_DAYS:]
    index = index_returns(lake, task.source, task.index_symbol, task.interval)
    sectors = sector_map(lake, list(weights.index))
    model = HedgeRiskModel.from_returns(
        history, None if index is None else index.reindex(history.index), sector_map=sectors or None
    )
    annual = Moments(mu=history.mean() * 252, cov=history.cov() * 252)
    target = min_variance(annual, Constraints(long_only=True)).weights
    plan = propose_hedge(weights, model, task.limits.limits, min_variance_weights=target)
    document = plan.to_dict()
    report_key = f"risk/{task.run_id}/hedge.json"
    lake.put_json(report_key, document)
    proposals = [
        {k: p.get(k) for k in ("kind", "feasible", "parameter", "turnover", "index_weight", "cash")}
        for p in document.get("proposals", [])
    ]
    chosen = plan.chosen
    return ProposeHedgeOutput(
        run_id=task.run_id,
        chosen=None
        if chosen is None
        else {"kind": chosen.kind, "parameter": float(chosen.parameter), "turnover": float(chosen.turnover)},
        proposals=proposals,
        message=str(document.get("message", "")),
        report_key=report_key,
    )


__all__ = ["check_limits", "hedge", "measure_limits", "stress_test"]
