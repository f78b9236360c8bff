"""``spe risk report``: the risk of a portfolio's target weights (or of weights you give) on the lake's prices.

The command runs, in-process and in the rebalance machine's order, the same use cases as the machine: Optimize
(unless ``--weights``), PlanRisk, SimulateRiskShard for each shard, AggregateRisk, StressTest, CheckLimits, and
ProposeHedge when a limit is breached; ``--alert`` sends the warnings and breaches as the Alert step does.
Everything a risk run stores lives under ``risk/<run_id>/`` in the lake.

With ``--weights`` there is no optimization: the weights are checked (finite, summing to the spec's budget,
assets with curated prices), and a result document is stored at ``risk/<run_id>/portfolio.json`` holding the
spec in force (the spec's policy for the current regime applied, the bundled default's caps fitted to the
lake's universe, as Optimize would) so StressTest and CheckLimits read the same limits as after an
optimization. The portfolio's holdings and its optimization runs are left untouched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from portfolio_engine.cli._common import (
    DataDirOpt,
    JsonOpt,
    SourceOpt,
    emit,
    errors_to_exit,
    handler_output_to_stderr,
    open_lake,
    parse_request,
    progress_bar,
    setup,
)
from portfolio_engine.cli._risk_output import print_report, write_report
from portfolio_engine.cli.optimize import PortfolioOpt, RegimeOpt, SpecOpt

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

    from portfolio_engine.contracts import DetectRegimeOutput, OptimizeOutput
    from portfolio_engine.contracts.risk import RiskSettings
    from portfolio_engine.optimization import PortfolioSpec
    from portfolio_engine.ports import Lake, ModelRegistry

risk_app = typer.Typer(
    help="Risk of a portfolio: regime-switching Monte Carlo, historical and parametric VaR/CVaR, stress, limits.",
    no_args_is_help=True,
)

WeightsOpt = Annotated[
    Optional[Path],
    typer.Option(help="Measure these weights instead of optimizing: JSON {symbol: weight} or CSV symbol,weight."),
]
PathsOpt = Annotated[Optional[int], typer.Option("--paths", help="Monte Carlo paths (default 200,000).")]
HorizonOpt = Annotated[Optional[int], typer.Option("--horizon", help="Monte Carlo horizon in trading days (21).")]
ShardsOpt = Annotated[Optional[int], typer.Option(help="Shards the paths are split into, as the Map state does (4).")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Monte Carlo seed (default: derived from the run id).")]
InnovationsOpt = Annotated[Optional[str], typer.Option(help="normal or student_t (default student_t, 5 dof).")]
ChartOpt = Annotated[
    Optional[Path],
    typer.Option(help="Write the report: .png (fan chart and stress bars) or .html (charts and every table)."),
]
AlertOpt = Annotated[
    bool, typer.Option("--alert/--no-alert", help="Send warnings and breaches through the configured notifiers.")
]


@risk_app.command("report")
def report(
    spec: SpecOpt = None,
    portfolio: PortfolioOpt = None,
    weights: WeightsOpt = None,
    source: SourceOpt = "bundled",
    regime: RegimeOpt = True,
    paths: PathsOpt = None,
    horizon: HorizonOpt = None,
    shards: ShardsOpt = None,
    seed: SeedOpt = None,
    innovations: InnovationsOpt = None,
    chart: ChartOpt = None,
    alert: AlertOpt = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Optimize (or take --weights), simulate, stress and check the limits of a portfolio; propose a hedge."""
    setup(data_dir)
    from portfolio_engine.adapters.model_registry import StoreModelRegistry
    from portfolio_engine.cli.optimize import portfolio_spec
    from portfolio_engine.cli.portfolio import open_store
    from portfolio_engine.contracts.risk import RiskSettings
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.pipeline.optimize import optimize_portfolio
    from portfolio_engine.pipeline.portfolios import read_book
    from portfolio_engine.pipeline.what_if import (
        curated_symbols,
        current_regime,
        index_symbol,
        optimize_input,
        regime_summary,
    )
    from portfolio_engine.risk.limits import parse_limits

    with errors_to_exit(as_json):
        if chart is not None and chart.suffix.lower() not in (".png", ".html"):
            raise ConfigurationError(
                f"Cannot write a risk report as {chart.suffix or 'no suffix'} ({chart}).",
                hint="Use a .png or .html path.",
            )
        settings = parse_request(
            RiskSettings, n_paths=paths, horizon_days=horizon, shards=shards, seed=seed, innovations=innovations
        )
        given = None if weights is None else read_weights(weights)
        run_id = f"risk-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        lake, store = open_lake(), open_store()
        registry = StoreModelRegistry(lake, store)
        symbols = curated_symbols(lake, source)
        picked = portfolio_spec(store, spec, portfolio, None)
        chosen, origin, inline = picked.spec, picked.origin, picked.inline
        # Fail before any simulation: unknown limit names, bad weights.
        parse_limits(chosen.limits)
        if given is not None:
            given = check_given_weights(given, chosen, symbols, source)
        with progress_bar() as progress, handler_output_to_stderr():
            step = progress.add_task("current regime", total=None)
            detected, feature_key = (
                current_regime(lake, registry, run_id, chosen.name, source) if regime else (None, None)
            )
            if given is None:
                progress.update(step, description=f"optimizing {chosen.name} ({chosen.method})")
                task = optimize_input(
                    lake,
                    picked,
                    run_id=run_id,
                    source=source,
                    symbols=symbols,
                    detected=detected,
                    feature_key=feature_key,
                )
                # A report measures the target; the store's holdings are read, never moved.
                target = optimize_portfolio(task, lake=lake, registry=registry, book=read_book(store, chosen.name))
                index = task.index_symbol
            else:
                index = index_symbol(lake, source, symbols, feature_key)
                target = given_portfolio(
                    lake,
                    chosen,
                    inline,
                    given,
                    run_id=run_id,
                    source=source,
                    symbols=symbols,
                    index=index,
                    detected=detected,
                )
            progress.remove_task(step)
            context = {"source": source, "index_symbol": index, "feature_key": feature_key, "regime": detected}
            document = _measure(lake, registry, target, settings, context, progress, alert=alert)
        document |= {
            "spec_source": origin,
            "weights_source": "optimized" if weights is None else str(weights),
            "regime_model": regime_summary(detected, regime),
            "chart": None,
        }
        if chart is not None:
            write_report(document, chart)
            document["chart"] = str(chart)
    if as_json:
        emit(document, True)
    else:
        print_report(document)


