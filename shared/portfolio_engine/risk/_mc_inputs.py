"""Inputs of the regime-switching Monte Carlo: the model (daily units) and the portfolio weights, checked.

Every bad input raises :class:`~portfolio_engine.exceptions.RiskInputError` naming the value received.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskInputError

__all__ = ["Innovations", "RegimeSwitchingModel", "check_weights"]

Innovations = Literal["normal", "student_t"]

#: Tolerance on probability vectors (transition rows, initial probabilities) summing to one.
PROBABILITY_TOLERANCE = 1e-8
#: Tolerance on the weights summing to the budget.
BUDGET_TOLERANCE = 1e-6
#: Most negative eigenvalue accepted, relative to the largest one (round-off of a covariance in float64).
PSD_TOLERANCE = 1e-10
#: Largest ``|cov - cov'|`` accepted, relative to the largest entry.
SYMMETRY_TOLERANCE = 1e-10


def _probabilities(values: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    array = np.array(values, dtype="float64")
    if shape is not None and array.shape != shape:
        raise RiskInputError(
            f"{name} must have shape {shape}; got {array.shape}.",
            hint="Give one probability per regime, in the order of the transition matrix's rows.",
        )
    if not np.isfinite(array).all() or (array < 0).any():
        raise RiskInputError(
            f"{name} holds negative or non-finite probabilities: {array.tolist()}.",
            hint="Pass probabilities (the regime model's transmat_ / filtered probabilities), not scores.",
        )
    sums = array.sum(axis=-1)
    worst = float(np.abs(sums - 1.0).max())
    if worst > PROBABILITY_TOLERANCE:
        raise RiskInputError(
            f"{name} is not stochastic: its rows sum to {np.atleast_1d(sums).tolist()}.",
            hint="Each row (a probability vector) must sum to one.",
        )
    return array / sums[..., None] if array.ndim > 1 else array / sums


def _covariances(values: Any, n_regimes: int, n_assets: int) -> np.ndarray:
    covs = np.array(values, dtype="float64")
    if covs.shape != (n_regimes, n_assets, n_assets):
        raise RiskInputError(
            f"covariances must have shape ({n_regimes}, {n_assets}, {n_assets}); got {covs.shape}.",
            hint="Give one daily covariance matrix per regime, assets in the order of the means.",
        )
    if not np.isfinite(covs).all():
        raise RiskInputError("covariances hold NaN or infinite values.", hint="Re-estimate the regime moments.")
    for k in range(n_regimes):
        cov = covs[k]
        scale = max(float(np.abs(cov).max()), 1e-300)
        asymmetry = float(np.abs(cov - cov.T).max())
        if asymmetry > SYMMETRY_TOLERANCE * scale:
            raise RiskInputError(
                f"covariance of regime {k} is not symmetric (max |C - C'| = {asymmetry:.3g}).",
                hint="Pass a covariance matrix, e.g. (C + C.T) / 2.",
            )
        smallest = float(np.linalg.eigvalsh((cov + cov.T) / 2.0)[0]) if n_assets else 0.0
        if smallest < -PSD_TOLERANCE * scale:
            raise RiskInputError(
                f"covariance of regime {k} is not positive semidefinite (smallest eigenvalue {smallest:.3g}).",
                hint="Repair it first (portfolio_engine.optimization.repair_psd) or use a shrinkage estimator.",
            )
        covs[k] = (cov + cov.T) / 2.0
    return covs


@dataclass(frozen=True, eq=False)
class RegimeSwitchingModel:
    """A Markov chain over regimes with per-regime DAILY return moments: the Monte Carlo's input model.

    Within regime ``k`` a day's simple asset returns are ``r = mu_k + eps`` with ``eps`` of covariance
    ``Sigma_k``: multivariate Normal, or multivariate Student-t with ``dof`` degrees of freedom scaled to
    have covariance ``Sigma_k`` (standardised t; needs ``dof > 2``). The regime of the first simulated day
    is drawn from ``initial @ transition`` (``initial`` holds today's filtered probabilities), then each
    day's regime from the previous day's row of ``transition``.

    Parameters
    ----------
    transition : array-like of shape (n_regimes, n_regimes)
        Row-stochastic transition matrix ``P[i, j] = P(s_{t+1} = j | s_t = i)`` (e.g. ``HMMRegimeDetector.transmat_``).
    initial : array-like of shape (n_regimes,)
        Probabilities of today's regime (the last row of ``predict_proba``).
    means : array-like of shape (n_regimes, n_assets)
        Daily expected simple returns per regime.
    covariances : array-like of shape (n_regimes, n_assets, n_assets)
        Daily covariances per regime, symmetric positive semidefinite.
    assets : sequence of hashable, optional
        Asset labels in column order (default ``0 .. n_assets - 1``).
    states : sequence of hashable, optional
        Regime labels in row order (default ``0 .. n_regimes - 1``).
    innovations : {"normal", "student_t"}, default "normal"
    dof : float, optional
        Degrees of freedom of the Student-t innovations (> 2); required for ``"student_t"``.

    Raises
    ------
    RiskInputError
        Shapes that do not agree, a transition matrix or initial vector that is not stochastic, NaN means,
        a covariance that is not symmetric PSD, unknown innovations, or a missing or invalid ``dof``.
    """

    transition: np.ndarray
    initial: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    assets: tuple[Hashable, ...] = ()
    states: tuple[Hashable, ...] = ()
    innovations: Innovations = "normal"
    dof: float | None = None
    _asset_position: dict[Hashable, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        transition = np.array(self.transition, dtype="float64")
        if transition.ndim != 2 or transition.shape[0] != transition.shape[1] or transition.shape[0] < 1:
            raise RiskInputError(
                f"transition must be a square (n_regimes, n_regimes) matrix; got shape {transition.shape}.",
                hint="Pass the regime model's transition matrix (HMMRegimeDetector.transmat_).",
            )
        n_regimes = transition.shape[0]
        transition = _probabilities(transition, "transition")
        initial = _probabilities(self.initial, "initial", (n_regimes,))
        means = np.array(self.means, dtype="float64")
        if means.ndim != 2 or means.shape[0] != n_regimes or means.shape[1] < 1:
            raise RiskInputError(
                f"means must have shape ({n_regimes}, n_assets); got {means.shape}.",
                hint="Give one row of daily expected returns per regime.",
            )
        if not np.isfinite(means).all():
            raise RiskInputError("means hold NaN or infinite values.", hint="Re-estimate the regime moments.")
        n_assets = means.shape[1]
        covariances = _covariances(self.covariances, n_regimes, n_assets)
        assets = tuple(self.assets) if len(self.assets) else tuple(range(n_assets))
        states = tuple(self.states) if len(self.states) else tuple(range(n_regimes))
        if len(assets) != n_assets or len(set(assets)) != n_assets:
            raise RiskInputError(
                f"assets must be {n_assets} distinct labels; got {list(assets)}.",
                hint="Name each column of the means once.",
            )
        if len(states) != n_regimes or len(set(states)) != n_regimes:
            raise RiskInputError(
                f"states must be {n_regimes} distinct labels; got {list(states)}.",
                hint="Name each regime once.",
            )
        if self.innovations not in ("normal", "student_t"):
            raise RiskInputError(f"Unknown innovations {self.innovations!r}.", hint="Choose 'normal' or 'student_t'.")
        dof = None if self.dof is None else float(self.dof)
        if self.innovations == "student_t" and (dof is None or not math.isfinite(dof) or dof <= 2.0):
            raise RiskInputError(
                f"Student-t innovations need dof > 2 (finite variance); got dof={self.dof!r}.",
                hint="Pass e.g. dof=5, or innovations='normal'.",
            )
        for name, value in (
            ("transition", transition),
            ("initial", initial),
            ("means", means),
            ("covariances", covariances),
            ("assets", assets),
            ("states", states),
            ("dof", dof if self.innovations == "student_t" else None),
        ):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_asset_position", {a: i for i, a in enumerate(assets)})

    @property
    def n_regimes(self) -> int:
        """Number of regimes ``K``."""
        return int(self.transition.shape[0])

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return int(self.means.shape[1])

    @classmethod
    def from_regime_moments(
        cls,
        regime_moments: Mapping[Hashable, Any],
        transition: Any,
        initial: Any,
        *,
        periods_per_year: int = 252,
        innovations: Innovations = "normal",
        dof: float | None = None,
    ) -> RegimeSwitchingModel:
        """Build the model from ANNUAL per-regime moments (e.g. ``regime_conditional_moments``).

        Annual moments are divided by ``periods_per_year`` (the inverse of how ``regime_conditional_moments``
        annualises daily moments).

        Parameters
        ----------
        regime_moments : mapping state -> Moments
            Annual ``mu`` (Series) and ``cov`` (DataFrame) per regime, in the order of ``transition``'s rows
            (a :class:`~portfolio_engine.optimization.RegimeMoments` iterates in its posterior's column order).
        transition : array-like of shape (n_regimes, n_regimes)
        initial : array-like of shape (n_regimes,) or Series / mapping keyed by state
        periods_per_year : int, default 252
        innovations : {"normal", "student_t"}, default "normal"
        dof : float, optional

        Returns
        -------
        RegimeSwitchingModel

        Raises
        ------
        RiskInputError
            No regime, regimes over different assets, an ``initial`` mapping with other states, or any
            check of the model itself.
        """
        states = list(regime_moments)
        if not states:
            raise RiskInputError("regime_moments is empty.", hint="Estimate at least one regime's moments.")
        if not isinstance(periods_per_year, int | np.integer) or periods_per_year <= 0:
            raise RiskInputError(
                f"periods_per_year must be a positive integer; got {periods_per_year!r}.", hint="Use 252 for days."
            )
        assets = list(regime_moments[states[0]].mu.index)
        means, covs = [], []
        for state in states:
            moments = regime_moments[state]
            if list(moments.mu.index) != assets:
                raise RiskInputError(
                    f"Regime {state!r} covers assets {list(moments.mu.index)}; regime {states[0]!r} covers {assets}.",
                    hint="Estimate every regime on the same universe, in the same order.",
                )
            means.append(moments.mu.to_numpy(dtype="float64") / periods_per_year)
            covs.append(moments.cov.loc[assets, assets].to_numpy(dtype="float64") / periods_per_year)
        if isinstance(initial, Mapping | pd.Series):
            given = dict(initial.items())
            if set(given) != set(states):
                raise RiskInputError(
                    f"initial is keyed by {sorted(map(str, given))}; the regimes are {sorted(map(str, states))}.",
                    hint="Key the initial probabilities by the regime labels.",
                )
            initial = [given[s] for s in states]
        return cls(
            transition=transition,
            initial=initial,
            means=np.stack(means),
            covariances=np.stack(covs),
            assets=tuple(assets),
            states=tuple(states),
            innovations=innovations,
            dof=dof,
        )

    def weight_vector(self, weights: Any, *, budget: float = 1.0) -> np.ndarray:
        """The weights as a float64 vector in the model's asset order (see :func:`check_weights`)."""
        return check_weights(weights, self.assets, self._asset_position, budget=budget)

    def portfolio_moments(self, weights: Any, *, budget: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Daily mean ``w' mu_k`` and volatility ``sqrt(w' Sigma_k w)`` of the portfolio in each regime.

        Parameters
        ----------
        weights : Series indexed by asset, or array-like of shape (n_assets,)
        budget : float, default 1.0

        Returns
        -------
        means, volatilities : ndarray of shape (n_regimes,) each

        Raises
        ------
        RiskInputError
            Bad weights (see :func:`check_weights`).
        """
        w = self.weight_vector(weights, budget=budget)
        means = self.means @ w
        variances = np.einsum("i,kij,j->k", w, self.covariances, w)
        return means, np.sqrt(np.clip(variances, 0.0, None))

    def factors(self) -> np.ndarray:
        """Per-regime square roots ``L_k`` with ``L_k L_k' = Sigma_k``, of shape (n_regimes, n_assets, n_assets).

        Cholesky where it exists; a singular (PSD) covariance falls back to its eigen-decomposition.
        """
        out = np.empty_like(self.covariances)
        for k, cov in enumerate(self.covariances):
            try:
                out[k] = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                values, vectors = np.linalg.eigh(cov)
                out[k] = vectors * np.sqrt(np.clip(values, 0.0, None))
        return out


def check_weights(
    weights: Any,
    assets: Sequence[Hashable],
    positions: Mapping[Hashable, int] | None = None,
    *,
    budget: float = 1.0,
) -> np.ndarray:
    """Validate portfolio weights and return them as a float64 vector in ``assets`` order.

    Parameters
    ----------
    weights : Series indexed by asset, or array-like of shape (n_assets,)
        A Series may omit assets (weight 0) but not name assets outside ``assets``; an array is in
        ``assets`` order.
    assets : sequence of hashable
    positions : mapping asset -> column, optional
        ``{asset: i}`` for ``assets`` (computed if not given).
    budget : float, default 1.0
        What the weights must sum to (within 1e-6).

    Returns
    -------
    ndarray of shape (n_assets,)

    Raises
    ------
    RiskInputError
        NaN or infinite weights, unknown or duplicate assets, a wrong length, or weights that do not sum to
        the budget.
    """
    positions = positions if positions is not None else {a: i for i, a in enumerate(assets)}
    if isinstance(weights, pd.Series):
        unknown = [a for a in weights.index if a not in positions]
        if unknown:
            raise RiskInputError(
                f"weights name assets the model does not know: {[str(a) for a in unknown]}.",
                hint=f"Use the model's assets {[str(a) for a in assets]}.",
            )
        if weights.index.has_duplicates:
            raise RiskInputError(
                f"weights name assets twice: {sorted({str(a) for a in weights.index[weights.index.duplicated()]})}.",
                hint="Give each asset one weight.",
            )
        w = np.zeros(len(assets))
        values = pd.to_numeric(weights, errors="coerce").to_numpy(dtype="float64")
        w[[positions[a] for a in weights.index]] = values
        given = values
    else:
        try:
            w = np.array(weights, dtype="float64").reshape(-1)
        except (TypeError, ValueError) as exc:
            raise RiskInputError(f"weights are not numbers ({exc}).", hint="Pass a Series of floats.") from exc
        if w.shape != (len(assets),):
            raise RiskInputError(
                f"weights have {w.size} entries; the model has {len(assets)} assets.",
                hint="Pass a Series indexed by asset, or one weight per asset in the model's order.",
            )
        given = w
    if not np.isfinite(given).all():
        raise RiskInputError(
            f"weights hold NaN or infinite values: {given.tolist()}.", hint="Fill or drop them; weights must be finite."
        )
    total = float(w.sum())
    if abs(total - budget) > BUDGET_TOLERANCE:
        raise RiskInputError(
            f"weights sum to {total:.8g}; the budget is {budget:g}.",
            hint="Normalise the weights to the budget, or pass the budget they were built for.",
        )
    return w
