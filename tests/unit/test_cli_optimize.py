"""`spe optimize`: weights, moments and frontier on a lake built by `spe run`, and every bad input's error."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from typer.testing import CliRunner

from portfolio_engine.cli import app
from portfolio_engine.optimization import METHODS, PortfolioSpec
from portfolio_engine.optimization.spec_fitting import fit_caps_to_universe, narrow_universe

runner = CliRunner()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Too few for the bundled default's caps (15% a stock, 35% a sector): the use case widens them, as in `spe run`.
SYMBOLS = ["AAPL", "JNJ", "KO", "MSFT", "XOM"]
CUSTOM = ["AAPL", "MSFT", "JNJ", "KO"]
CUSTOM_YAML = """\
name: core
universe: [AAPL, MSFT, JNJ, KO]
method: max_sharpe
risk_free_rate: 0.02
estimators: {mean: historical, covariance: sample}
lookback_days: 252
constraints:
  weight_bounds: [0.05, 0.5]
"""


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake from one `spe run` on the bundled data (full history, so the regime model trains): built once."""
    directory = tmp_path_factory.mktemp("optimize") / "spe-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPE_DATA_DIR", str(directory))
        patch.delenv("SPE_LAKE_URI", raising=False)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        result = runner.invoke(app, ["run", "--symbols", ",".join(SYMBOLS), "--run-id", "base", "--json"])
    assert result.exit_code == 0, result.stdout
    return directory


@pytest.fixture
def lake_dir(base_lake: Path, data_dir: Path) -> Path:
    """A private copy of the base lake as this test's data directory (tests store holdings and specs)."""
    shutil.copytree(base_lake, data_dir, dirs_exist_ok=True)
    return data_dir


@pytest.fixture
def custom_spec(tmp_path: Path) -> Path:
    path = tmp_path / "core.yaml"
    path.write_text(CUSTOM_YAML)
    return path