def read_weights(path: Path) -> pd.Series:
    """Weights from a JSON (``{symbol: weight}``, or a document with ``weights``/``target_weights``) or CSV file.

    A CSV has a header and either ``symbol`` and ``weight`` columns or exactly two columns (symbol, weight).

    Raises
    ------
    ConfigurationError
        The file does not exist, cannot be read, or is neither valid JSON nor a two-column CSV.
    RiskInputError
        A mapping of something other than weights.
    """
    import pandas as pd

    from portfolio_engine.exceptions import ConfigurationError, RiskInputError

    hint = 'Give a JSON object {"AAPL": 0.6, "MSFT": 0.4} or a CSV with columns symbol,weight.'
    if not path.is_file():
        raise ConfigurationError(f"Weights file {path} does not exist.", hint=hint)
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype={0: str})
            columns = ["symbol", "weight"] if {"symbol", "weight"} <= set(frame.columns) else list(frame.columns)
            if len(columns) != 2:
                raise ConfigurationError(f"Weights file {path} has columns {list(frame.columns)}.", hint=hint)
            return pd.Series(frame[columns[1]].to_numpy(), index=frame[columns[0]].astype(str).str.strip())
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"Cannot read weights file {path}: {exc}.", hint=hint) from exc
    if isinstance(data, dict):
        data = data.get("target_weights", data.get("weights", data))
    if not isinstance(data, dict) or not data:
        raise RiskInputError(f"Weights file {path} holds {type(data).__name__} {data!r:.80}, not weights.", hint=hint)
    return pd.Series(data, dtype="object")


