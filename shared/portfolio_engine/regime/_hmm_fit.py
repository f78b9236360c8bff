"""hmmlearn glue for :class:`HMMRegimeDetector`: building, initialising, restarting and relabelling models.

Everything here works in *scaled* units (the caller's features times ``scale``); the estimator converts
back. hmmlearn's model objects are mutated in place (relabelling) and read through their public
attributes, except ``GaussianHMM._covars_``, the compact covariance storage that ``covars_`` expands.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from hmmlearn.hmm import GMMHMM, GaussianHMM
from threadpoolctl import ThreadpoolController

logger = logging.getLogger(__name__)

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
#: Range of the random per-state scaling of the sample covariance in restarts after the first.
_COVARIANCE_SPREAD = 4.0
#: Range of the diagonal of the random initial transition matrices (regimes persist).
_INITIAL_STAY = (0.80, 0.99)


def count_parameters(n_states: int, n_features: int, covariance_type: str, n_mix: int = 1) -> int:
    """Number of free parameters of a Gaussian (``n_mix = 1``) or Gaussian-mixture HMM.

    Parameters
    ----------
    n_states, n_features, n_mix : int
        Model size.
    covariance_type : {"full", "diag", "spherical", "tied"}
        Covariance structure; with ``n_mix > 1``, "tied" means one matrix per state shared by its
        mixture components (hmmlearn's GMMHMM), otherwise one matrix shared by all states.

    Returns
    -------
    int
        Start probabilities ``K - 1``, transitions ``K (K - 1)``, mixture weights ``K (M - 1)``, means
        ``K M d`` and the covariance parameters.
    """
    k, d, m = n_states, n_features, n_mix
    tri = d * (d + 1) // 2
    if m == 1:
        covariance = {"full": k * tri, "diag": k * d, "spherical": k, "tied": tri}[covariance_type]
    else:
        covariance = {"full": k * m * tri, "diag": k * m * d, "spherical": k * m, "tied": k * tri}[covariance_type]
    return (k - 1) + k * (k - 1) + k * (m - 1) + k * m * d + covariance


def minimum_observations(n_parameters: int, n_states: int) -> int:
    """Fewest observations accepted for a fit: two per free parameter and ten per state."""
    return max(2 * n_parameters, 10 * n_states)


@lru_cache(maxsize=1)
def _thread_pools() -> ThreadpoolController:
    # Built once (inspecting the loaded libraries costs ~2 ms); hmmlearn has already loaded scipy's
    # BLAS and scikit-learn's OpenMP runtime when this module is imported.
    return ThreadpoolController()


def single_threaded() -> Any:
    """Context manager limiting BLAS and OpenMP to one thread.

    EM works on (n_obs, n_features) blocks with a handful of features: a multithreaded BLAS spends
    more time synchronising than computing (measured 5x slower with 2 threads on a busy 2-core box).
    """
    return _thread_pools().limit(limits=1)


@dataclass
class RestartResult:
    """One EM run: the model, its log-likelihood in scaled units (NaN if it failed), and whether EM converged."""

    model: Any
    log_likelihood: float
    converged: bool
    n_iter: int
    last_delta: float


def make_model(
    n_states: int,
    covariance_type: str,
    n_mix: int,
    n_iter: int,
    tol: float,
    min_covar: float,
    seed: int,
    implementation: str = "scaling",
) -> Any:
    """An unfitted hmmlearn model; startprob and transmat are always set by :func:`initialise`.

    EM uses hmmlearn's scaled forward-backward by default: about 4x faster than its log-space one
    (1.8 vs 7.0 ms per iteration, 4 states x 8,300 days) with the same result, unless every state's
    emission density underflows on some row; the caller then re-runs in log space.
    """
    if n_mix == 1:
        return GaussianHMM(
            n_components=n_states,
            covariance_type=covariance_type,
            min_covar=min_covar,
            n_iter=n_iter,
            tol=tol,
            random_state=seed,
            init_params="mc",
            implementation=implementation,
        )
    return GMMHMM(
        n_components=n_states,
        n_mix=n_mix,
        covariance_type=covariance_type,
        min_covar=min_covar,
        n_iter=n_iter,
        tol=tol,
        random_state=seed,
        init_params="mcw",
        implementation=implementation,
    )


def _sticky_transmat(n_states: int, rng: np.random.Generator) -> np.ndarray:
    """A random transition matrix with a heavy diagonal: EM started there finds persistent regimes."""
    if n_states == 1:
        return np.ones((1, 1))
    stay = rng.uniform(*_INITIAL_STAY, size=n_states)
    moves = rng.dirichlet(np.ones(n_states - 1), size=n_states)
    transmat = np.empty((n_states, n_states))
    for i in range(n_states):
        transmat[i, i] = stay[i]
        transmat[i, np.arange(n_states) != i] = (1.0 - stay[i]) * moves[i]
    return transmat


def initialise(model: Any, X: np.ndarray, rng: np.random.Generator, restart: int) -> None:
    """Set the starting point of one EM run.

    Every run starts from uniform start probabilities and a random persistent transition matrix.
    Run 0 (and every GMM run) takes hmmlearn's k-means means and the sample covariance. Later Gaussian
    runs start from means at randomly drawn observations and the sample covariance scaled per state
    by random factors in ``[1/4, 4]``, so restarts explore volatility splits k-means would not.
    """
    n_states = model.n_components
    model.startprob_ = np.full(n_states, 1.0 / n_states)
    model.transmat_ = _sticky_transmat(n_states, rng)
    if isinstance(model, GMMHMM) or restart == 0:
        return
    n_obs, n_features = X.shape
    model.init_params = ""
    model.means_ = X[rng.choice(n_obs, size=n_states, replace=False)]
    sample_cov = np.atleast_2d(np.cov(X.T)) + model.min_covar * np.eye(n_features)
    factors = np.exp(rng.uniform(-np.log(_COVARIANCE_SPREAD), np.log(_COVARIANCE_SPREAD), size=n_states))
    if model.covariance_type == "full":
        model.covars_ = factors[:, None, None] * sample_cov
    elif model.covariance_type == "diag":
        model.covars_ = factors[:, None] * np.diag(sample_cov)
    elif model.covariance_type == "spherical":
        model.covars_ = factors * np.diag(sample_cov).mean()
    else:  # tied: one matrix for all states, nothing to spread
        model.covars_ = sample_cov


def em_converged(model: Any, tol: float) -> tuple[bool, float]:
    """Whether EM really converged: its last log-likelihood change is below ``tol`` in absolute value.

    hmmlearn's ``monitor_.converged`` is also true when the iteration budget ran out; this is not.
    """
    history = list(model.monitor_.history)
    if len(history) < 2:
        return False, float("nan")
    delta = float(history[-1] - history[-2])
    return bool(abs(delta) < tol), delta


def run_em(model: Any, X: np.ndarray, tol: float, restart: int, previous_iter: int = 0) -> RestartResult:
    """Run (or continue) EM on an initialised model; numerical failures count as a failed run."""
    try:
        with np.errstate(all="ignore"):
            model.fit(X)
            log_likelihood = float(model.score(X))
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
        logger.debug("EM restart %d failed: %s", restart, exc)
        return RestartResult(model, float("nan"), False, previous_iter + int(model.monitor_.iter), float("nan"))
    converged, delta = em_converged(model, tol)
    converged = converged and math.isfinite(log_likelihood)
    n_iter = previous_iter + int(model.monitor_.iter)
    logger.debug(
        "EM restart %d: log-likelihood %.6f, %d iterations, last change %.3g, converged %s",
        restart,
        log_likelihood,
        n_iter,
        delta,
        converged,
    )
    return RestartResult(model, log_likelihood, converged, n_iter, delta)


def continue_em(result: RestartResult, X: np.ndarray, n_iter: int, tol: float, restart: int) -> RestartResult:
    """Give a screened run up to ``n_iter`` more EM iterations from where it stopped."""
    model = result.model
    model.n_iter = n_iter
    model.monitor_.n_iter = n_iter  # the monitor keeps its own copy of the budget
    model.init_params = ""  # keep the parameters EM reached
    return run_em(model, X, tol, restart, previous_iter=result.n_iter)


def _gaussian_full_covars(model: Any) -> np.ndarray:
    """Full covariance matrices of a GaussianHMM, shape (n_states, n_features, n_features).

    Built from the compact storage: hmmlearn 0.3.3's ``covars_`` property mis-expands spherical
    covariances after an M-step (it stores them as (n_states, n_features) and flattens them).
    """
    k, d = model.means_.shape
    compact = np.asarray(model._covars_)
    if model.covariance_type == "full":
        return compact.copy()
    if model.covariance_type == "tied":
        return np.broadcast_to(compact, (k, d, d)).copy()
    if model.covariance_type == "spherical":
        compact = compact.reshape(k, -1)[:, :1]  # (n_states,) or (n_states, n_features) of equal values
    return np.asarray(compact[..., :, None] * np.eye(d))


def component_parameters(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture weights, component means and full component covariances of a fitted model.

    Returns
    -------
    weights : ndarray of shape (n_states, n_mix)
        All ones (``n_mix = 1``) for a GaussianHMM.
    means : ndarray of shape (n_states, n_mix, n_features)
    covariances : ndarray of shape (n_states, n_mix, n_features, n_features)
    """
    if isinstance(model, GaussianHMM):
        return np.ones((model.n_components, 1)), model.means_[:, None, :].copy(), _gaussian_full_covars(model)[:, None]
    k, m, d = model.means_.shape
    covars = np.asarray(model.covars_)
    if model.covariance_type == "full":
        full = covars.copy()
    elif model.covariance_type == "diag":
        full = covars[..., :, None] * np.eye(d)
    elif model.covariance_type == "spherical":
        full = covars[..., None, None] * np.eye(d)
    else:  # tied: one matrix per state, shared by its components
        full = np.broadcast_to(covars[:, None], (k, m, d, d)).copy()
    return np.asarray(model.weights_).copy(), model.means_.copy(), full


def state_moments(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of each state's emission distribution (a mixture's overall moments).

    Returns
    -------
    means : ndarray of shape (n_states, n_features)
    covariances : ndarray of shape (n_states, n_features, n_features)
        ``sum_m w_m (Sigma_m + mu_m mu_m') - mu mu'`` (law of total covariance).
    """
    weights, means, covs = component_parameters(model)
    if weights.shape[1] == 1:  # one Gaussian per state: exact, so tied covariances stay exactly equal
        return means[:, 0].copy(), covs[:, 0].copy()
    state_means = np.einsum("km,kmd->kd", weights, means)
    second = np.einsum("km,kmde->kde", weights, covs + means[..., :, None] * means[..., None, :])
    return state_means, second - state_means[:, :, None] * state_means[:, None, :]


def relabel(model: Any, order_feature: int) -> np.ndarray:
    """Renumber states by the variance of one feature, calmest first, inside the hmmlearn model.

    Returns
    -------
    ndarray of int, shape (n_states,)
        ``order[new] = old``.
    """
    means, covariances = state_moments(model)
    variances = covariances[:, order_feature, order_feature]
    # Equal variances (tied covariances) fall back on the mean, highest first: a rising market is the calm one.
    order = np.lexsort((-means[:, order_feature], variances))
    model.startprob_ = model.startprob_[order]
    model.transmat_ = model.transmat_[np.ix_(order, order)]
    model.means_ = model.means_[order]
    if isinstance(model, GaussianHMM):
        if model.covariance_type != "tied":
            model._covars_ = model._covars_[order]
        return order
    model.weights_ = model.weights_[order]
    model.covars_ = np.asarray(model.covars_)[order]
    # GMMHMM broadcasts its priors to one entry per state at fit time; keep them aligned.
    for name in ("weights_prior", "means_prior", "means_weight", "covars_prior", "covars_weight"):
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == model.n_components:
            setattr(model, name, value[order])
    return order


def restart_seeds(random_state: int | np.random.SeedSequence | None, n_restarts: int) -> list[np.random.SeedSequence]:
    """Children of ``SeedSequence(random_state)``, without consuming a SeedSequence the caller passed.

    Built like ``SeedSequence.spawn`` from a fresh root, so each call (each candidate number of
    states, each refit) gets the same restart streams.
    """
    if isinstance(random_state, np.random.SeedSequence):
        root = np.random.SeedSequence(random_state.entropy, spawn_key=random_state.spawn_key)
    else:
        root = np.random.SeedSequence(random_state)
    return [
        np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size)
        for i in range(n_restarts)
    ]


def fit_states(
    X: np.ndarray,
    n_states: int,
    *,
    covariance_type: str,
    n_mix: int,
    n_restarts: int,
    n_iter: int,
    tol: float,
    min_covar: float,
    screen_iter: int,
    n_finalists: int,
    random_state: int | np.random.SeedSequence | None,
) -> tuple[RestartResult | None, np.ndarray]:
    """Every restart for one number of states, screened by a short EM run.

    Each restart first gets ``screen_iter`` EM iterations; only the ``n_finalists`` with the highest
    log-likelihood then run to convergence (the "short-runs" strategy of Biernacki, Celeux and Govaert,
    2003). Runs that converged within the screening budget count as well. ``screen_iter >= n_iter``
    runs every restart to convergence.

    Returns
    -------
    best : RestartResult or None
        The converged run with the highest log-likelihood; None if no run converged.
    log_likelihoods : ndarray of shape (n_restarts,)
        Each converged run's log-likelihood (scaled units); NaN for runs that did not converge or were
        screened out.

    References
    ----------
    .. [1] Biernacki, C., Celeux, G. and Govaert, G. (2003). "Choosing starting values for the EM
       algorithm for getting the highest likelihood in multivariate Gaussian mixture models."
       Computational Statistics & Data Analysis 41(3-4), 561-575.
    """
    first_budget = min(screen_iter, n_iter) if screen_iter > 0 else n_iter
    runs: list[RestartResult] = []
    for i, seed in enumerate(restart_seeds(random_state, n_restarts)):
        hmm_seed = int(seed.generate_state(1)[0])
        for implementation in ("scaling", "log"):
            model = make_model(n_states, covariance_type, n_mix, first_budget, tol, min_covar, hmm_seed, implementation)
            initialise(model, X, np.random.default_rng(seed), i)
            with single_threaded():
                result = run_em(model, X, tol, i)
            if math.isfinite(result.log_likelihood):
                break
        runs.append(result)

    screened = np.array([run.log_likelihood for run in runs])
    finite = np.flatnonzero(np.isfinite(screened))
    finalists = finite[np.argsort(-screened[finite], kind="stable")][:n_finalists]
    for i in finalists:
        if not runs[i].converged and n_iter > first_budget:
            with single_threaded():
                runs[i] = continue_em(runs[i], X, n_iter - first_budget, tol, int(i))

    log_likelihoods = np.array([run.log_likelihood if run.converged else np.nan for run in runs])
    if np.all(np.isnan(log_likelihoods)):
        return None, log_likelihoods
    return runs[int(np.nanargmax(log_likelihoods))], log_likelihoods