def _optimize(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["optimize", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _stored(lake_dir: Path, document: dict[str, Any]) -> dict[str, Any]:
    stored: dict[str, Any] = json.loads((lake_dir / "lake" / document["result_key"]).read_text())
    return stored


def _moments(stored: dict[str, Any], assets: list[str]) -> tuple[pd.Series, pd.DataFrame]:
    """mu and cov of a stored run, in the order of ``assets``."""
    labels = stored["moments"]["assets"]
    assert sorted(labels) == sorted(assets)
    cov = pd.DataFrame(stored["moments"]["cov"], index=labels, columns=labels)
    return pd.Series(stored["moments"]["mu"], index=labels)[assets], cov.loc[assets, assets]


def _slsqp(objective: Any, n: int, bounds: list[tuple[float, float]], groups: list[tuple[list[int], float]]) -> Any:
    """An independent reference: scipy's SLSQP with the budget, bounds and group caps."""
    constraints = [{"type": "eq", "fun": lambda w: w.sum() - 1.0}]
    constraints += [{"type": "ineq", "fun": lambda w, m=members, c=cap: c - w[m].sum()} for members, cap in groups]
    start = np.full(n, 1.0 / n)
    solution = minimize(objective, start, method="SLSQP", bounds=bounds, constraints=constraints, tol=1e-14)
    assert solution.success, solution.message
    return solution.x


def _curated_returns(lake_dir: Path, assets: list[str]) -> pd.DataFrame:
    frame = pd.read_parquet(lake_dir / "lake" / "curated" / "prices" / "source=bundled")
    prices = frame.pivot(index="date", columns="symbol", values="adj_close")[assets].sort_index()
    return prices.pct_change(fill_method=None).iloc[1:].dropna(how="any")


def test_default_spec_is_regime_aware_and_respects_the_policy_in_force(lake_dir: Path, tmp_path: Path) -> None:
    # GIVEN a lake from `spe run` (curated prices, a feature set, a champion regime model, holdings)
    chart = tmp_path / "frontier.png"
    # WHEN the default portfolio is optimized with its bundled spec and the frontier is drawn
    code, document = _optimize("--frontier", str(chart))
    # THEN the regime model's current state picks the spec in force
    assert code == 0, document
    bundled = PortfolioSpec.from_yaml(
        Path("shared/portfolio_engine/resources/portfolios/default.yaml").read_text(encoding="utf-8")
    )
    model = document["regime_model"]
    # (`spe run` stored the default portfolio with its bundled spec: it is the store's spec v1 now)
    assert document["spec_source"] == "store (spec v1)" and document["regime_aware"] and model["available"]
    assert document["regime"] == model["regime"] == max(model["probabilities"], key=model["probabilities"].get)
    # (the bundled spec narrows to the lake's 5 stocks, where 5 x 15% cannot be fully invested: only the weight
    # cap widens, to twice equal weight; 35% a sector still adds up, so the sector caps stay; all of it reported)
    narrowed = narrow_universe(bundled, SYMBOLS)
    fitted = fit_caps_to_universe(narrowed.spec.for_regime(document["regime"]), SYMBOLS)
    in_force = fitted.spec
    assert in_force.constraints.weight_bounds == (0.0, 0.4) and in_force.limits["max_sector_weight"] == 0.35
    assert document["adaptations"] == [*narrowed.adaptations, *fitted.adaptations]
    cap = bundled.for_regime(document["regime"]).constraints.weight_bounds[1]  # 15%, or 10% when turbulent
    assert f"weight cap {cap:.3g} -> 0.4 (5 assets cannot be fully invested under {cap:.3g} each)" in fitted.adaptations
    assert document["policy"] == (document["regime"] if document["regime"] in bundled.regime_policies else None)
    assert document["method"] == in_force.method and document["spec_method"] == bundled.method
    # AND the weights hold every stock but the index, sum to the budget, and respect the bounds in force
    weights = pd.Series(document["target_weights"])
    assert sorted(weights.index) == SYMBOLS
    assert weights.sum() == pytest.approx(1.0, abs=1e-8)
    low, high = in_force.constraints.weight_bounds or (0.0, 1.0)
    assert (weights >= (low or 0.0) - 1e-8).all() and (weights <= high + 1e-8).all()
    for group, (_, cap) in in_force.constraints.group_bounds.items():
        assert weights.reindex(in_force.constraints.groups[group]).fillna(0).sum() <= cap + 1e-8
    # AND the headline figures are those of the weights under the stored moments (sorted symbols: mu's order)
    mu, cov = _moments(_stored(lake_dir, document), SYMBOLS)
    w = weights[SYMBOLS].to_numpy()
    assert document["expected_return"] == pytest.approx(mu.to_numpy() @ w, abs=1e-9)
    assert document["volatility"] == pytest.approx(np.sqrt(w @ cov.to_numpy() @ w), abs=1e-9)
    # AND the frontier PNG was written; its leftmost point is the minimum variance under the constraints in force
    assert chart.read_bytes().startswith(PNG_MAGIC)
    bounds = [(low or 0.0, high)] * len(SYMBOLS)
    groups = [
        ([SYMBOLS.index(a) for a in in_force.constraints.groups[g] if a in SYMBOLS], cap)
        for g, (_, cap) in in_force.constraints.group_bounds.items()
    ]
    w_min = _slsqp(lambda v: v @ cov.to_numpy() @ v, len(SYMBOLS), bounds, groups)
    drawn = document["frontier"]
    assert drawn["points"] == in_force.frontier_points
    assert drawn["min_variance"]["volatility"] == pytest.approx(np.sqrt(w_min @ cov.to_numpy() @ w_min), abs=1e-6)
    assert drawn["min_variance"]["volatility"] <= document["volatility"] + 1e-9


def test_a_custom_yaml_spec_without_regime_uses_its_estimators_and_maximizes_sharpe(
    lake_dir: Path, custom_spec: Path, tmp_path: Path
) -> None:
    # GIVEN a spec file: four stocks, historical mean and sample covariance of the last 252 days, 5-50% each
    report = tmp_path / "frontier.html"
    # WHEN it is optimized without the regime model
    code, document = _optimize("--spec", str(custom_spec), "--no-regime", "--frontier", str(report))
    assert code == 0, document
    # THEN nothing regime-aware happened and the spec's own method is in force
    assert (document["regime_aware"], document["regime"], document["regime_model"]) == (False, None, None)
    assert document["portfolio"] == "core" and document["method"] == "max_sharpe"
    assert document["spec_source"] == str(custom_spec)
    # AND the stored moments are the annualised sample moments of the curated prices' last 252 returns
    window = _curated_returns(lake_dir, CUSTOM).iloc[-252:]
    mu, cov = _moments(_stored(lake_dir, document), CUSTOM)
    assert mu.to_numpy() == pytest.approx(window.mean().to_numpy() * 252, abs=1e-12)
    assert cov.to_numpy() == pytest.approx(window.cov().to_numpy() * 252, abs=1e-12)
    # AND the weights are SLSQP's maximum Sharpe ratio under the same bounds (within solver tolerance)
    m, s = mu.to_numpy(), cov.to_numpy()
    reference = _slsqp(lambda v: -(m @ v - 0.02) / np.sqrt(v @ s @ v), 4, [(0.05, 0.5)] * 4, [])
    weights = pd.Series(document["target_weights"])[CUSTOM].to_numpy()
    assert (
        weights.sum() == pytest.approx(1.0, abs=1e-8) and weights.min() >= 0.05 - 1e-8 and weights.max() <= 0.5 + 1e-8
    )
    assert weights == pytest.approx(reference, abs=2e-4)
    assert document["sharpe"] >= (m @ reference - 0.02) / np.sqrt(reference @ s @ reference) - 1e-7
    assert document["sharpe"] == pytest.approx((document["expected_return"] - 0.02) / document["volatility"])
    # AND the HTML report embeds the chart and lists the weights
    page = report.read_text()
    image = re.search(r"src='data:image/png;base64,([^']+)'", page)
    assert image is not None and base64.b64decode(image.group(1)).startswith(PNG_MAGIC)
    for asset in CUSTOM:
        assert re.search(rf"<th>{asset}</th>\s*<td>{document['target_weights'][asset]:.2%}</td>", page)


def test_method_override_gives_the_minimum_variance_of_the_regime_aware_moments(
    lake_dir: Path, custom_spec: Path
) -> None:
    # GIVEN the custom spec (max_sharpe, no regime policy)
    # WHEN its method is overridden on the command line, with the regime model on
    code, document = _optimize("--spec", str(custom_spec), "--method", "min_variance")
    assert code == 0, document
    # THEN the override is the method in force, on regime-aware moments
    assert document["method"] == document["spec_method"] == "min_variance" and document["regime_aware"]
    stored = _stored(lake_dir, document)
    assert stored["method_in_force"] == "min_variance" and stored["spec"]["method"] == "min_variance"
    # AND the weights are SLSQP's minimum variance of the stored (blended) moments
    _, cov = _moments(stored, CUSTOM)
    reference = _slsqp(lambda v: v @ cov.to_numpy() @ v, 4, [(0.05, 0.5)] * 4, [])
    assert pd.Series(document["target_weights"])[CUSTOM].to_numpy() == pytest.approx(reference, abs=1e-4)
    # AND the regime-aware moments differ from the spec's own estimate (they pool the whole history by state)
    window = _curated_returns(lake_dir, CUSTOM).iloc[-252:]
    assert not np.allclose(cov.to_numpy(), window.cov().to_numpy() * 252, rtol=1e-3)


def test_save_stores_the_spec_that_later_runs_of_the_use_case_pick(lake_dir: Path, custom_spec: Path) -> None:
    # GIVEN the custom spec saved as the default portfolio's
    code, document = _optimize("--spec", str(custom_spec), "--portfolio", "default", "--save", "--no-regime")
    assert code == 0, document
    assert document["saved_spec"] == {"portfolio": "default", "spec_version": 2, "changed": True}
    from portfolio_engine.adapters.model_registry import StoreModelRegistry
    from portfolio_engine.cli._common import open_lake
    from portfolio_engine.cli.portfolio import open_store
    from portfolio_engine.contracts import OptimizeInput
    from portfolio_engine.pipeline.optimize import optimize_portfolio
    from portfolio_engine.pipeline.portfolios import read_book

    store, lake = open_store(), open_lake()
    book = read_book(store, "default")
    saved = PortfolioSpec.from_dict(book.spec)
    assert saved == PortfolioSpec.from_yaml(custom_spec.read_text()).model_copy(update={"name": "default"})
    assert book.spec_version == 2 and book.spec_origin == "cli"
    # WHEN the Optimize use case runs for the default portfolio without an inline spec (as the state machine does)
    task = OptimizeInput(run_id="after-save", source="bundled", symbols=[*SYMBOLS, "^GSPC"], index_symbol="^GSPC")
    output = optimize_portfolio(task, lake=lake, registry=StoreModelRegistry(lake, store), book=book)
    # THEN it optimizes the stored spec: its universe, its method; and `spe optimize` says where the spec came from
    assert sorted(output.target_weights) == sorted(CUSTOM) and output.method == "max_sharpe"
    code, again = _optimize("--no-regime")
    assert code == 0 and again["spec_source"] == "store (spec v2)" and sorted(again["target_weights"]) == sorted(CUSTOM)
    # AND saving the same spec again changes nothing
    code, same = _optimize("--spec", str(custom_spec), "--portfolio", "default", "--save", "--no-regime")
    assert code == 0 and same["saved_spec"] == {"portfolio": "default", "spec_version": 2, "changed": False}


def test_exploring_never_changes_the_book(lake_dir: Path, custom_spec: Path) -> None:
    # GIVEN the holdings `spe run` committed
    from portfolio_engine.cli.portfolio import open_store
    from portfolio_engine.pipeline.portfolios import read_book

    before = read_book(open_store(), "default")
    assert before.holdings is not None
    # WHEN another method is explored (the defect: this used to rebalance and overwrite the holdings)
    code, document = _optimize("--method", "max_utility", "--no-regime")
    assert code == 0, document
    # THEN it says what it would do, and the holdings, the spec and the stream are exactly as before
    after = read_book(open_store(), "default")
    assert after == before and open_store().stream_version("portfolio/default") == before.holdings.version


def test_an_infeasible_or_misnamed_spec_is_refused_before_any_work_and_nothing_is_saved(
    lake_dir: Path, tmp_path: Path
) -> None:
    tight = tmp_path / "tight.yaml"
    tight.write_text(
        "name: tight\nuniverse: [JNJ, KO, PG]\nmethod: min_variance\nconstraints: {weight_bounds: [0, 0.2]}\n"
    )
    code, error = _optimize("--spec", str(tight), "--save", "--no-regime")
    assert code == 1 and error["error"] == "SpecificationError" and "at most 0.6" in error["message"]
    misnamed = tmp_path / "misnamed.yaml"
    misnamed.write_text("name: misnamed\nuniverse: [JNJ, KO, PG]\nlimits: {max_wieght: 0.5}\n")
    code, error = _optimize("--spec", str(misnamed), "--save", "--no-regime")
    assert code == 1 and error["error"] == "SpecificationError" and "max_wieght" in error["message"]
    from portfolio_engine.cli.portfolio import open_store

    assert open_store().view("portfolio", "tight") is None and open_store().view("portfolio", "misnamed") is None


def test_human_output_shows_the_headline_figures_and_the_weights(lake_dir: Path, custom_spec: Path) -> None:
    result = runner.invoke(app, ["optimize", "--spec", str(custom_spec), "--no-regime"])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "Portfolio core" in text and "Method in force: max_sharpe" in text and "not used (--no-regime)" in text
    assert "Expected return" in text and "Sharpe" in text and "would rebalance (initial)" in " ".join(text.split())
    assert all(symbol in text for symbol in CUSTOM) and "risk share" in text


def test_human_output_says_which_regime_policy_applied_and_how_the_default_adapted(lake_dir: Path) -> None:
    # GIVEN the lake of a 5-stock `spe run`: WHEN the bundled default is optimized
    result = runner.invoke(app, ["optimize"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())  # rich wraps long lines
    # THEN the regime, its policy (or none) and every change to the default spec are printed
    assert re.search(r"Method in force: (min_variance \(regime turbulent: policy 'turbulent', replacing the spec's "
                     r"max_sharpe\)|max_sharpe \(regime calm: no policy\))", text), text  # fmt: skip
    assert "Default spec adapted to this run: universe narrowed to the run's 5 symbols of the spec's 20" in text
    assert "assets cannot be fully invested under" in text


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--spec", "{tmp}/missing.yaml"], "ConfigurationError", "missing.yaml does not exist"),
        (["--spec", "{bad_yaml}"], "SpecificationError", "not valid YAML"),
        (["--spec", "{bad_json}"], "SpecificationError", "not valid JSON"),
        (["--spec", "{not_mapping}"], "SpecificationError", "must be a mapping"),
        (["--spec", "{unknown_field}"], "SpecificationError", "lookback"),
        (["--method", "bogus"], "SpecificationError", "'bogus'"),
        (["--spec", "{unknown_symbol}"], "SpecificationError", "NOSUCH"),
        (
            ["--spec", "{too_tight}"],
            "SpecificationError",
            "budget 1.0 lies outside what the weight bounds allow [0, 0.3]",
        ),
        (["--spec", "{conflicting_groups}"], "InfeasibleError", "conflicting: ['budget', 'group_bounds']"),
        (["--frontier", "{tmp}/chart.svg"], "ConfigurationError", ".svg"),
        (["--method", "target_return"], "SpecificationError", "needs target_return"),
    ],
)
def test_bad_inputs_exit_1_with_the_error_type_message_and_hint(
    lake_dir: Path, tmp_path: Path, args: list[str], error: str, message: str
) -> None:
    # GIVEN spec files of every kind of mistake
    files = {
        "tmp": str(tmp_path),
        "bad_yaml": _write(tmp_path, "bad.yaml", "name: core\nuniverse: [AAPL, MSFT\n"),
        "bad_json": _write(tmp_path, "bad.json", '{"name": "core",}'),
        "not_mapping": _write(tmp_path, "list.yaml", "- AAPL\n- MSFT\n"),
        "unknown_field": _write(tmp_path, "typo.yaml", "name: core\nlookback: 252\n"),
        "unknown_symbol": _write(tmp_path, "nosuch.yaml", "name: core\nuniverse: [AAPL, NOSUCH]\n"),
        "too_tight": _write(
            tmp_path, "tight.yaml", "name: core\nuniverse: [AAPL, MSFT, JNJ]\nconstraints: {weight_bounds: [0, 0.1]}\n"
        ),
        "conflicting_groups": _write(
            tmp_path,
            "groups.yaml",
            "name: core\nuniverse: [AAPL, MSFT, JNJ, KO]\nconstraints:\n  groups: {tech: [AAPL, MSFT], "
            "defensive: [JNJ, KO]}\n  group_bounds: {tech: [0.6, null], defensive: [0.6, null]}\n",
        ),
    }
    # WHEN `spe optimize` runs on them
    code, document = _optimize(*(a.format(**files) for a in args), "--no-regime")
    # THEN it exits 1 with the error's type, a message naming the problem, and a hint
    assert code == 1, document
    assert document["error"] == error and message in document["message"] and document["hint"]
    if "bogus" in message:
        assert all(method in document["hint"] for method in METHODS)
    # AND nothing was stored for the failed portfolio
    assert not (lake_dir / "lake" / "portfolios" / "core").exists()


def test_an_empty_lake_or_one_without_features_says_to_run_spe_run_first(data_dir: Path, base_lake: Path) -> None:
    # GIVEN an empty data directory
    code, document = _optimize()
    assert code == 1 and document["error"] == "EmptyDataError" and "spe run" in document["hint"]
    # GIVEN curated prices and a regime model but no feature set
    shutil.copytree(base_lake, data_dir, dirs_exist_ok=True)
    shutil.rmtree(data_dir / "lake" / "features")
    # WHEN the regime-aware optimization needs the regime model's current probabilities
    code, document = _optimize()
    # THEN it says how to build the feature set; without the regime the same lake optimizes
    assert code == 1 and document["error"] == "EmptyDataError" and "spe run" in document["hint"]
    assert "^GSPC" in document["message"]
    code, document = _optimize("--no-regime")
    assert code == 0 and not document["regime_aware"]
