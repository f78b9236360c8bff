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
    parse_request,
    progress_bar,
    setup,
)

if TYPE_CHECKING:
    from portfolio_engine.contracts import DetectRegimeOutput, OptimizeInput, OptimizeOutput
    from portfolio_engine.optimization import Moments, PortfolioSpec
    from portfolio_engine.ports import Lake, ModelRegistry, Store

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
    from portfolio_engine.exceptions import ConfigurationError, EmptyDataError
    from portfolio_engine.pipeline.optimize import optimize_portfolio
    from portfolio_engine.pipeline.portfolios import read_book, save_portfolio, validate_for_save

    with errors_to_exit(as_json):
        if frontier is not None and frontier.suffix.lower() not in (".png", ".html"):
            raise ConfigurationError(
                f"Cannot write a frontier chart as {frontier.suffix or 'no suffix'} ({frontier}).",
                hint="Use a .png or .html path.",
            )
        _check_method(method)
        run_id = f"optimize-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        lake, store = open_lake(), open_store()
        registry = StoreModelRegistry(lake, store)
        symbols = [c.symbol for c in lake.inventory(source, zone="curated")]
        if not symbols:
            raise EmptyDataError(
                f"The lake {lake.uri} holds no curated prices from '{source}'.",
                hint="Run `spe run` first (it ingests, validates and stores them), or pick another --source.",
            )
        chosen, origin, inline = portfolio_spec(store, spec, portfolio, method)
        # A method override of the stored or bundled spec stays that spec (adapted to the lake as a run would).
        override = method if not inline else None
        if save:  # validated before any work: a spec a run would trip on is refused now
            validate_for_save(chosen, lake=lake, registry=registry, source=source)
        book = read_book(store, chosen.name)
        detected: DetectRegimeOutput | None = None
        feature_key: str | None = None
        with progress_bar() as progress, handler_output_to_stderr():
            progress.add_task(f"optimizing {chosen.name} ({chosen.method})", total=None)
            if regime and chosen.regime_aware:
                detected, feature_key = current_regime(lake, registry, run_id, chosen.name, source)
            task = optimize_input(
                lake, chosen, inline, run_id=run_id, source=source, symbols=symbols, detected=detected,
                feature_key=feature_key, method=override,
            )  # fmt: skip
            output = optimize_portfolio(task, lake=lake, registry=registry, book=book)
        document: dict[str, Any] = output.model_dump(mode="json")
        document |= {
            "spec_source": origin,
            "spec_method": chosen.method,
            "feature_key": feature_key,
            "regime_model": regime_summary(detected, regime and chosen.regime_aware),
            "saved_spec": None,
            "frontier": None,
        }
        if save:  # and saved only once it has optimized on the lake's data
            saved, changed = save_portfolio(store, chosen, lake=lake, registry=registry, source=source)
            document["saved_spec"] = {"portfolio": saved.name, "spec_version": saved.spec_version, "changed": changed}
        if frontier is not None:
            document["frontier"] = _write_frontier(lake, task, output, frontier)
    if as_json:
        emit(document, True)
    else:
        _print(document)


def _check_method(method: str | None) -> None:
    from portfolio_engine.exceptions import SpecificationError
    from portfolio_engine.optimization import METHODS

    if method is not None and method not in METHODS:
        raise SpecificationError(f"Unknown method {method!r}.", hint=f"Choose one of {', '.join(METHODS)}.")


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


def portfolio_spec(
    store: Store, path: Path | None, portfolio: str | None, method: str | None
) -> tuple[PortfolioSpec, str, bool]:
    """The spec to optimize (file, else stored, else bundled) with the overrides, its origin, whether it is inline.

    Raises
    ------
    SpecificationError
        A portfolio that is neither stored nor bundled, or an invalid spec.
    """
    from portfolio_engine.exceptions import SpecificationError
    from portfolio_engine.optimization import PortfolioSpec
    from portfolio_engine.pipeline.optimize import bundled_spec
    from portfolio_engine.pipeline.portfolios import read_book

    if path is not None:
        base, origin = read_spec_file(path), str(path)
        name = portfolio or base.name
    else:
        name = portfolio or "default"
        stored = read_book(store, name)
        if stored.spec is not None:
            base, origin = PortfolioSpec.from_dict(stored.spec), f"store (spec v{stored.spec_version})"
        else:
            found = bundled_spec(name)
            if found is None:
                raise SpecificationError(
                    f"No portfolio {name!r} in the store and no bundled spec of that name.",
                    hint="Give a spec file (--spec core.yaml); --save stores it as a portfolio.",
                )
            base, origin = found, "bundled"
    data = base.to_dict() | {"name": name}
    if method is not None:
        data["method"] = method
    return PortfolioSpec.from_dict(data), origin, path is not None


