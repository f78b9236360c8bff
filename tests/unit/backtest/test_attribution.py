"""Attribution: factor regressions recover known betas and add up exactly; Brinson-Fachler by hand, summing to the
active return per period and (Carino) over periods; typed errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from portfolio_engine.backtest.attribution import (
    brinson_fachler,
    factor_attribution,
    fama_french_attribution,
    sector_weights_and_returns,
)
from portfolio_engine.exceptions import DataError, EmptyDataError, SchemaError, SpecificationError

DAYS = pd.bdate_range("2015-01-01", periods=750)
BETAS = np.array([1.1, -0.3, 0.5])
EVEN = pd.Series({"A": 0.5, "B": 0.5})


def synthetic_daily(seed: int = 0, noise: float = 1e-3) -> tuple[pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    factors = pd.DataFrame(rng.normal(3e-4, 0.01, (len(DAYS), 3)), index=DAYS, columns=["MKT", "VAL", "MOM"])
    returns = 2e-4 + factors.to_numpy() @ BETAS + rng.normal(0, noise, len(DAYS))
    return pd.Series(returns, index=DAYS, name="portfolio"), factors


def test_factor_attribution_recovers_known_betas_and_adds_up_exactly() -> None:
    # Given daily returns built from three factors with betas (1.1, -0.3, 0.5) and alpha 2e-4
    returns, factors = synthetic_daily()
    # When
    result = factor_attribution(returns, factors)
    # Then: the betas are recovered, and equal numpy's least squares
    design = np.column_stack([np.ones(len(DAYS)), factors.to_numpy()])
    coef = np.linalg.lstsq(design, returns.to_numpy(), rcond=None)[0]
    assert result.betas.to_numpy() == pytest.approx(coef[1:], rel=1e-10)
    assert result.betas.to_numpy() == pytest.approx(BETAS, abs=0.01)
    assert result.alpha == pytest.approx(coef[0], rel=1e-8)
    # and per period: factor pieces + alpha + residual = excess return, exactly
    assert np.abs(result.by_period.sum(axis=1) - returns).max() < 1e-12
    # and on average: contributions + alpha + residual = mean excess return (annualised x 252)
    summary = result.summary()
    parts = summary.loc[["MKT", "VAL", "MOM", "alpha", "residual"], "contribution (annual)"].sum()
    assert parts == pytest.approx(returns.mean() * 252, abs=1e-12)
    assert result.contributions["MKT"] == pytest.approx(result.betas["MKT"] * factors["MKT"].mean() * 252, rel=1e-12)
    assert 0.98 < result.r_squared < 1.0
    resid = returns - design @ coef
    assert result.residual_volatility == pytest.approx(resid.std(ddof=1) * math.sqrt(252), rel=1e-8)


def test_factor_attribution_subtracts_the_risk_free_rate_from_both_sides() -> None:
    returns, factors = synthetic_daily(seed=1)
    rf = 1.04 ** (1 / 252) - 1
    result = factor_attribution(returns, factors, risk_free=0.04)
    assert np.abs(result.excess_returns - (returns - rf)).max() < 1e-15
    assert result.factor_means.to_numpy() == pytest.approx(factors.mean().to_numpy() - rf, rel=1e-12)
    # excess on both sides changes the intercept by rf * (sum(beta) - 1), not the betas
    raw = factor_attribution(returns, factors)
    assert result.betas.to_numpy() == pytest.approx(raw.betas.to_numpy(), rel=1e-12)
    assert result.alpha == pytest.approx(raw.alpha + rf * (raw.betas.sum() - 1.0), rel=1e-9)


def test_fama_french_attribution_compounds_days_to_months_and_recovers_betas() -> None:
    # Given monthly targets built from real-looking FF factors, spread evenly over each month's business days
    rng = np.random.default_rng(2)
    months = pd.date_range("2005-01-31", periods=60, freq="ME")
    ff = pd.DataFrame(rng.normal(0.005, 0.04, (60, 3)), index=months, columns=["Mkt-RF", "SMB", "HML"])
    ff["RF"] = 0.002
    monthly = ff["RF"] + 0.001 + ff[["Mkt-RF", "SMB", "HML"]].to_numpy() @ BETAS + rng.normal(0, 1e-3, 60)
    days = pd.bdate_range("2005-01-01", "2009-12-31")
    per_day = days.to_period("M").map(lambda p: len(days[days.to_period("M") == p]))
    target = monthly.reindex(days.to_period("M").to_timestamp(how="end").normalize()).to_numpy()
    daily = pd.Series((1 + target) ** (1 / per_day.to_numpy()) - 1, index=days)
    # When
    result = fama_french_attribution(daily, ff)
    # Then: the monthly excess returns are recovered exactly and the betas approximately
    assert result.n_observations == 60 and result.periods_per_year == 12
    assert np.abs(result.excess_returns.to_numpy() - (monthly - ff["RF"]).to_numpy()).max() < 1e-12
    assert result.betas.to_numpy() == pytest.approx(BETAS, abs=0.02)
    assert result.alpha * 12 == pytest.approx(0.012, abs=0.003)
    assert np.abs(result.by_period.sum(axis=1) - result.excess_returns).max() < 1e-12


def test_brinson_fachler_single_period_by_hand() -> None:
    # Given three sectors (a textbook-sized example)
    wp = pd.Series({"A": 0.5, "B": 0.3, "C": 0.2})
    wb = pd.Series({"A": 0.4, "B": 0.4, "C": 0.2})
    rp = pd.Series({"A": 0.05, "B": 0.02, "C": -0.01})
    rb = pd.Series({"A": 0.04, "B": 0.03, "C": 0.00})
    # When
    result = brinson_fachler(wp, rp, wb, rb)
    # Then: B = 0.028, R = 0.029 and the effects computed by hand
    assert result.benchmark_return.iloc[0] == pytest.approx(0.028, abs=1e-15)
    assert result.allocation.iloc[0].to_numpy() == pytest.approx([0.0012, -0.0002, 0.0], abs=1e-15)
    assert result.selection.iloc[0].to_numpy() == pytest.approx([0.004, -0.004, -0.002], abs=1e-15)
    assert result.interaction.iloc[0].to_numpy() == pytest.approx([0.001, 0.001, 0.0], abs=1e-15)
    assert result.by_period()[["allocation", "selection", "interaction"]].sum(axis=1).iloc[0] == pytest.approx(
        0.001, abs=1e-15
    )


def test_brinson_effects_add_up_per_period_and_carino_links_them_to_the_compounded_active_return() -> None:
    # Given 24 random periods over 6 sectors
    rng = np.random.default_rng(7)
    periods, sectors = pd.date_range("2020-01-31", periods=24, freq="ME"), list("ABCDEF")

    def weights() -> pd.DataFrame:
        return pd.DataFrame(rng.dirichlet(np.ones(6), 24), index=periods, columns=sectors)

    def returns() -> pd.DataFrame:
        return pd.DataFrame(rng.normal(0.01, 0.05, (24, 6)), index=periods, columns=sectors)

    wp, wb, rp, rb = weights(), weights(), returns(), returns()
    # When
    carino = brinson_fachler(wp, rp, wb, rb)
    simple = brinson_fachler(wp, rp, wb, rb, linking="sum")
    # Then: per period the effects add up to the active return
    by_period = carino.by_period()
    gap = by_period[["allocation", "selection", "interaction"]].sum(axis=1) - by_period["active"]
    assert np.abs(gap).max() < 1e-12
    assert np.abs(carino.portfolio_return - (wp * rp).sum(axis=1)).max() < 1e-15
    # and linked over periods they add up to prod(1 + R) - prod(1 + B) (Carino) or sum(R - B) (plain sum)
    compounded = np.prod(1 + carino.portfolio_return) - np.prod(1 + carino.benchmark_return)
    assert abs(carino.total()["total"] - compounded) < 1e-12
    assert abs(simple.total()["total"] - carino.active_return.sum()) < 1e-12
    # and the Carino factors match their definition for one effect
    r, b = carino.portfolio_return, carino.benchmark_return
    k_t = (np.log1p(r) - np.log1p(b)) / (r - b)
    big_r, big_b = np.prod(1 + r) - 1, np.prod(1 + b) - 1
    k = (math.log1p(big_r) - math.log1p(big_b)) / (big_r - big_b)
    assert carino.linked.loc["C", "selection"] == pytest.approx((carino.selection["C"] * k_t / k).sum(), rel=1e-12)


def test_brinson_sectors_without_weight_may_have_no_return() -> None:
    # Given the portfolio out of C (NaN return there) and the benchmark out of D
    wp = pd.Series({"A": 0.6, "B": 0.2, "C": 0.0, "D": 0.2})
    wb = pd.Series({"A": 0.5, "B": 0.3, "C": 0.2, "D": 0.0})
    rp = pd.Series({"A": 0.02, "B": -0.01, "C": np.nan, "D": 0.03})
    rb = pd.Series({"A": 0.01, "B": 0.00, "C": 0.04, "D": np.nan})
    # When
    result = brinson_fachler(wp, rp, wb, rb)
    # Then: C has no selection, D's whole effect is allocation, and the sum still matches
    assert result.selection.loc[0, "C"] == 0.0 and result.interaction.loc[0, "C"] == 0.0
    assert result.allocation.loc[0, "D"] == pytest.approx(0.2 * (0.03 - result.benchmark_return.iloc[0]), abs=1e-15)
    assert result.by_period().iloc[0, :3].sum() == pytest.approx(result.active_return.iloc[0], abs=1e-15)


def test_sector_aggregation_feeds_brinson_with_the_asset_level_returns() -> None:
    rng = np.random.default_rng(11)
    periods, assets = pd.date_range("2021-01-31", periods=6, freq="ME"), ["a1", "a2", "b1", "b2", "c1"]
    sectors = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}
    w = pd.DataFrame(rng.dirichlet(np.ones(5), 6), index=periods, columns=assets)
    w["b2"] = 0.0
    w = w.div(w.sum(axis=1), axis=0)
    r = pd.DataFrame(rng.normal(0.01, 0.04, (6, 5)), index=periods, columns=assets)
    sw, sr = sector_weights_and_returns(w, r, sectors)
    assert list(sw.columns) == ["A", "B", "C"]
    assert np.abs((sw * sr).sum(axis=1) - (w * r).sum(axis=1)).max() < 1e-15
    bw = pd.DataFrame(1 / 3, index=periods, columns=["A", "B", "C"])
    result = brinson_fachler(sw, sr, bw, sr * 0.9)
    assert np.abs(result.portfolio_return - (w * r).sum(axis=1)).max() < 1e-15


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: factor_attribution(synthetic_daily()[0].iloc[:30], synthetic_daily()[1]), DataError),
        (lambda: factor_attribution(pd.Series([], dtype=float), synthetic_daily()[1]), EmptyDataError),
        (
            lambda: factor_attribution(
                synthetic_daily()[0], synthetic_daily()[1].assign(DUP=synthetic_daily()[1]["MKT"] * 2)
            ),
            DataError,
        ),
        (lambda: fama_french_attribution(synthetic_daily()[0], pd.DataFrame({"Mkt-RF": [0.01]})), SchemaError),
        (
            lambda: fama_french_attribution(
                synthetic_daily()[0],
                pd.DataFrame(
                    {"Mkt-RF": [0.01], "SMB": [0.0], "HML": [0.0], "RF": [0.001]}, index=pd.to_datetime(["1990-01-31"])
                ),
            ),
            DataError,
        ),
        (lambda: brinson_fachler(*([pd.DataFrame()] * 4)), EmptyDataError),
        (
            lambda: brinson_fachler(
                pd.Series({"A": 0.5, "B": 0.4}),
                pd.Series({"A": 0.0, "B": 0.0}),
                EVEN,
                EVEN,
            ),
            DataError,
        ),
        (
            lambda: brinson_fachler(
                pd.Series({"A": 0.5, "B": 0.5}),
                pd.Series({"A": np.nan, "B": 0.0}),
                EVEN,
                EVEN,
            ),
            DataError,
        ),
        (
            lambda: brinson_fachler(
                pd.Series({"A": 0.5, "B": 0.5}),
                pd.Series({"A": 0.0, "C": 0.0}),
                EVEN,
                EVEN,
            ),
            DataError,
        ),
        (
            lambda: brinson_fachler(*([pd.Series({"A": 0.5, "B": 0.5})] * 4), linking="menchero"),  # type: ignore[arg-type]
            SpecificationError,
        ),
    ],
)
def test_bad_inputs_raise_typed_errors_with_hints(call, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        call()
    assert caught.value.hint
