"""``spe optimize``: target weights for a portfolio on the lake's curated prices, and its efficient frontier.

The command runs the pipeline's Optimize use case (``optimize_portfolio``) on what the lake holds: the curated
symbols of a source, the champion regime model's current probabilities (computed as DetectRegime does, training
a first model if none reads the latest feature set), the stored holdings. The frontier it draws is that of the
moments the use case actually used, read back from the stored run result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from portfolio_engine.cli._common import (
    DataDirOpt,
    JsonOpt,
    SourceOpt,
    emit,
    errors_to_exit,
    handler_output_to_stderr,
    open_lake,
    out,
    progress_bar,
    setup,
)

if TYPE_CHECKING:
    from portfolio_engine.optimization import Moments, PortfolioSpec
    from portfolio_engine.pipeline.what_if import ChosenSpec
    from portfolio_engine.ports import Lake, Store

SpecOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--spec", help="Portfolio spec, YAML or JSON (default: the portfolio's spec stored in the lake, else bundled)."
    ),
]
MethodOpt = Annotated[
    Optional[str], typer.Option(help="Override the spec's method (min_variance, max_sharpe, risk_parity, hrp...).")
]
PortfolioOpt = Annotated[
    Optional[str], typer.Option(help="Portfolio name (default: the spec file's name, else 'default').")
]
RegimeOpt = Annotated[
    bool,
    typer.Option(
        "--regime/--no-regime",
        help="Regime-aware moments and policies from the champion regime model (default), or the spec's estimators.",
    ),
]
FrontierOpt = Annotated[
    Optional[Path], typer.Option(help="Write the efficient frontier: .png, or .html (a report with the weights).")
]
SaveOpt = Annotated[
    bool,
    typer.Option(
        "--save",
        help="Save the spec as the portfolio's (validated completely; a new spec version). The one way to change a "
        "spec from the command line; `spe run` is the one way to move holdings.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)


def optimize(
    spec: SpecOpt = None,
    method: MethodOpt = None,
    portfolio: PortfolioOpt = None,
    source: SourceOpt = "bundled",
    regime: RegimeOpt = True,
    frontier: FrontierOpt = None,
    save: SaveOpt = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What-if: optimize a portfolio on the lake's curated prices and say whether it would rebalance.

    Nothing changes: the holdings stay as they are (`spe run` moves them). With --save the spec is saved.
    """
    setup(data_dir)
    from portfolio_engine.adapters.model_registry import StoreModelRegistry
    from portfolio_engine.cli.portfolio import open_store
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.pipeline.portfolios import save_portfolio, validate_for_save
    from portfolio_engine.pipeline.what_if import check_method, curated_symbols, what_if

    with errors_to_exit(as_json):
        if frontier is not None and frontier.suffix.lower() not in (".png", ".html"):
            raise ConfigurationError(
                f"Cannot write a frontier chart as {frontier.suffix or 'no suffix'} ({frontier}).",
                hint="Use a .png or .html path.",
            )
        check_method(method)
        run_id = f"optimize-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        lake, store = open_lake(), open_store()
        registry = StoreModelRegistry(lake, store)
        symbols = curated_symbols(lake, source)
        chosen = portfolio_spec(store, spec, portfolio, method)
        if save:  # validated before any work: a spec a run would trip on is refused now
            validate_for_save(chosen.spec, lake=lake, registry=registry, source=source)
        with progress_bar() as progress, handler_output_to_stderr():
            progress.add_task(f"optimizing {chosen.spec.name} ({chosen.spec.method})", total=None)
            document = what_if(
                chosen, store=store, lake=lake, registry=registry, run_id=run_id, source=source, symbols=symbols,
                regime=regime,
            )  # fmt: skip
        document |= {"saved_spec": None, "frontier": None}
        if save:  # and saved only once it has optimized on the lake's data
            saved, changed = save_portfolio(store, chosen.spec, lake=lake, registry=registry, source=source)
            document["saved_spec"] = {"portfolio": saved.name, "spec_version": saved.spec_version, "changed": changed}
        if frontier is not None:
            document["frontier"] = _write_frontier(lake, source, document, frontier)
    if as_json:
        emit(document, True)
    else:
        _print(document)