def check_given_weights(weights: pd.Series, spec: PortfolioSpec, symbols: list[str], source: str) -> pd.Series:
    """The weights as floats, checked against the spec's budget and the lake's curated symbols.

    Raises
    ------
    RiskInputError
        NaN, infinite or non-numeric weights, an asset named twice, weights not summing to the spec's budget
        (1 unless it sets another), assets without curated prices from ``source``.
    """
    from portfolio_engine.exceptions import RiskInputError
    from portfolio_engine.risk.measures import check_weights

    budget = spec.constraints.budget if spec.constraints.budget is not None else 1.0
    checked = check_weights(weights, budget=budget)
    unknown = [str(a) for a in checked.index if a not in symbols]
    if unknown:
        raise RiskInputError(
            f"The weights name {unknown}, which have no curated prices from '{source}' in the lake.",
            hint=f"Use the lake's symbols ({', '.join(symbols)}) or ingest them: `spe run --symbols ...`.",
        )
    return checked


def given_portfolio(
    lake: Lake,
    chosen: PortfolioSpec,
    inline: bool,
    weights: pd.Series,
    *,
    run_id: str,
    source: str,
    symbols: list[str],
    index: str | None,
    detected: DetectRegimeOutput | None,
) -> OptimizeOutput:
    """Store the result document of checked ``weights`` (``risk/<run_id>/portfolio.json``); describe them like Optimize.

    Expected return, volatility and risk shares come from the sample moments of the spec's lookback window.
    """
    from portfolio_engine.contracts import OptimizeOutput, RebalanceOutcome
    from portfolio_engine.optimization import SolverDiagnostics, estimate_moments, portfolio_result
    from portfolio_engine.optimization.spec_fitting import fit_caps_to_universe, narrow_universe
    from portfolio_engine.pipeline.optimize import bundled_spec, price_returns

    held = weights[weights != 0.0]
    history = price_returns(lake, source, [str(a) for a in held.index], "1d")
    state = detected.regime if detected is not None and detected.available else None
    names = (detected.state_names or None) if detected is not None and state is not None else None
    in_force, policy = chosen.in_force(state, names)
    adaptations: list[str] = []
    if not inline and chosen == bundled_spec(chosen.name):
        narrowed = narrow_universe(in_force, [s for s in symbols if s != index])
        fitted = fit_caps_to_universe(narrowed.spec, narrowed.spec.universe or [s for s in symbols if s != index])
        in_force, adaptations = fitted.spec, [*narrowed.adaptations, *fitted.adaptations]
    window = history if in_force.lookback_days is None else history.iloc[-in_force.lookback_days :]
    moments = estimate_moments(
        window, mean="historical", covariance="sample", periods_per_year=in_force.periods_per_year
    )
    result = portfolio_result(
        held,
        moments,
        method="given",
        diagnostics=SolverDiagnostics(solver="none", status="given"),
        risk_free_rate=in_force.risk_free_rate,
    )
    as_of = history.index[-1].date()
    rounded = {str(k): round(float(v), 10) for k, v in held.items()}
    result_key = f"risk/{run_id}/portfolio.json"
    lake.put_json(
        result_key,
        {
            "run_id": run_id,
            "as_of": str(as_of),
            "spec": chosen.to_dict(),
            "method_in_force": "given",
            "regime": detected.model_dump(mode="json") if detected else None,
            "spec_in_force": in_force.to_dict(),
            "result": result.to_dict(),
        },
    )
    return OptimizeOutput(
        run_id=run_id,
        portfolio=chosen.name,
        method="given",
        regime=state,
        regime_role=policy.role,
        policy=policy.key,
        adaptations=adaptations,
        regime_aware=False,
        as_of=as_of,
        target_weights=rounded,
        holdings=rounded,
        expected_return=float(result.expected_return),
        volatility=float(result.volatility),
        sharpe=float(result.sharpe) if result.sharpe == result.sharpe else 0.0,
        risk_contributions={str(k): round(float(v), 10) for k, v in result.risk_contributions.items()},
        decision=RebalanceOutcome(rebalance=False, reason="given weights", drift=0, turnover=0, cost=0, benefit=0),
        solver="none",
        result_key=result_key,
    )


