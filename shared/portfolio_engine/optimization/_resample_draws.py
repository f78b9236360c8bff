"""Simulated histories for the resampled frontier: parametric (multivariate normal) or bootstrap draws."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._checks import check_returns
from portfolio_engine.optimization._linalg import psd_factor
from portfolio_engine.optimization._mv_engine import arrays_of
from portfolio_engine.optimization.moments import Moments

__all__ = ["Sampling", "Seed", "draw_moments"]

Sampling = Literal["parametric", "bootstrap"]
Seed = int | np.random.SeedSequence | None


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
        Bad counts, an unknown sampling, or missing returns for bootstrap sampling.
    DataError
        Bootstrap returns with NaN or infinite values.
    """
    names, mu, cov = arrays_of(moments)
    assets = [str(a) for a in names]
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
        held = set() if returns is None else {str(c) for c in returns.columns}
        if missing := [a for a in assets if a not in held]:
            raise SpecificationError(
                f"Bootstrap sampling needs the historical returns of every asset; missing {missing}.",
                hint="Pass returns=... with a column per asset of the moments.",
            )
        assert returns is not None
        history = check_returns(returns.rename(columns=str)[assets], reject_constant=False)
    factor = psd_factor(cov / periods_per_year)  # factor' factor = per-period covariance, PSD-safe
    for child in _seed_sequence(seed).spawn(int(n_resamples)):
        rng = np.random.default_rng(child)
        if history is None:
            sample = mu / periods_per_year + rng.standard_normal((length, len(assets))) @ factor
        else:
            sample = history[rng.integers(0, len(history), size=length)]
        yield sample.mean(axis=0) * periods_per_year, np.cov(sample, rowvar=False) * periods_per_year
