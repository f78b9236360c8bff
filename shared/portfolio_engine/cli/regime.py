"""``spe regime``: train (fit), inspect (show) and validate the regime model on a stored feature set."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from portfolio_engine.cli._common import (
    DataDirOpt,
    JsonOpt,
    emit,
    errors_to_exit,
    open_lake,
    out,
    progress_bar,
    setup,
)

if TYPE_CHECKING:
    from portfolio_engine.ports import Lake
    from portfolio_engine.regime.definition import RegimeModelSpec

regime_app = typer.Typer(help="Regime models: fit, show, validate, retrain, champion.", no_args_is_help=True)
champion_app = typer.Typer(help="The champion regime model: show, pin, unpin, rollback.", no_args_is_help=True)
regime_app.add_typer(champion_app, name="champion")

NameOpt = Annotated[str, typer.Option(help="Registry name of the regime model.")]
FeatureKeyOpt = Annotated[
    Optional[str],
    typer.Option(help="Feature set key (features/version=.../dataset=...); default: the latest."),
]
SymbolOpt = Annotated[str, typer.Option(help="The series the model watches.")]
StatesOpt = Annotated[Optional[str], typer.Option(help="Number of states, or bic / aic to choose among 2-4.")]
CovarianceOpt = Annotated[Optional[str], typer.Option(help="full, diag, spherical or tied.")]
FeaturesOpt = Annotated[Optional[str], typer.Option(help="Comma-separated feature columns for the HMM.")]
ModelOpt = Annotated[Optional[str], typer.Option(help="hmm, or hybrid (HMM + ML ensemble).")]
RestartsOpt = Annotated[Optional[int], typer.Option(help="EM restarts; the best likelihood is kept.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed of the restarts.")]


def latest_feature_key(lake: Lake, symbol: str) -> str:
    """The latest stored feature set holding ``symbol`` (see ``pipeline.regime.latest_feature_key``)."""
    from portfolio_engine.pipeline.regime import latest_feature_key as latest

    return latest(lake, symbol)


def _spec(name: str, symbol: str, **overrides: Any) -> RegimeModelSpec:
    from pydantic import ValidationError

    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.regime.definition import RegimeModelSpec

    values = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(values.get("n_states"), str) and values["n_states"].isdigit():
        values["n_states"] = int(values["n_states"])
    try:
        return RegimeModelSpec(name=name, symbol=symbol, **values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(
            f"Invalid regime model options: {problems}.", hint="See `spe regime fit --help`."
        ) from exc


def _registry(lake: Lake) -> Any:
    from portfolio_engine.adapters.model_registry import StoreModelRegistry
    from portfolio_engine.cli.portfolio import open_store

    return StoreModelRegistry(lake, open_store())


@regime_app.command("fit")
def fit(
    name: NameOpt = "market",
    symbol: SymbolOpt = "^GSPC",
    feature_key: FeatureKeyOpt = None,
    states: StatesOpt = None,
    covariance: CovarianceOpt = None,
    features: FeaturesOpt = None,
    model: ModelOpt = None,
    mix: Annotated[Optional[int], typer.Option(help="Mixture components per state (GMM-HMM if > 1).")] = None,
    restarts: RestartsOpt = None,
    seed: SeedOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a challenger with the SageMaker training script (run locally) and promote it if not worse."""
    setup(data_dir)
    from portfolio_engine.adapters.training_job import LocalTrainingJob
    from portfolio_engine.contracts import TrainRegimeInput
    from portfolio_engine.pipeline.champion import commit_training
    from portfolio_engine.pipeline.regime import train_regime

    with errors_to_exit(as_json):
        spec = _spec(
            name,
            symbol,
            n_states=states,
            covariance_type=covariance,
            model=model,
            n_mix=mix,
            n_restarts=restarts,
            random_state=seed,
            features=tuple(f.strip() for f in features.split(",")) if features else None,
        )
        lake = open_lake()
        registry = _registry(lake)
        key = feature_key or latest_feature_key(lake, spec.symbol)
        with progress_bar() as progress:
            progress.add_task(f"training {spec.name} on {key}", total=None)
            proposal = train_regime(
                TrainRegimeInput(feature_key=key, model=spec), lake=lake, registry=registry, jobs=LocalTrainingJob()
            )
        # One append records the run and its decision; a promotion that lost a race to another is recorded as lost.
        request = {"feature_key": key, "model": spec.model_dump(mode="json")}
        result = commit_training(registry.store, registry, proposal, request=request)
    document = result.model_dump(mode="json")
    if as_json:
        emit(document, True)
        return
    verdict = "[green]promoted[/]" if result.promoted else "[yellow]not promoted[/]"
    out.print(
        f"Model {result.name} {result.version}: {verdict} ({result.reason}); champion: {result.champion}; "
        f"{result.n_obs:,} days {result.first_date} .. {result.last_date}"
    )
    out.print({k: round(v, 6) for k, v in result.metrics.items()})