def optimize_input(
    lake: Lake,
    chosen: PortfolioSpec,
    inline: bool,
    *,
    run_id: str,
    source: str,
    symbols: list[str],
    detected: DetectRegimeOutput | None,
    feature_key: str | None,
    method: str | None = None,
) -> OptimizeInput:
    """The Optimize task for ``chosen`` (from :func:`portfolio_spec`) on the lake's curated ``symbols``.

    Shared with ``spe risk report``, which runs the same use case before measuring the weights.

    Raises
    ------
    ConfigurationError
        Options the task contract refuses (a bad run id or symbol).
    """
    from portfolio_engine.contracts import OptimizeInput

    return parse_request(
        OptimizeInput,
        run_id=run_id,
        source=source,
        symbols=symbols,
        index_symbol=index_symbol(lake, source, symbols, feature_key),
        portfolio=chosen.name,
        # A stored or bundled spec is left to the use case to resolve, as in `spe run`.
        spec=chosen.to_dict() if inline else None,
        feature_key=feature_key,
        regime=detected,
        method=method,
    )


def current_regime(
    lake: Lake, registry: ModelRegistry, run_id: str, portfolio: str, source: str
) -> tuple[DetectRegimeOutput, str]:
    """DetectRegime on the latest feature set holding the champion's symbol (the source's own, if it has one)."""
    from portfolio_engine.adapters.training_job import LocalTrainingJob
    from portfolio_engine.contracts import DetectRegimeInput
    from portfolio_engine.pipeline.regime import (
        champion_spec,
        detect_regime,
        latest_feature_key,
        latest_feature_set,
        load_champion,
    )
    from portfolio_engine.regime.definition import RegimeModelSpec

    default = RegimeModelSpec()
    champion = load_champion(registry, default.name)
    symbol = champion_spec(champion).symbol if champion is not None else default.symbol
    found = latest_feature_set(lake, symbol=symbol, source=source)
    # The market's regime is market-wide: a feature set of another source serves when this one has none.
    key = found[0] if found else latest_feature_key(lake, symbol)
    manifest = lake.feature_manifest(key.removeprefix("features/")) or {}
    task = DetectRegimeInput(
        run_id=run_id, feature_key=key, portfolio=portfolio, index_symbol=manifest.get("index_symbol")
    )
    # In-process training: a first model on a cold lake takes ~2 s instead of ~4 s in a child interpreter.
    detected = detect_regime(task, lake=lake, registry=registry, jobs=LocalTrainingJob(in_process=True))
    return detected, key


def index_symbol(lake: Lake, source: str, symbols: list[str], feature_key: str | None) -> str | None:
    """The index the use case keeps out of the universe: the feature set's, else ^GSPC if the lake holds it."""
    from portfolio_engine.regime.definition import RegimeModelSpec

    manifest = lake.feature_manifest(feature_key.removeprefix("features/")) if feature_key else None
    if manifest is None:
        from portfolio_engine.pipeline.regime import latest_feature_set

        found = latest_feature_set(lake, source=source)
        manifest = found[1] if found else {}
    index = manifest.get("index_symbol") or RegimeModelSpec().symbol
    return str(index) if index in symbols else None


def regime_summary(detected: DetectRegimeOutput | None, requested: bool) -> dict[str, Any] | None:
    if detected is None:
        return None if not requested else {"available": False, "reason": "the spec is not regime-aware"}
    keys = (
        "available", "reason", "model_name", "model_version", "trained_now", "symbol", "as_of", "regime",
        "probabilities", "next_probabilities",
    )  # fmt: skip
    document = detected.model_dump(mode="json")
    return {k: document[k] for k in keys}


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


def _write_frontier(lake: Lake, task: OptimizeInput, output: OptimizeOutput, path: Path) -> dict[str, Any]:
    """Draw the frontier of the stored run's moments under the constraints in force; return what was drawn."""
    import pandas as pd

    from portfolio_engine.exceptions import LakeError
    from portfolio_engine.optimization import SolverDiagnostics, efficient_frontier, portfolio_result
    from portfolio_engine.pipeline.factor_exposures import factor_loadings
    from portfolio_engine.pipeline.optimize import price_returns
    from portfolio_engine.reports.frontier import frontier_figure_png, frontier_report_html, frontier_table

    stored = lake.get_json(output.result_key)
    moments = stored_moments(stored)
    mu = moments.mu
    in_force = _spec_in_force(stored)
    loadings = None
    if in_force.constraints.factor_exposure_bounds:
        history = price_returns(lake, task.source, list(mu.index), task.interval)
        loadings = factor_loadings(in_force, history, lake=lake, source=task.source, interval=task.interval)
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
