"""Hidden Markov regime detector: Gaussian or Gaussian-mixture HMM (hmmlearn) behind the regime contract."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from portfolio_engine.exceptions import ConvergenceError
from portfolio_engine.regime._base import BaseRegimeModel, RegimeSummary, default_state_names
from portfolio_engine.regime._hmm_fit import (
    RestartResult,
    component_parameters,
    count_parameters,
    fit_states,
    minimum_observations,
    relabel,
    single_threaded,
    state_moments,
)
from portfolio_engine.regime._hmm_params import check_hyperparameters, order_feature_index
from portfolio_engine.regime._markov import (
    expected_durations,
    forward_filter,
    mixture_log_density,
    stationary_distribution,
)

logger = logging.getLogger(__name__)


@dataclass
class _Candidate:
    """The retained run for one number of states, with its restarts' log-likelihoods and criteria."""

    best: RestartResult
    log_likelihoods: np.ndarray
    bic: float
    aic: float
    n_parameters: int

    def criterion(self, name: str) -> float:
        return self.bic if name == "bic" else self.aic


class HMMRegimeDetector(BaseRegimeModel):
    """Regimes from a hidden Markov model with Gaussian (or Gaussian-mixture) emissions.

    EM (hmmlearn) runs from ``n_restarts`` starting points, screened by a short run; the best
    log-likelihood among the runs that converged is kept. States are then renumbered by the
    variance of one feature, calmest first, so state 0 means the same thing across refits and seeds.
    Features are multiplied by ``scale`` before fitting because hmmlearn's covariance floor and
    priors are absolute: with daily returns in decimals (variance ~4e-4) they would act as a strong
    prior. Every learned attribute is reported back in the caller's units.

    ``predict_proba`` gives filtered probabilities (forward algorithm, data up to each row);
    ``smoothed_proba`` and ``viterbi`` look at the whole sample and are for analysis only.

    Parameters
    ----------
    n_states : int or {"bic", "aic"}, default=2
        Number of hidden states, or the criterion that picks it among ``candidate_states``.
    candidate_states : sequence of int, default=(2, 3, 4)
        Numbers of states tried when ``n_states`` is a criterion.
    covariance_type : {"full", "diag", "spherical", "tied"}, default="full"
        Covariance structure of each state (of each mixture component when ``n_mix > 1``; then
        "tied" means one matrix per state shared by its components).
    n_mix : int, default=1
        Gaussian components per state; ``> 1`` fits a GMM-HMM.
    n_restarts : int, default=10
        EM runs from different starting points (see ``screen_iter``).
    n_iter : int, default=1000
        EM iteration budget per run; a run that spends it without converging is discarded.
    tol : float, default=1e-4
        Convergence threshold on the change of the total log-likelihood (scaled units) between
        the last two EM iterations.
    screen_iter : int, default=30
        EM iterations every restart gets before only the ``n_finalists`` best continue to
        convergence; ``0`` (or ``>= n_iter``) runs every restart to convergence.
    n_finalists : int, default=3
        Restarts that continue after screening.
    scale : float, default=100.0
        Features are multiplied by it before fitting (100: returns in percent).
    min_covar : float, default=1e-3
        Floor added to covariance diagonals at initialisation, in scaled units.
    order_by : int or str, default=0
        Feature (position, or name when fitted on a DataFrame) whose per-state variance orders the
        states: state 0 is the calmest.
    random_state : int, SeedSequence or None, default=None
        Root of the restart seeds (``SeedSequence(random_state)`` children).

    Attributes
    ----------
    model_ : hmmlearn.hmm.GaussianHMM or hmmlearn.hmm.GMMHMM
        The fitted model, relabelled, working on scaled features.
    n_states_ : int
    state_names_ : tuple of str
        ``("calm", "turbulent")``, ``("calm", "normal", "turbulent")`` or ``("state_0", ...)``.
    startprob_ : ndarray of shape (n_states,)
    transmat_ : ndarray of shape (n_states, n_states)
    means_ : ndarray of shape (n_states, n_features)
        Per-state means in the caller's units (a mixture's overall mean).
    covars_ : ndarray of shape (n_states, n_features, n_features)
        Per-state full covariances in the caller's units, whatever ``covariance_type``.
    expected_durations_ : ndarray of shape (n_states,)
        ``1 / (1 - p_ii)`` periods.
    log_likelihood_ : float
        Training log-likelihood in the caller's units.
    n_parameters_ : int
    bic_, aic_ : float
    restart_log_likelihoods_ : ndarray of shape (n_restarts,)
        Per restart of the retained number of states, in the caller's units; NaN for runs that did not
        converge or were screened out.
    criterion_scores_ : dict of int to float
        Criterion per candidate number of states (NaN if none of its runs converged or the data are
        too short for it); only when ``n_states`` is a criterion.
    converged_ : bool
        Whether the retained run converged (always true after a successful fit).
    n_iter_ : int
        EM iterations of the retained run.
    n_obs_ : int
        Number of training observations.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    References
    ----------
    .. [1] Hamilton, J. D. (1989). "A new approach to the economic analysis of nonstationary time series
       and the business cycle." Econometrica 57(2), 357-384.
    .. [2] Rabiner, L. R. (1989). "A tutorial on hidden Markov models and selected applications in
       speech recognition." Proceedings of the IEEE 77(2), 257-286.
    .. [3] Biernacki, C., Celeux, G. and Govaert, G. (2003). "Choosing starting values for the EM
       algorithm for getting the highest likelihood in multivariate Gaussian mixture models."
       Computational Statistics & Data Analysis 41(3-4), 561-575.
    .. [4] Ang, A. and Bekaert, G. (2002). "International asset allocation with regime shifts."
       Review of Financial Studies 15(4), 1137-1187.
    """

    def __init__(
        self,
        n_states: int | str = 2,
        candidate_states: Sequence[int] = (2, 3, 4),
        covariance_type: str = "full",
        n_mix: int = 1,
        n_restarts: int = 10,
        n_iter: int = 1000,
        tol: float = 1e-4,
        screen_iter: int = 30,
        n_finalists: int = 3,
        scale: float = 100.0,
        min_covar: float = 1e-3,
        order_by: int | str = 0,
        random_state: int | np.random.SeedSequence | None = None,
    ) -> None:
        self.n_states = n_states
        self.candidate_states = candidate_states
        self.covariance_type = covariance_type
        self.n_mix = n_mix
        self.n_restarts = n_restarts
        self.n_iter = n_iter
        self.tol = tol
        self.screen_iter = screen_iter
        self.n_finalists = n_finalists
        self.scale = scale
        self.min_covar = min_covar
        self.order_by = order_by
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> HMMRegimeDetector:
        """Fit the HMM by EM with restarts, pick the number of states if asked, relabel the states.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_observations, n_features)
            Features, one row per period, oldest first, in the caller's units.
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        HMMRegimeDetector
            ``self``, fitted.

        Raises
        ------
        ConfigurationError
            If a hyperparameter is invalid.
        SchemaError
            If ``X`` is not numeric or not 2-D.
        NonFiniteFeaturesError
            If ``X`` holds NaN or infinite values.
        InsufficientDataError
            If ``X`` has fewer rows than the (smallest) model needs: ``max(2 k, 10 n_states)`` for ``k``
            free parameters.
        DegenerateDataError
            If a column of ``X`` is constant.
        ConvergenceError
            If no EM run converged within ``n_iter`` iterations (for any candidate number of states).
        """
        candidates = check_hyperparameters(self.get_params(deep=False))
        n_features = np.shape(X)[1] if np.ndim(X) == 2 else 1
        needed = {
            k: minimum_observations(count_parameters(k, n_features, self.covariance_type, int(self.n_mix)), k)
            for k in candidates
        }
        values = self._validate_fit_features(X, min_obs=min(needed.values()))
        names = getattr(self, "feature_names_in_", None)
        order_feature = order_feature_index(self.order_by, None if names is None else list(names), n_features)
        n_obs = values.shape[0]
        Xs = values * float(self.scale)
        # log p(x) = log p(scale x) + d log(scale): likelihoods are reported for the caller's units.
        jacobian = n_obs * n_features * math.log(float(self.scale))

        results: dict[int, _Candidate] = {}
        failures: list[str] = []
        for k in candidates:
            if n_obs < needed[k]:
                logger.warning("Skipping %d states: %d observations, %d needed", k, n_obs, needed[k])
                failures.append(f"{k} states: too few observations ({n_obs} < {needed[k]})")
                continue
            best, log_likelihoods = fit_states(
                Xs,
                k,
                covariance_type=self.covariance_type,
                n_mix=int(self.n_mix),
                n_restarts=int(self.n_restarts),
                n_iter=int(self.n_iter),
                tol=float(self.tol),
                min_covar=float(self.min_covar),
                screen_iter=int(self.screen_iter),
                n_finalists=int(self.n_finalists),
                random_state=self.random_state,
            )
            if best is None:
                failures.append(f"{k} states: none of {self.n_restarts} EM runs converged")
                continue
            n_params = count_parameters(k, n_features, self.covariance_type, int(self.n_mix))
            log_likelihood = best.log_likelihood + jacobian
            bic = -2.0 * log_likelihood + n_params * math.log(n_obs)
            aic = -2.0 * log_likelihood + 2.0 * n_params
            results[k] = _Candidate(best, log_likelihoods + jacobian, bic, aic, n_params)

        if not results:
            raise ConvergenceError(
                f"No HMM could be fitted on {n_obs} observations x {n_features} features "
                f"(covariance_type={self.covariance_type!r}, n_mix={self.n_mix}, n_iter={self.n_iter}, "
                f"tol={self.tol}): {'; '.join(failures)}."
            )
        if isinstance(self.n_states, str):
            criterion = str(self.n_states)
            self.criterion_scores_ = {
                k: (results[k].criterion(criterion) if k in results else math.nan) for k in candidates
            }
            chosen = min(results, key=lambda k: results[k].criterion(criterion))
        else:
            chosen = candidates[0]
            if hasattr(self, "criterion_scores_"):
                del self.criterion_scores_

        kept = results[chosen]
        model = kept.best.model
        relabel(model, order_feature)
        model.implementation = "log"  # smoothing and decoding in log space cannot underflow
        self.model_ = model
        self.n_states_ = chosen
        self.state_names_ = default_state_names(chosen)
        self.startprob_ = np.asarray(model.startprob_, dtype=np.float64).copy()
        self.transmat_ = np.asarray(model.transmat_, dtype=np.float64).copy()
        means, covariances = state_moments(model)
        self.means_ = means / float(self.scale)
        self.covars_ = covariances / float(self.scale) ** 2
        self.expected_durations_ = expected_durations(self.transmat_)
        self.log_likelihood_ = float(kept.best.log_likelihood + jacobian)
        self.n_parameters_ = kept.n_parameters
        self.bic_ = float(kept.bic)
        self.aic_ = float(kept.aic)
        self.restart_log_likelihoods_ = kept.log_likelihoods
        self.converged_ = bool(kept.best.converged)
        self.n_iter_ = kept.best.n_iter
        self.n_obs_ = n_obs
        return self

    # ---------------------------------------------------------------- inference
    def _log_emissions(self, X: Any) -> np.ndarray:
        values = self._validate_predict_features(X)
        weights, means, covariances = component_parameters(self.model_)
        with single_threaded():
            return mixture_log_density(values * float(self.scale), weights, means, covariances)

    def _filter(self, X: Any) -> tuple[np.ndarray, float]:
        log_emissions = self._log_emissions(X)
        filtered, log_likelihood = forward_filter(log_emissions, self.startprob_, self.transmat_)
        jacobian = log_emissions.shape[0] * self.n_features_in_ * math.log(float(self.scale))
        return filtered, log_likelihood + jacobian

    def predict_proba(self, X: Any) -> np.ndarray:
        """Filtered probabilities ``P(s_t | x_0..x_t)``: safe for decisions at time ``t``.

        The first row of ``X`` is treated as the first period of the sequence (prior ``startprob_``).

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first, in the caller's units.

        Returns
        -------
        ndarray of shape (n_observations, n_states)
            Row ``t`` depends on rows ``0..t`` only; columns follow ``state_names_``.

        Raises
        ------
        SchemaError, NonFiniteFeaturesError, InsufficientDataError
            If ``X`` does not match what ``fit`` saw or holds non-finite values.
        """
        return self._filter(X)[0]

    def predict_next_proba(self, X: Any) -> np.ndarray:
        """One-step-ahead probabilities ``P(s_{t+1} | x_0..x_t)`` = filtered @ ``transmat_``.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.

        Returns
        -------
        ndarray of shape (n_observations, n_states)
            Row ``t`` is the forecast for period ``t + 1`` made with data up to ``t``.
        """
        return np.asarray(self.predict_proba(X) @ self.transmat_)

    def smoothed_proba(self, X: Any) -> np.ndarray:
        """Smoothed probabilities ``P(s_t | x_0..x_{n-1})`` (forward-backward).

        For analysis only: row ``t`` uses data after ``t``, so it must not drive a decision at ``t``.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.

        Returns
        -------
        ndarray of shape (n_observations, n_states)
        """
        values = self._validate_predict_features(X)
        with single_threaded():
            return np.asarray(self.model_.predict_proba(values * float(self.scale)))

    def viterbi(self, X: Any) -> np.ndarray:
        """Most likely whole state path (Viterbi). For analysis only: it uses the whole sample.

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.

        Returns
        -------
        ndarray of int, shape (n_observations,)
        """
        values = self._validate_predict_features(X)
        with single_threaded():
            _, path = self.model_.decode(values * float(self.scale), algorithm="viterbi")
        return np.asarray(path, dtype=np.int64)

    def score(self, X: Any, y: Any = None) -> float:
        """Total log-likelihood of ``X`` in the caller's units (higher is better; GridSearchCV's default).

        Parameters
        ----------
        X : array-like of shape (n_observations, n_features)
            Features, oldest first.
        y : None
            Ignored.

        Returns
        -------
        float
            ``log p(x_0..x_{n-1})``.
        """
        return self._filter(X)[1]

    def summary(self) -> RegimeSummary:
        """What the model learned, as a frozen :class:`RegimeSummary` in the caller's units."""
        check_is_fitted(self, "n_states_")
        names = getattr(self, "feature_names_in_", None)
        return RegimeSummary(
            state_names=self.state_names_,
            startprob=self.startprob_,
            transmat=self.transmat_,
            stationary=stationary_distribution(self.transmat_),
            expected_durations=self.expected_durations_,
            means=self.means_,
            covariances=self.covars_,
            log_likelihood=self.log_likelihood_,
            bic=self.bic_,
            aic=self.aic_,
            n_parameters=self.n_parameters_,
            n_obs=self.n_obs_,
            feature_names=None if names is None else tuple(str(n) for n in names),
        )