def _champion_view(lake: Lake, name: str, feature_key: str | None) -> dict[str, Any]:
    """Load the champion and compute its filtered probabilities on the feature set."""
    from portfolio_engine.exceptions import ModelNotFoundError
    from portfolio_engine.pipeline.regime import load_champion, read_model_features, regime_probabilities
    from portfolio_engine.regime.definition import RegimeModelSpec, training_frame

    registry = _registry(lake)
    champion = load_champion(registry, name)
    if champion is None:
        raise ModelNotFoundError(f"No champion regime model {name!r} in {lake.uri}.")
    spec = RegimeModelSpec.model_validate(champion.metadata["spec"])
    key = feature_key or champion.metadata.get("feature_key") or latest_feature_key(lake, spec.symbol)
    frame = training_frame(read_model_features(lake, key, spec), spec, min_obs=1)
    proba = regime_probabilities(champion.estimator, frame)
    return {"champion": champion, "spec": spec, "feature_key": key, "frame": frame, "proba": proba}


@regime_app.command("show")
def show(
    name: NameOpt = "market",
    feature_key: FeatureKeyOpt = None,
    days: Annotated[int, typer.Option(help="How many recent days of history to list.")] = 10,
    chart: Annotated[Optional[Path], typer.Option(help="Write a chart: .png, or .html (a report).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Current filtered probabilities, transition matrix, durations and recent history of the champion."""
    setup(data_dir)
    import numpy as np

    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.regime.training import hmm_of
    from portfolio_engine.reports.regime import regime_figure_png, regime_report_html, regime_spells

    with errors_to_exit(as_json):
        if chart is not None and chart.suffix.lower() not in (".png", ".html"):
            raise ConfigurationError(
                f"Cannot write a chart as {chart.suffix or 'no suffix'}.", hint="Use .png or .html."
            )
        lake = open_lake()
        view = _champion_view(lake, name, feature_key)
        champion, spec, proba = view["champion"], view["spec"], view["proba"]
        hmm = hmm_of(champion.estimator)
        names = [str(c) for c in proba.columns]
        states = proba.idxmax(axis=1)
        history = proba.tail(days)
        document = {
            "name": name,
            "version": champion.version,
            "symbol": spec.symbol,
            "feature_key": view["feature_key"],
            "as_of": str(proba.index[-1].date()),
            "probabilities": {n: float(p) for n, p in proba.iloc[-1].items()},
            "regime": str(states.iloc[-1]),
            "state_names": names,
            "transition_matrix": np.asarray(hmm.transmat_).tolist(),
            "expected_durations": dict(zip(names, map(float, hmm.expected_durations_), strict=True)),
            "share_of_days": {n: float((states == n).mean()) for n in names},
            "history": [
                {"date": str(d.date()), **{n: float(v) for n, v in row.items()}} for d, row in history.iterrows()
            ],
            "spells": [
                {"state": str(r["state"]), "start": str(r["start"])[:10], "end": str(r["end"])[:10]}
                | {"days": int(r["days"])}
                for r in regime_spells(states).tail(days).to_dict("records")
            ],
        }
        if chart is not None:
            manifest = lake.feature_manifest(view["feature_key"].removeprefix("features/")) or {}
            bars = lake.read_bars(manifest.get("source", "bundled"), [spec.symbol])
            prices = bars.set_index("date")["adj_close"].rename(spec.symbol)
            title = f"{spec.symbol}: regimes of model {name} {champion.version}"
            if chart.suffix.lower() == ".png":
                chart.write_bytes(regime_figure_png(prices, proba, title=title))
            else:
                chart.write_text(
                    regime_report_html(
                        prices,
                        proba,
                        title=title,
                        transition_matrix=hmm.transmat_,
                        expected_durations=hmm.expected_durations_,
                    )
                )
            document["chart"] = str(chart)
    if as_json:
        emit(document, True)
        return
    out.print(f"[bold]{name}[/] {champion.version} on {spec.symbol}, as of {document['as_of']}: {document['regime']}")
    table = Table(title="Transition matrix (filtered probabilities now in the first column)")
    table.add_column("state")
    table.add_column("P(now)", justify="right")
    for n in names:
        table.add_column(f"-> {n}", justify="right")
    table.add_column("duration (days)", justify="right")
    for i, n in enumerate(names):
        table.add_row(
            n,
            f"{document['probabilities'][n]:.3f}",
            *(f"{v:.4f}" for v in document["transition_matrix"][i]),
            f"{document['expected_durations'][n]:.1f}",
        )
    out.print(table)
    recent = Table(title=f"Last {len(history)} days")
    recent.add_column("date")
    for n in names:
        recent.add_column(n, justify="right")
    for row in document["history"]:
        recent.add_row(row["date"], *(f"{row[n]:.3f}" for n in names))
    out.print(recent)
    if chart is not None:
        out.print(f"Chart written to {chart}")


@regime_app.command("validate")
def validate(
    name: NameOpt = "market",
    feature_key: FeatureKeyOpt = None,
    splits: Annotated[int, typer.Option(help="Walk-forward test blocks.")] = 5,
    mode: Annotated[str, typer.Option(help="expanding or rolling training windows.")] = "expanding",
    purge: Annotated[int, typer.Option(help="Days dropped between training and test (rolling features).")] = 21,
    embargo: Annotated[int, typer.Option(help="Days after each test block kept out of later training.")] = 5,
    seeds: Annotated[int, typer.Option(help="Seeds refitted for label stability (0 skips it).")] = 5,
    report: Annotated[Optional[Path], typer.Option(help="Also write the report as Markdown here.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate the champion's definition: walk-forward folds, seed stability, persistence, synthetic recovery."""
    setup(data_dir)
    import numpy as np

    from portfolio_engine.pipeline.regime import load_champion, read_model_features
    from portfolio_engine.regime.definition import RegimeModelSpec, training_frame
    from portfolio_engine.regime.synthetic import three_state_market, two_state_market
    from portfolio_engine.regime.validation import WalkForwardSplit, validate_regime_model

    with errors_to_exit(as_json):
        lake = open_lake()
        registry = _registry(lake)
        champion = load_champion(registry, name)
        spec = RegimeModelSpec.model_validate(champion.metadata["spec"]) if champion else RegimeModelSpec(name=name)
        key = feature_key or (champion.metadata.get("feature_key") if champion else None)
        key = key or latest_feature_key(lake, spec.symbol)
        frame = training_frame(read_model_features(lake, key, spec), spec)
        estimator = spec.build_estimator()
        n_states = getattr(estimator, "n_states", 2)
        synthetic = None
        if n_states in (2, 3):
            simulate = two_state_market if n_states == 2 else three_state_market
            sample = simulate(4000, rng=np.random.default_rng(spec.random_state))
            if sample.X.shape[1] == len(spec.columns):
                # The presets are in percent; the model reads decimal returns (and rescales them itself).
                synthetic = dataclasses.replace(sample, X=sample.X / 100.0, feature_names=tuple(spec.columns))
        cv = WalkForwardSplit(n_splits=splits, mode=mode, purge=purge, embargo=embargo)
        with progress_bar() as progress:
            progress.add_task(f"validating {name} ({splits} folds, {seeds} seeds)", total=None)
            result = validate_regime_model(
                estimator, frame, cv=cv, seeds=tuple(range(seeds)) or None, synthetic=synthetic
            )
        document = {"name": name, "version": champion.version if champion else None, "feature_key": key}
        document |= result.to_dict()
        if champion is not None:
            lake.put_json(f"models/regime/{name}/{champion.version}/validation.json", document)
        if report is not None:
            report.write_text(result.to_markdown())
    if as_json:
        emit(document, True)
        return
    out.print(result.to_markdown())


@regime_app.command("retrain")
def retrain(
    name: NameOpt = "market",
    symbol: SymbolOpt = "^GSPC",
    feature_key: FeatureKeyOpt = None,
    states: StatesOpt = None,
    covariance: CovarianceOpt = None,
    features: FeaturesOpt = None,
    model: ModelOpt = None,
    restarts: RestartsOpt = None,
    seed: SeedOpt = None,
    holdout_days: Annotated[Optional[int], typer.Option(help="Recent days both models are scored on.")] = None,
    min_train_days: Annotated[Optional[int], typer.Option(help="Fewest days before the holdout.")] = None,
    run_id: Annotated[Optional[str], typer.Option(help="Execution name (default: retrain-<UTC time>).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the retrain-regime state machine locally: channel, SageMaker training job (run here), promotion."""
    setup(data_dir)
    from datetime import UTC, datetime

    from portfolio_engine.cli._common import handler_output_to_stderr
    from portfolio_engine.local.runner import LocalStateMachineRunner

    steps = {
        "prepare_regime_training": "PrepareTraining",
        "training_job": "SageMaker training job",
        "register_regime_model": "RegisterModel",
    }
    with errors_to_exit(as_json):
        spec = _spec(
            name,
            symbol,
            n_states=states,
            covariance_type=covariance,
            model=model,
            n_restarts=restarts,
            random_state=seed,
            holdout_days=holdout_days,
            min_train_days=min_train_days,
            features=tuple(f.strip() for f in features.split(",")) if features else None,
        )
        request: dict[str, Any] = {"model": spec.model_dump(mode="json")}
        if feature_key:
            request["feature_key"] = feature_key
        execution = run_id or f"retrain-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        with progress_bar() as progress, handler_output_to_stderr():
            task = progress.add_task("retrain-regime", total=len(steps))

            def listener(event: str, function: str, _detail: dict[str, Any]) -> None:
                if event == "start":
                    progress.update(task, description=f"retrain-regime: {steps.get(function, function)}")
                else:
                    progress.advance(task)

            # Wait states are scaled away: the local job answers DescribeTrainingJob when it ends.
            runner = LocalStateMachineRunner(listener=listener, wait_scale=0)
            document = runner.run("retrain_regime", request, name=execution).raise_for_status()
    if as_json:
        emit(document, True)
        return
    decision = document["decision"]
    verdict = "[green]promoted[/]" if decision["promoted"] else "[yellow]not promoted[/]"
    out.print(
        f"Model {decision['name']} {decision['version']}: {verdict} ({decision['reason']}); champion: "
        f"{decision['champion']}; trained by job {document['job_name']} on {document['feature_key']}, "
        f"{decision['n_obs']:,} days {decision['first_date']} .. {decision['last_date']}"
    )
    out.print({k: round(v, 6) for k, v in decision["metrics"].items()})


@champion_app.command("show")
def champion_show(name: NameOpt = "market", data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The champion, whether it is pinned, the champions before it and every registry decision."""
    setup(data_dir)
    from portfolio_engine.pipeline.champion import champion_report

    with errors_to_exit(as_json):
        lake = open_lake()
        registry = _registry(lake)
        document = champion_report(registry.store, registry, name)
    if as_json:
        emit(document, True)
        return
    pinned = " [bold](pinned)[/]" if document["pinned"] else ""
    out.print(
        f"[bold]{document['model']}[/]: champion {document['champion']}{pinned}, states {document['state_names']}"
    )
    out.print(f"Champions so far: {' -> '.join(document['lineage']) or 'none'}")
    table = Table(title="Decisions, oldest first")
    for column in ("recorded at", "event", "version", "promoted", "reason"):
        table.add_column(column)
    for d in document["decisions"]:
        version = d.get("version") or d.get("to") or ""
        promoted = "" if "promoted" not in d else ("yes" if d["promoted"] else "no")
        table.add_row(
            d["recorded_at"][:19].replace("T", " "), d["type"], str(version), promoted, str(d.get("reason") or "")
        )
    out.print(table)


@champion_app.command("pin")
def champion_pin(
    name: NameOpt = "market",
    version: Annotated[Optional[str], typer.Option(help="The version to pin (default: the champion).")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pin the champion (or make --version the champion and pin it): promotions are refused until unpinned."""
    setup(data_dir)
    from portfolio_engine.pipeline.champion import pin_champion

    with errors_to_exit(as_json):
        lake = open_lake()
        registry = _registry(lake)
        view = pin_champion(registry.store, registry, name, version)
    emit(view.model_dump(mode="json"), True) if as_json else out.print(f"{name}: champion {view.champion} pinned.")


@champion_app.command("unpin")
def champion_unpin(name: NameOpt = "market", data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Let promotions replace the champion again."""
    setup(data_dir)
    from portfolio_engine.pipeline.champion import unpin_champion

    with errors_to_exit(as_json):
        view = unpin_champion(_registry(open_lake()).store, name)
    emit(view.model_dump(mode="json"), True) if as_json else out.print(f"{name}: champion {view.champion} unpinned.")


@champion_app.command("rollback")
def champion_rollback(
    name: NameOpt = "market",
    to: Annotated[Optional[str], typer.Option(help="An earlier champion (default: the one before).")] = None,
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="Pin it, so the next retraining keeps it.")] = True,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an earlier champion the champion again (pinned by default)."""
    setup(data_dir)
    from portfolio_engine.pipeline.champion import rollback_champion

    with errors_to_exit(as_json):
        view = rollback_champion(_registry(open_lake()).store, name, to=to, pin=pin)
    if as_json:
        emit(view.model_dump(mode="json"), True)
    else:
        out.print(f"{name}: champion rolled back to {view.champion}{' (pinned)' if view.pinned else ''}.")