def _measure(
    lake: Lake,
    registry: ModelRegistry,
    target: OptimizeOutput,
    settings: RiskSettings,
    context: dict[str, Any],
    progress: Progress,
    *,
    alert: bool,
) -> dict[str, Any]:
    """PlanRisk, the shards, AggregateRisk, StressTest, CheckLimits, ProposeHedge on a breach, Alert if asked."""
    from portfolio_engine.contracts.risk import (
        AggregateRiskInput,
        AlertInput,
        CheckLimitsInput,
        PlanRiskInput,
        ProposeHedgeInput,
        StressInput,
    )
    from portfolio_engine.pipeline.alerts import send_alerts
    from portfolio_engine.pipeline.risk import aggregate_risk, plan_risk, simulate_risk_shard
    from portfolio_engine.pipeline.risk_checks import check_limits, hedge, stress_test
    from portfolio_engine.reports.risk import tail_table

    run_id, common = target.run_id, {"source": context["source"], "index_symbol": context["index_symbol"]}
    plan = plan_risk(
        PlanRiskInput(
            run_id=run_id,
            **common,
            feature_key=context["feature_key"],
            regime=context["regime"],
            portfolio=target,
            settings=settings,
        ),
        lake=lake,
        registry=registry,
    )
    step = progress.add_task(
        f"Monte Carlo: {plan.n_paths:,} paths in {len(plan.shards)} shards", total=len(plan.shards)
    )
    shard_outputs = []
    for shard in plan.shards:
        shard_outputs.append(simulate_risk_shard(shard, lake=lake))
        progress.advance(step)
    progress.update(step, description="aggregating, stress tests, limits")
    risk = aggregate_risk(
        AggregateRiskInput(run_id=run_id, **common, model_key=plan.model_key, shards=shard_outputs, portfolio=target),
        lake=lake,
    )
    stress = stress_test(StressInput(run_id=run_id, **common, portfolio=target), lake=lake)
    limits = check_limits(
        CheckLimitsInput(run_id=run_id, **common, portfolio=target, risk=risk, stress=stress), lake=lake
    )
    hedged = (
        hedge(ProposeHedgeInput(run_id=run_id, **common, portfolio=target, limits=limits), lake=lake)
        if limits.any_breach
        else None
    )
    alerts = None
    if alert:
        from portfolio_engine.adapters.notifiers import build_alert_dispatcher
        from portfolio_engine.settings import Settings

        dispatcher = build_alert_dispatcher(Settings(), lake=lake)
        alerts = send_alerts(AlertInput(run_id=run_id, limits=limits, hedge=hedged), dispatcher=dispatcher)
    stored = lake.get_json(risk.report_key)
    historical = stored["historical"]
    tails = tail_table(
        risk.monte_carlo, historical["var"], historical["cvar"], levels=settings.levels, horizon=risk.horizon_days
    )
    return {
        "run_id": run_id,
        "portfolio": target.portfolio,
        "as_of": str(target.as_of),
        "optimization": target.model_dump(mode="json"),
        "monte_carlo": {
            "n_paths": risk.n_paths,
            "horizon_days": risk.horizon_days,
            "seed": plan.seed,
            "states": plan.states,
            "shards": len(plan.shards),
            "n_blocks": plan.n_blocks,
            "block_size": settings.block_size,
            "innovations": settings.innovations,
            "dof": settings.dof if settings.innovations == "student_t" else None,
            "levels": settings.levels,
            "figures": risk.monte_carlo,
            "fan_chart": stored["fan_chart"],
        },
        "historical": {"horizon_days": 1, "days": historical.get("n_observations"), "figures": risk.historical},
        # Full precision, NaN (a method without an estimate) as null.
        "var_cvar": [{k: None if v != v else v for k, v in row.items()} for row in tails.to_dict("records")],
        "stress": stress.model_dump(mode="json"),
        "limits": limits.model_dump(mode="json"),
        "hedge": None if hedged is None else hedged.model_dump(mode="json"),
        "alerts": None if alerts is None else alerts.model_dump(mode="json"),
        "report_key": risk.report_key,
    }
