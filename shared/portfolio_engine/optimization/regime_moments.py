"""Regime-conditional moments: per-regime means and covariances weighted by an HMM posterior, and their blend.

``regime_conditional_moments`` weights each observation by the probability that it belongs to each
regime (the smoothed or filtered posterior of a regime model). ``blend_moments`` mixes per-regime
moments with the next period's regime probabilities into the moments of the mixture (law of total
variance, with the spread of the regime means scaled to how long a regime draw is held).

A regime the sample hardly visits has a small effective sample size ``(sum w)^2 / sum w^2``. Below
``min_effective_observations`` the default (``on_sparse="shrink"``) moves its moments toward the
pooled (unconditional) estimate, linearly in the effective sample size; ``on_sparse="raise"`` raises
:class:`~portfolio_engine.exceptions.InsufficientDataError` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import DataError, InsufficientDataError, SpecificationError
from portfolio_engine.optimization._checks import check_positive, check_returns
from portfolio_engine.optimization.moments import Moments

__all__ = ["RegimeMoments", "blend_moments", "regime_conditional_moments"]

logger = logging.getLogger(__name__)

#: Tolerance on posterior rows and blend probabilities summing to one.
PROBABILITY_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class RegimeMoments(Mapping[Hashable, Moments]):
    """Per-regime moments: a read-only mapping ``state -> Moments``, with how much data stood behind each.

    Attributes
    ----------
    moments : dict
        ``state -> Moments`` (annual), in the posterior's column order.
    effective_sample_size : Series of shape (n_states,)
        ``(sum_t w_tk)^2 / sum_t w_tk^2`` per state.
    own_weight : Series of shape (n_states,)
        Weight of the regime's own estimate against the pooled one (1.0 when no shrinkage was needed).
    """

    moments: dict[Hashable, Moments]
    effective_sample_size: pd.Series
    own_weight: pd.Series

    def __getitem__(self, state: Hashable) -> Moments:
        return self.moments[state]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.moments)

    def __len__(self) -> int:
        return len(self.moments)


def regime_conditional_moments(
    returns: pd.DataFrame,
    posterior: pd.DataFrame | np.ndarray,
    *,
    periods_per_year: int = 252,
    min_effective_observations: float | None = None,
    on_sparse: Literal["shrink", "raise"] = "shrink",
) -> RegimeMoments:
    """Posterior-weighted mean and covariance of the returns in each regime, annualised.

    With weights ``w_t = posterior[t, k]``, normalised ``v_t = w_t / sum w``, the regime's mean is
    ``m = sum v_t r_t`` and its covariance ``sum v_t (r_t - m)(r_t - m)' / (1 - sum v_t^2)``: the
    unbiased estimate for reliability weights, which is the ddof=1 sample covariance of the regime's
    observations when the posterior is one-hot.

    Parameters
    ----------
    returns : DataFrame of shape (n_observations, n_assets)
    posterior : DataFrame or ndarray of shape (n_observations, n_states)
        Regime probabilities per observation, rows summing to one. A DataFrame must have the same
        index as ``returns``; its columns name the states (an array's states are 0, 1, ...).
    periods_per_year : int, default 252
    min_effective_observations : float, optional
        Effective sample size below which a regime is sparse. Default ``max(2 * n_assets, 20)``.
    on_sparse : {"shrink", "raise"}, default "shrink"
        ``shrink``: ``own = n_eff / min_effective_observations`` (0 if ``n_eff <= 1``), and the regime
        gets ``own * own_estimate + (1 - own) * pooled`` for the mean and the covariance (pooled: the
        plain sample moments, ddof=1). ``raise``: raise instead.

    Returns
    -------
    RegimeMoments

    Raises
    ------
    DataError
        Bad returns, a posterior of the wrong shape or index, negative or non-finite probabilities,
        rows not summing to one.
    InsufficientDataError
        A sparse regime with ``on_sparse="raise"``.
    SpecificationError
        Unknown ``on_sparse``.

    References
    ----------
    Hamilton, J. D. (1989), "A new approach to the economic analysis of nonstationary time series and the
    business cycle", Econometrica 57(2), 357-384.
    """
    if on_sparse not in ("shrink", "raise"):
        raise SpecificationError(f"Unknown on_sparse {on_sparse!r}.", hint="Choose 'shrink' or 'raise'.")
    values = check_returns(returns)
    weights, states = _check_posterior(posterior, returns.index)
    n_assets = values.shape[1]
    threshold = float(max(2 * n_assets, 20) if min_effective_observations is None else min_effective_observations)
    pooled_mean = values.mean(axis=0)
    pooled_cov = np.cov(values, rowvar=False, ddof=1).reshape(n_assets, n_assets)

    result: dict[Hashable, Moments] = {}
    sizes, owns = [], []
    for k, state in enumerate(states):
        w = weights[:, k]
        total, squares = float(w.sum()), float(w @ w)
        n_eff = total**2 / squares if squares > 0 else 0.0
        # n_eff <= 1: a single (effective) observation has no covariance at all.
        own = 0.0 if n_eff <= 1.0 else (1.0 if n_eff >= threshold else n_eff / threshold)
        if own < 1.0 and on_sparse == "raise":
            raise InsufficientDataError(
                f"Regime {state!r} has an effective sample of {n_eff:.1f} observations; "
                f"{threshold:g} are needed for {n_assets} assets.",
                hint="Use a longer history or fewer states, lower min_effective_observations, or on_sparse='shrink'.",
            )
        if own > 0.0:
            v = w / total
            mean = v @ values
            centered = values - mean
            cov = (centered * v[:, None]).T @ centered / (1.0 - float(v @ v))
            mean = own * mean + (1.0 - own) * pooled_mean
            cov = own * cov + (1.0 - own) * pooled_cov
        else:
            mean, cov = pooled_mean, pooled_cov
        if own < 1.0:
            # Expected with short windows (the result reports effective_sample_size and own_weight): not a warning.
            logger.info(
                "regime %s: effective sample %.1f, shrunk toward the pooled moments (own weight %.2f)",
                state,
                n_eff,
                own,
            )
        result[state] = Moments(
            mu=pd.Series(mean * periods_per_year, index=returns.columns),
            cov=pd.DataFrame(cov * periods_per_year, index=returns.columns, columns=returns.columns),
        )
        sizes.append(n_eff)
        owns.append(own)
    index = pd.Index(states, name="state")
    return RegimeMoments(
        moments=result,
        effective_sample_size=pd.Series(sizes, index=index, name="effective_sample_size"),
        own_weight=pd.Series(owns, index=index, name="own_weight"),
    )


def _check_posterior(posterior: pd.DataFrame | np.ndarray, index: pd.Index) -> tuple[np.ndarray, list[Hashable]]:
    if isinstance(posterior, pd.DataFrame):
        if not posterior.index.equals(index):
            raise DataError(
                f"posterior ({len(posterior)} rows) is not indexed like the returns ({len(index)} rows).",
                hint="Reindex the posterior to the returns' dates (posterior.reindex(returns.index)) or pass an array.",
            )
        states: list[Hashable] = list(posterior.columns)
        values = posterior.to_numpy(dtype="float64", copy=True)
    else:
        values = np.array(posterior, dtype="float64")
        states = list(range(values.shape[1])) if values.ndim == 2 else []
    if values.ndim != 2 or values.shape[0] != len(index) or values.shape[1] < 1:
        raise DataError(
            f"posterior must have shape ({len(index)}, n_states); got {values.shape}.",
            hint="Pass one row of regime probabilities per return observation.",
        )
    if not np.isfinite(values).all() or (values < -PROBABILITY_TOLERANCE).any():
        raise DataError("posterior holds negative or non-finite probabilities.", hint="Pass the model's posterior.")
    row_sums = values.sum(axis=1)
    worst = float(np.abs(row_sums - 1.0).max())
    if worst > PROBABILITY_TOLERANCE:
        raise DataError(
            f"posterior rows must sum to one; the worst sums to {row_sums[np.argmax(np.abs(row_sums - 1.0))]:.6g}.",
            hint="Pass probabilities (predict_proba), not labels or scores.",
        )
    return np.clip(values, 0.0, None), states


def blend_moments(
    per_regime: Mapping[Hashable, Moments] | Sequence[Moments],
    probabilities: Mapping[Hashable, float] | Sequence[float] | np.ndarray | pd.Series,
    *,
    horizon_periods: float = 1.0,
    periods_per_year: int = 252,
) -> Moments:
    """Annualised moments of the mixture of regimes with the given probabilities (law of total variance).

    The regime is drawn with probabilities ``p`` and held for ``h = horizon_periods`` periods; with ``tau =
    h / periods_per_year`` years, the return over the horizon has mean ``tau mu`` and covariance
    ``tau sum_k p_k Sigma_k + tau^2 (sum_k p_k mu_k mu_k' - mu mu')``. Annualised (divided by ``tau``):

        ``mu = sum_k p_k mu_k``,   ``cov = sum_k p_k Sigma_k + tau (sum_k p_k mu_k mu_k' - mu mu')``.

    The spread of the regime means adds to the covariance in proportion to how long a draw of the regime
    lasts. The default (one period) is the one-step-ahead predictive distribution of a regime model, whose
    probabilities are those of the next period's state: there the spread of annual means counts
    ``1 / periods_per_year`` of its square. ``horizon_periods = periods_per_year`` holds the regime for a whole
    year, where the spread of annual means counts in full (it can then dominate the covariance: a +30 %/-40 %
    pair of regime means at 50/50 adds a variance of 0.1225, a 35 % volatility, to every asset).

    Parameters
    ----------
    per_regime : mapping state -> Moments (e.g. :class:`RegimeMoments`), or a sequence of Moments
        Every regime's annual moments over the same assets.
    probabilities : mapping or Series state -> probability, or a sequence in the order of ``per_regime``
        Non-negative, summing to one (within 1e-6; renormalised).
    horizon_periods : float, default 1.0
        Periods the drawn regime is held for (e.g. 21 for a month of daily periods), > 0.
    periods_per_year : int, default 252
        Periods per year of the regime model (252 for daily regimes).

    Returns
    -------
    Moments

    Raises
    ------
    SpecificationError
        No regime, states or assets that do not match, probabilities that are negative, not finite
        or do not sum to one, or a horizon or ``periods_per_year`` that is not positive.
    """
    horizon_years = check_positive(horizon_periods, "horizon_periods") / check_positive(
        periods_per_year, "periods_per_year"
    )
    if isinstance(per_regime, Mapping):
        states: list[Hashable] = list(per_regime)
        regimes = [per_regime[s] for s in states]
        if isinstance(probabilities, Mapping | pd.Series):
            given = dict(probabilities.items())
            if set(given) != set(states):
                raise SpecificationError(
                    f"probabilities are for states {sorted(map(str, given))}; "
                    f"the regimes are {sorted(map(str, states))}.",
                    hint="Give one probability per regime, keyed by the same state labels.",
                )
            probs = np.array([given[s] for s in states], dtype="float64")
        else:
            probs = np.asarray(probabilities, dtype="float64")
    else:
        regimes = list(per_regime)
        probs = np.asarray(
            list(probabilities.values()) if isinstance(probabilities, Mapping) else probabilities, dtype="float64"
        )
    if not regimes or probs.shape != (len(regimes),):
        raise SpecificationError(
            f"Need one probability per regime: {len(regimes)} regime(s), probabilities of shape {probs.shape}.",
            hint="Pass the current regime probabilities in the order (or with the labels) of the regimes.",
        )
    if not np.isfinite(probs).all() or (probs < 0).any() or abs(probs.sum() - 1.0) > PROBABILITY_TOLERANCE:
        raise SpecificationError(
            f"Regime probabilities must be non-negative and sum to one; got {probs.tolist()}.",
            hint="Pass the regime model's current posterior (a probability vector).",
        )
    probs = probs / probs.sum()
    assets = regimes[0].assets
    for regime in regimes[1:]:
        if not (len(regime.assets) == len(assets) and regime.assets.isin(assets).all()):
            raise SpecificationError(
                f"The regimes' moments cover different assets: {[str(a) for a in assets]} and "
                f"{[str(a) for a in regime.assets]}.",
                hint="Estimate every regime on the same universe.",
            )
    mus = np.stack([r.mu.reindex(assets).to_numpy() for r in regimes])
    covs = np.stack([r.cov.loc[assets, assets].to_numpy() for r in regimes])
    mu = probs @ mus
    # The spread of the means, sum_k p_k (mu_k - mu)(mu_k - mu)', computed centred (no cancellation).
    spread = np.einsum("k,ki,kj->ij", probs, mus - mu, mus - mu)
    cov = np.einsum("k,kij->ij", probs, covs) + horizon_years * spread
    return Moments(mu=pd.Series(mu, index=assets), cov=pd.DataFrame((cov + cov.T) / 2.0, index=assets, columns=assets))
