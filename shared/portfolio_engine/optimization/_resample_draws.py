"""Simulated histories for the resampled frontier: parametric (multivariate normal) or bootstrap draws."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization.mean_variance import arrays_of
from portfolio_engine.optimization.moments import Moments

__all__ = ["Sampling", "Seed", "draw_moments", "moment_arrays"]

Sampling = Literal["parametric", "bootstrap"]
Seed = int | np.random.SeedSequence | None


def moment_arrays(moments: Moments) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``(assets, mu, cov)`` with asset names as a tuple of str."""
    names, mu, cov = arrays_of(moments)
    return tuple(str(a) for a in names), mu, cov


def _seed_sequence(seed: Seed) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def draw_moments(
    moments: Moments,
    *,
    n_resamples: int,
    n_observations: int | None = None,
    returns: pd.DataFrame | None = None,
    sampling: Sampling = "parametric",
    seed: Seed = None,
    periods_per_year: int = 252,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(mu, cov)`` re-estimated (annual) on each simulated history, in ``moments.mu``'s asset order.

    Parameters
    ----------
    moments : Moments
        Annual moments the parametric draws come from.
    n_resamples : int
        Number of draws (>= 1).
    n_observations : int, optional
        Length of each simulated history; default ``len(returns)``.
    returns : DataFrame of shape (n_observations, n_assets), optional
        Historical per-period returns; required for ``"bootstrap"``.
    sampling : {"parametric", "bootstrap"}, default "parametric"
    seed : int or SeedSequence, optional
        Root of the draws' streams (None: fresh entropy, not reproducible).
    periods_per_year : int, default 252

    Yields
    ------
    tuple of (ndarray of shape (n_assets,), ndarray of shape (n_assets, n_assets))

    Raises
    ------
    SpecificationError
        Bad counts, an unknown sampling, or missing / misaligned returns.
    """
    assets, mu, cov = moment_arrays(moments)
    length = n_observations if n_observations is not None else (len(returns) if returns is not None else None)
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise SpecificationError(f"n_resamples must be an integer >= 1; got {n_resamples!r}.", hint="Use e.g. 100.")
    if length is None or length < 2:
        raise SpecificationError(
            f"Each draw needs a history length >= 2; got n_observations={length!r}.",
            hint="Pass n_observations (the estimation window, e.g. 252) or the returns the moments came from.",
        )
    if sampling not in ("parametric", "bootstrap"):
        raise SpecificationError(f"Unknown sampling {sampling!r}.", hint="Use 'parametric' or 'bootstrap'.")
    history = None
    if sampling == "bootstrap":
        if returns is None or not set(assets) <= {str(c) for c in returns.columns}:
            raise SpecificationError(
                "Bootstrap sampling needs the historical returns of every asset.", hint="Pass returns=..."
            )
        history = returns.rename(columns=str)[list(assets)].to_numpy(dtype=float)
        if not np.isfinite(history).all():
            raise SpecificationError("returns hold NaN or infinite values.", hint="Use returns.dropna().")
    values, vectors = np.linalg.eigh(cov / periods_per_year)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))  # root @ root.T = per-period covariance, PSD-safe
    for child in _seed_sequence(seed).spawn(int(n_resamples)):
        rng = np.random.default_rng(child)
        if history is None:
            sample = mu / periods_per_year + rng.standard_normal((length, len(assets))) @ root.T
        else:
            sample = history[rng.integers(0, len(history), size=length)]
        yield sample.mean(axis=0) * periods_per_year, np.cov(sample, rowvar=False) * periods_per_year
