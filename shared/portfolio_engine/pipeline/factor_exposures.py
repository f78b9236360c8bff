"""The factor model a portfolio spec asks for (``method_params.factor_model``), fitted on the run's data.

Its loadings are what ``constraints.factor_exposure_bounds`` bound. Kinds:

* ``fama_french``: monthly regressions of the assets' excess returns on the lake's ``ff3_monthly``
  reference table (``factors``: default Mkt-RF, SMB, HML);
* ``etf``: daily regressions on factor ETFs' returns (``symbols``, e.g. MTUM QUAL SIZE USMV VLUE; their
  curated prices must be in the lake: ingest them as benchmarks), optional ``long_short_against``;
* ``pca``: statistical factors of the returns (``n_factors``, default 3);
* ``macro``: changes of a reference table's series (``table``, default ``treasury_curve``; ``series``,
  default 3-month and 10-year yields; ``change``: diff or pct).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from portfolio_engine.exceptions import EmptyDataError, SpecificationError
from portfolio_engine.optimization import (
    LinearFactorModel,
    PCAFactorModel,
    PortfolioSpec,
    etf_factor_model,
    fama_french_model,
    macro_factor_model,
)
from portfolio_engine.ports import Lake

KINDS = ("fama_french", "etf", "pca", "macro")


def fit_factor_model(
    options: dict[str, Any], returns: pd.DataFrame, *, lake: Lake, source: str, interval: str
) -> LinearFactorModel | PCAFactorModel:
    """Fit the factor model ``options`` describes on ``returns`` (dates x assets, simple, daily).

    Raises
    ------
    SpecificationError
        Unknown kind or option.
    EmptyDataError
        The ETFs' prices are not in the lake.
    DataError, SchemaError
        From the model (too little overlap, a missing factor column).
    """
    kind = options.get("kind")
    allowed = {
        "fama_french": {"factors"},
        "etf": {"symbols", "long_short_against"},
        "pca": {"n_factors"},
        "macro": {"table", "series", "change"},
    }
    if kind not in allowed:
        raise SpecificationError(
            f"method_params.factor_model.kind={kind!r} is unknown.", hint=f"Choose one of {list(KINDS)}."
        )
    unknown = sorted(set(options) - allowed[kind] - {"kind"})
    if unknown:
        raise SpecificationError(
            f"method_params.factor_model options {unknown} do not apply to kind {kind!r}.",
            hint=f"Valid options: {sorted(allowed[kind])}.",
        )
    if kind == "fama_french":
        factors = tuple(options.get("factors", ("Mkt-RF", "SMB", "HML")))
        return fama_french_model(returns, lake.read_reference("ff3_monthly"), factors=factors)
    if kind == "pca":
        return PCAFactorModel(n_factors=int(options.get("n_factors", 3))).fit(returns)
    if kind == "macro":
        table = lake.read_reference(str(options.get("table", "treasury_curve")))
        series = list(options.get("series", ["3month", "10year"]))
        return macro_factor_model(returns, table[series], change=options.get("change", "diff"))
    symbols = list(options.get("symbols", []))
    if not symbols:
        raise SpecificationError("method_params.factor_model.symbols lists no ETF.", hint="e.g. [MTUM, QUAL, USMV].")
    try:
        bars = lake.read_bars(source, symbols, zone="curated", interval=interval)
        prices = bars.pivot(index="date", columns="symbol", values="adj_close")
    except EmptyDataError:
        prices = pd.DataFrame()
    missing = [s for s in symbols if s not in prices.columns]
    if missing:
        raise EmptyDataError(
            f"No curated prices for the factor ETFs {missing}.",
            hint=f"Ingest them with the run: --benchmarks ^GSPC,{','.join(missing)}.",
        )
    return etf_factor_model(returns, prices[symbols], long_short_against=options.get("long_short_against"))


def factor_loadings(
    spec: PortfolioSpec, returns: pd.DataFrame, *, lake: Lake, source: str, interval: str
) -> pd.DataFrame | None:
    """Loadings (assets x factors) for the spec's factor-exposure bounds, or None when it has none.

    Raises
    ------
    SpecificationError
        Exposure bounds without a factor model, or bounds on factors the model does not have.
    """
    options = spec.method_params.get("factor_model")
    bounds = spec.constraints.factor_exposure_bounds
    if not options:
        if bounds:
            raise SpecificationError(
                f"constraints.factor_exposure_bounds {sorted(bounds)} need a factor model.",
                hint="Add method_params.factor_model, e.g. {kind: fama_french} or {kind: pca, n_factors: 3}.",
            )
        return None
    model = fit_factor_model(dict(options), returns, lake=lake, source=source, interval=interval)
    loadings = model.loadings_
    unknown = sorted(set(bounds) - {str(c) for c in loadings.columns})
    if unknown:
        raise SpecificationError(
            f"factor_exposure_bounds name {unknown}, which the {options.get('kind')} model does not have.",
            hint=f"Its factors are {[str(c) for c in loadings.columns]}.",
        )
    return loadings