def read_spec_file(path: Path) -> PortfolioSpec:
    """A portfolio spec from a YAML (``.yaml``/``.yml``/other) or JSON (``.json``) file.

    Raises
    ------
    ConfigurationError
        The file does not exist or cannot be read as UTF-8 text.
    SpecificationError
        Invalid YAML or JSON, not a mapping, or an invalid spec.
    """
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.optimization import PortfolioSpec

    if not path.is_file():
        raise ConfigurationError(
            f"Spec file {path} does not exist.",
            hint="Pass a YAML or JSON spec (see shared/portfolio_engine/resources/portfolios/default.yaml).",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read spec file {path}: {exc}.", hint="Check its permissions.") from exc
    return PortfolioSpec.from_json(text) if path.suffix.lower() == ".json" else PortfolioSpec.from_yaml(text)


def portfolio_spec(store: Store, path: Path | None, portfolio: str | None, method: str | None) -> ChosenSpec:
    """The spec to optimize (``path``, else stored, else bundled) with the overrides (``pipeline.what_if``).

    Raises
    ------
    ConfigurationError
        The file does not exist or cannot be read.
    SpecificationError
        A portfolio that is neither stored nor bundled, an unknown method, or an invalid spec.
    """
    from portfolio_engine.pipeline.what_if import choose_spec

    if path is None:
        return choose_spec(store, portfolio=portfolio, method=method)
    return choose_spec(store, spec=read_spec_file(path), portfolio=portfolio, method=method, origin=str(path))


def stored_moments(stored: dict[str, Any]) -> Moments:
    """The moments a stored run result holds (``portfolios/<name>/runs/<run_id>.json``), labelled by ``assets``.

    Raises
    ------
    LakeError
        The stored moments are not labelled (written by an older version).
    """
    import pandas as pd

    from portfolio_engine.exceptions import LakeError
    from portfolio_engine.optimization import Moments

    document = stored["moments"]
    assets = list(document.get("assets", []))
    if len(assets) != len(document["mu"]) or len(assets) != len(document["cov"]):
        raise LakeError(
            f"The stored moments of run {stored.get('run_id')} do not label their {len(document['cov'])} rows.",
            hint="Re-run the optimization to store its moments again.",
        )
    mu = pd.Series(document["mu"], index=assets, dtype=float)
    frame = pd.DataFrame(document["cov"], index=assets, columns=assets, dtype=float)
    return Moments(mu, frame.loc[mu.index, mu.index])


def _spec_in_force(stored: dict[str, Any]) -> PortfolioSpec:
    """The spec the use case optimized with (its regime policy and cap fitting applied), as stored."""
    from portfolio_engine.optimization import PortfolioSpec

    return PortfolioSpec.from_dict(stored["spec_in_force"])


def _write_frontier(lake: Lake, source: str, document: dict[str, Any], path: Path) -> dict[str, Any]:
    """Draw the frontier of the stored run's moments under the constraints in force; return what was drawn."""
    import pandas as pd

    from portfolio_engine.contracts import OptimizeOutput
    from portfolio_engine.exceptions import LakeError
    from portfolio_engine.optimization import SolverDiagnostics, efficient_frontier, portfolio_result
    from portfolio_engine.pipeline.factor_exposures import factor_loadings
    from portfolio_engine.pipeline.optimize import price_returns
    from portfolio_engine.pipeline.what_if import DEFAULT_INTERVAL
    from portfolio_engine.reports.frontier import frontier_figure_png, frontier_report_html, frontier_table

    output = OptimizeOutput.model_validate({k: v for k, v in document.items() if k in OptimizeOutput.model_fields})
    stored = lake.get_json(output.result_key)
    moments = stored_moments(stored)
    mu = moments.mu
    in_force = _spec_in_force(stored)
    loadings = None
    if in_force.constraints.factor_exposure_bounds:
        history = price_returns(lake, source, list(mu.index), DEFAULT_INTERVAL)
        loadings = factor_loadings(in_force, history, lake=lake, source=source, interval=DEFAULT_INTERVAL)
    # Turnover limits and trading costs depend on the holdings of the moment: the frontier is drawn without them.
    constraints = in_force.constraints.replace(max_turnover=None, transaction_cost_bps=None)
    curve = efficient_frontier(
        moments,
        constraints,
        n_points=in_force.frontier_points,
        risk_free_rate=in_force.risk_free_rate,
        factor_loadings=loadings,
    )
    weights = pd.Series(stored["result"]["weights"], dtype=float).reindex(mu.index).fillna(0.0)
    target = portfolio_result(
        weights,
        moments,
        method=output.method,
        diagnostics=SolverDiagnostics(solver=output.solver, status="optimal"),
        risk_free_rate=in_force.risk_free_rate,
    )
    if abs(target.volatility - output.volatility) > 1e-6 * max(1.0, output.volatility):
        # Never draw a frontier of other moments than the ones the weights were optimized on.
        raise LakeError(
            f"The moments stored in {output.result_key} give the target a volatility of {target.volatility:.6f}, "
            f"the run reported {output.volatility:.6f}.",
            hint="The stored result does not say which asset each covariance row belongs to; re-run the optimization.",
        )
    regime_text = f", regime {output.regime}" if output.regime else ""
    title = f"Portfolio {output.portfolio} on {output.as_of}: efficient frontier ({output.method}{regime_text})"
    if path.suffix.lower() == ".png":
        path.write_bytes(frontier_figure_png(curve, portfolio=target, assets=moments, title=title))
    else:
        details = {
            "as of": str(output.as_of),
            "regime": output.regime or ("not used" if not output.regime_aware else "unknown"),
            "decision": f"{'rebalance' if output.decision.rebalance else 'hold'} ({output.decision.reason})",
            "run result": output.result_key,
        }
        path.write_text(
            frontier_report_html(curve, portfolio=target, assets=moments, title=title, details=details),
            encoding="utf-8",
        )
    minimum = frontier_table(curve).iloc[0][["volatility", "expected_return"]].astype(float).to_dict()
    return {"path": str(path), "points": len(curve.points), "min_variance": minimum}


def _print(document: dict[str, Any]) -> None:
    decision = document["decision"]
    model = document["regime_model"] or {}
    if document["regime_aware"]:
        probabilities = ", ".join(f"{n} {p:.1%}" for n, p in model.get("next_probabilities", {}).items())
        regime_line = (
            f"{document['regime']} (model {model.get('model_name')} {model.get('model_version')}; "
            f"next period: {probabilities})"
        )
    elif model:
        regime_line = f"not used ({model.get('reason') or 'no regime model'})"
    else:
        regime_line = "not used (--no-regime)"
    policy, key, role = "", document.get("policy"), document.get("regime_role")
    if document["regime_aware"]:
        # The state, its role by volatility rank when the label does not say it (state_3 = turbulent), the policy.
        state = f"{document['regime']} = {role}" if role and role != document["regime"] else str(document["regime"])
        policy = f" (regime {state}: policy {key!r}" if key else f" (regime {state}: no policy"
        replaced = key and document["method"] != document["spec_method"]
        policy += f", replacing the spec's {document['spec_method']})" if replaced else ")"
    out.print(f"[bold]Portfolio {document['portfolio']}[/] on {document['as_of']} (spec: {document['spec_source']})")
    out.print(f"Method in force: [bold]{document['method']}[/]{policy}; regime: {regime_line}")
    out.print(
        f"Expected return {document['expected_return']:.2%}, volatility {document['volatility']:.2%}, "
        f"Sharpe {document['sharpe']:.2f}; solver {document['solver']}"
    )
    verdict = "[green]would rebalance[/]" if decision["rebalance"] else "[yellow]would hold[/]"
    out.print(
        f"Decision (what-if: the holdings are not changed): {verdict} ({decision['reason']}): "
        f"drift {decision['drift']:.2%}, turnover "
        f"{decision['turnover']:.2%}, cost {decision['cost']:.4%}, benefit {decision['benefit']:.4%}"
    )
    table = Table(title="Target weights")
    for col in ("symbol", "target", "held", "risk share"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    target, held, risk = document["target_weights"], document["holdings"], document["risk_contributions"]
    for symbol in sorted(target, key=lambda s: -target[s]):
        if abs(target[symbol]) > 1e-6 or abs(held.get(symbol, 0.0)) > 1e-6:
            table.add_row(
                symbol, f"{target[symbol]:.2%}", f"{held.get(symbol, 0.0):.2%}", f"{risk.get(symbol, 0.0):.1%}"
            )
    out.print(table)
    for change in document.get("adaptations") or []:
        out.print(f"[yellow]Default spec adapted to this run:[/] {change}")
    out.print(f"Proposal stored: {document['result_key']}")
    saved = document["saved_spec"]
    if saved:
        what = (
            f"saved as spec v{saved['spec_version']}" if saved["changed"] else f"unchanged (v{saved['spec_version']})"
        )
        out.print(f"Portfolio {saved['portfolio']}: spec {what}")
    frontier = document["frontier"]
    if frontier:
        out.print(f"Frontier written to {frontier['path'] if isinstance(frontier, dict) else frontier}")
