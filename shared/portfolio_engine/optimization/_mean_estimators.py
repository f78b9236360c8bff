"""Expected-return estimators on a table of simple per-period returns, answering in annual units.

Means are multiplied by ``periods_per_year``. :func:`portfolio_engine.optimization.moments.estimate_moments`
is the one entry point; these functions are the pieces it dispatches to, public for direct use.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, SpecificationError
from portfolio_engine.optimization._checks import check_returns, check_series, ewma_alpha, ewma_weights

ShrinkageMethod = Literal["james_stein", "bayes_stein"]
ShrinkageTarget = Literal["grand_mean", "min_variance"]


def historical_mean(returns: pd.DataFrame, *, geometric: bool = False, periods_per_year: int = 252) -> pd.Series:
    """Annualised historical mean: arithmetic ``mean * periods_per_year`` or geometric (compounded).

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    geometric : bool, default False
        If True, ``prod(1 + r) ** (periods_per_year / n_observations) - 1``.
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    DataError
        Bad returns (see ``check_returns``), or with ``geometric`` a compounded growth <= 0.
    """
    values = check_returns(returns, min_observations=1)
    if geometric:
        growth = np.prod(1.0 + values, axis=0)
        if (growth <= 0).any():
            # A fractional power of a non-positive growth is NaN: name the assets instead of returning it.
            lost = [str(a) for a, g in zip(returns.columns, growth, strict=True) if g <= 0]
            raise DataError(
                f"Compounded growth is zero or negative for {lost} (a return of -100 % or less): no geometric mean.",
                hint="Check those returns (simple returns are > -1), or use the arithmetic mean (geometric=False).",
            )
        mu = growth ** (periods_per_year / values.shape[0]) - 1.0
    else:
        mu = values.mean(axis=0) * periods_per_year
    return pd.Series(mu, index=returns.columns, name="mu")


def ewma_mean(
    returns: pd.DataFrame, *, span: float | None = None, halflife: float | None = None, periods_per_year: int = 252
) -> pd.Series:
    """Annualised exponentially weighted mean (weights ``(1 - alpha)^age``, normalised).

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    span, halflife : float
        Exactly one, in periods.
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    SpecificationError
        Neither or both of ``span`` and ``halflife``.
    """
    values = check_returns(returns, min_observations=1)
    weights = ewma_weights(values.shape[0], ewma_alpha(span, halflife))
    return pd.Series(weights @ values * periods_per_year, index=returns.columns, name="mu")


def capm_mean(
    returns: pd.DataFrame,
    market_returns: pd.Series,
    *,
    risk_free_rate: float = 0.0,
    geometric: bool = False,
    periods_per_year: int = 252,
) -> pd.Series:
    """CAPM expected returns ``rf + beta_i * (E[r_m] - rf)``, ``beta_i = cov(r_i, r_m) / var(r_m)``.

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    market_returns : Series
        The market's per-period returns on (at least) every date of ``returns``.
    risk_free_rate : float, default 0.0
        Annual.
    geometric : bool, default False
        Annualise the market's mean by compounding instead of ``mean * periods_per_year``.
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    DataError
        The market series misses a date of ``returns`` or is constant.

    References
    ----------
    Sharpe, W. F. (1964), "Capital asset prices: a theory of market equilibrium under conditions of risk",
    Journal of Finance 19(3), 425-442.
    """
    values = check_returns(returns)
    market = check_series(market_returns, returns.index, name="market_returns")
    market_centered = market - market.mean()
    market_var = float(market_centered @ market_centered)
    if market_var == 0.0:
        raise DataError("market_returns is constant: beta is undefined.", hint="Pass the market index's returns.")
    betas = (values - values.mean(axis=0)).T @ market_centered / market_var
    if geometric:
        market_mean = float(np.prod(1.0 + market) ** (periods_per_year / market.size) - 1.0)
    else:
        market_mean = float(market.mean()) * periods_per_year
    return pd.Series(risk_free_rate + betas * (market_mean - risk_free_rate), index=returns.columns, name="mu")


def market_implied_risk_aversion(
    market_returns: pd.Series, *, risk_free_rate: float = 0.0, periods_per_year: int = 252
) -> float:
    """Risk aversion implied by the market, ``delta = (E[r_m] - rf) / var(r_m)`` (its Sharpe ratio over its vol).

    Parameters
    ----------
    market_returns : Series of shape (n_observations,)
        Per-period returns.
    risk_free_rate : float, default 0.0
        Annual.
    periods_per_year : int, default 252

    Returns
    -------
    float

    Raises
    ------
    DataError
        Fewer than two finite returns, or a constant series.

    References
    ----------
    Black, F. and Litterman, R. (1992), "Global portfolio optimization", Financial Analysts Journal 48(5), 28-43.
    """
    frame = check_returns(pd.DataFrame({"market": market_returns}), name="market_returns")[:, 0]
    return float((frame.mean() * periods_per_year - risk_free_rate) / (frame.var(ddof=1) * periods_per_year))


def equilibrium_mean(
    cov: pd.DataFrame, market_weights: pd.Series, *, risk_aversion: float, risk_free_rate: float = 0.0
) -> pd.Series:
    """Market-implied (reverse-optimised) returns ``pi = delta * Sigma @ w_mkt + rf``.

    Parameters
    ----------
    cov : DataFrame of shape (n_assets, n_assets)
        Annual covariance.
    market_weights : Series of shape (n_assets,)
        Market capitalisations or weights, one per asset of ``cov``; normalised to sum to one.
    risk_aversion : float
        ``delta`` > 0 (see :func:`market_implied_risk_aversion`).
    risk_free_rate : float, default 0.0
        Annual; added so that ``pi`` is a total return (``pi - rf`` is the excess return).

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    SpecificationError
        Weights missing or extra for an asset, not finite, summing to zero or less; ``risk_aversion`` <= 0.

    References
    ----------
    Black, F. and Litterman, R. (1992), "Global portfolio optimization", Financial Analysts Journal 48(5), 28-43.
    """
    if not isinstance(market_weights, pd.Series):
        raise SpecificationError(
            f"market_weights must be a Series indexed by asset; got {type(market_weights).__name__}.",
            hint="Pass market capitalisations as pd.Series({'AAPL': 2.1e12, ...}).",
        )
    missing = [str(a) for a in cov.index if a not in market_weights.index]
    extra = [str(a) for a in market_weights.index if a not in cov.index]
    if missing or extra:
        raise SpecificationError(
            f"market_weights do not match the assets: missing {missing}, extra {extra}.",
            hint="Give one market weight (or capitalisation) per asset of the universe.",
        )
    weights = market_weights.reindex(cov.index).to_numpy(dtype="float64")
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        raise SpecificationError(
            f"market_weights must be finite and sum to a positive number; got sum {weights.sum()!r}.",
            hint="Pass market capitalisations or weights summing to one.",
        )
    if not (np.isfinite(risk_aversion) and risk_aversion > 0):
        raise SpecificationError(
            f"risk_aversion must be a positive number; got {risk_aversion!r}.",
            hint="Use the market-implied value (about 2-4 for equities) or pass market_returns to derive it.",
        )
    pi = risk_aversion * cov.to_numpy(dtype="float64") @ (weights / weights.sum()) + risk_free_rate
    return pd.Series(pi, index=cov.index, name="mu")


def shrunk_mean(
    returns: pd.DataFrame,
    *,
    method: ShrinkageMethod = "bayes_stein",
    target: ShrinkageTarget | None = None,
    periods_per_year: int = 252,
) -> pd.Series:
    """Shrinkage of the sample mean toward a common value: ``(1 - b) * mean + b * target``.

    The target is the grand mean of the asset means or the mean return of the minimum-variance
    portfolio, ``1' S^-1 m / 1' S^-1 1`` (Jorion's choice). With ``S`` the sample covariance (ddof=1),
    ``T`` observations, ``N`` assets and ``d = m - target``, the intensity ``b`` is

    * ``james_stein``: ``(trace S - 2 max eig S) / (T d'd)`` clipped to [0, 1] (the positive-part
      James-Stein rule for a mean with covariance S / T, Meucci 2005);
    * ``bayes_stein``: ``(N + 2) / ((N + 2) + T d' S^-1 d)`` (Jorion 1986, with S for his Sigma).

    Both are invariant to the scale of the returns, so they are computed on per-period returns and
    the result is annualised.

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    method : {"james_stein", "bayes_stein"}, default "bayes_stein"
    target : {"grand_mean", "min_variance"}, optional
        Default: "min_variance" for Bayes-Stein, "grand_mean" for James-Stein.
    periods_per_year : int, default 252

    Returns
    -------
    Series of shape (n_assets,)

    Raises
    ------
    SpecificationError
        Unknown method or target.
    DataError
        Fewer than n_assets + 1 observations when ``S`` must be inverted (Bayes-Stein or the
        minimum-variance target), or a singular sample covariance.

    References
    ----------
    James, W. and Stein, C. (1961), "Estimation with quadratic loss", Proc. Fourth Berkeley Symposium 1, 361-379.
    Jorion, P. (1986), "Bayes-Stein estimation for portfolio analysis", Journal of Financial and Quantitative
    Analysis 21(3), 279-292.
    Meucci, A. (2005), Risk and Asset Allocation, Springer, section 4.3.
    """
    if method not in ("james_stein", "bayes_stein"):
        raise SpecificationError(f"Unknown shrinkage method {method!r}.", hint="Choose 'james_stein' or 'bayes_stein'.")
    target = target or ("min_variance" if method == "bayes_stein" else "grand_mean")
    if target not in ("grand_mean", "min_variance"):
        raise SpecificationError(f"Unknown shrinkage target {target!r}.", hint="Choose 'grand_mean' or 'min_variance'.")
    needs_inverse = method == "bayes_stein" or target == "min_variance"
    n_assets = returns.shape[1] if isinstance(returns, pd.DataFrame) else 0
    values = check_returns(returns, min_observations=n_assets + 1 if needs_inverse else 2)
    n_obs = values.shape[0]
    mean = values.mean(axis=0)
    cov = np.cov(values, rowvar=False, ddof=1).reshape(n_assets, n_assets)
    inv_ones = inv_mean = None
    if needs_inverse:
        try:
            solved = np.linalg.solve(cov, np.column_stack([np.ones(n_assets), mean]))
        except np.linalg.LinAlgError as exc:
            raise DataError(
                f"The sample covariance of {list(map(str, returns.columns))} is singular: the shrinkage cannot "
                "invert it.",
                hint="Drop assets that are linear combinations of others, or use more observations.",
            ) from exc
        inv_ones, inv_mean = solved[:, 0], solved[:, 1]
    if target == "grand_mean":
        anchor = float(mean.mean())
    else:
        assert inv_ones is not None
        anchor = float(inv_ones @ mean / inv_ones.sum())
    gap = mean - anchor
    if method == "james_stein":
        spread = float(gap @ gap)
        eigenvalues = np.linalg.eigvalsh(cov)
        raw = (eigenvalues.sum() - 2.0 * eigenvalues.max()) / (n_obs * spread) if spread > 0 else 1.0
        intensity = float(np.clip(raw, 0.0, 1.0))
    else:
        # d' S^-1 d from the solves already made: S^-1 d = S^-1 m - anchor * S^-1 1.
        assert inv_ones is not None and inv_mean is not None
        quad = float(gap @ (inv_mean - anchor * inv_ones))
        intensity = (n_assets + 2.0) / ((n_assets + 2.0) + n_obs * quad)
    mu = ((1.0 - intensity) * mean + intensity * anchor) * periods_per_year
    return pd.Series(mu, index=returns.columns, name="mu")
