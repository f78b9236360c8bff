"""HMMRegimeDetector on synthetic data with known regimes.

Data are the library's presets (daily returns in percent) divided by 100, i.e. in decimals as a caller
would pass them; the detector's default ``scale=100`` fits them in percent. Accuracy is the share of
days whose most probable state is the true one: *filtered* (data up to t, what online use sees),
*smoothed* and *Viterbi* (whole sample, analysis only). References are the same quantities computed
with the true parameters (hmmlearn's forward-backward) and, for the filter, brute-force enumeration.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from portfolio_engine.exceptions import (
    ConfigurationError,
    ConvergenceError,
    DegenerateDataError,
    InsufficientDataError,
    NonFiniteFeaturesError,
    SchemaError,
)
from portfolio_engine.regime import (
    HMMRegimeDetector,
    SyntheticRegimes,
    forward_filter,
    three_state_market,
    two_state_market,
)

FAST = {"n_restarts": 3, "random_state": 0}


def oracle_smoothed_accuracy(data: SyntheticRegimes) -> float:
    """Accuracy of smoothed probabilities under the TRUE parameters (hmmlearn's forward-backward)."""
    model = GaussianHMM(data.n_states, covariance_type="full")
    model.n_features = data.X.shape[1]
    model.startprob_, model.transmat_ = data.startprob, data.transmat
    model.means_, model.covars_ = data.means, data.covariances
    return float(np.mean(model.predict_proba(data.X).argmax(axis=1) == data.states))


@pytest.fixture(scope="module")
def two() -> SyntheticRegimes:
    return two_state_market(2000, np.random.default_rng(0))


@pytest.fixture(scope="module")
def three() -> SyntheticRegimes:
    return three_state_market(3000, np.random.default_rng(1))


@pytest.fixture(scope="module")
def fitted_two(two: SyntheticRegimes) -> HMMRegimeDetector:
    return HMMRegimeDetector(n_states=2, **FAST).fit(two.frame() / 100)


@pytest.fixture(scope="module")
def fitted_three(three: SyntheticRegimes) -> HMMRegimeDetector:
    return HMMRegimeDetector(n_states=3, **FAST).fit(three.X / 100)


# ------------------------------------------------------------------ recovery
@pytest.mark.parametrize(("data_name", "model_name"), [("two", "fitted_two"), ("three", "fitted_three")])
def test_given_known_regimes_when_fitted_then_at_least_95_percent_of_states_are_recovered(
    data_name: str, model_name: str, request: pytest.FixtureRequest
) -> None:
    data: SyntheticRegimes = request.getfixturevalue(data_name)
    model: HMMRegimeDetector = request.getfixturevalue(model_name)
    X = data.X / 100

    filtered = np.mean(model.predict(X) == data.states)
    smoothed = np.mean(model.smoothed_proba(X).argmax(axis=1) == data.states)
    viterbi = np.mean(model.viterbi(X) == data.states)

    # Measured: 2 states 0.965 filtered / 0.9925 smoothed / 0.992 Viterbi (true parameters: 0.9915 smoothed);
    # 3 states 0.937 / 0.980 / 0.980 (true parameters: 0.980).
    assert smoothed >= 0.95
    assert viterbi >= 0.95
    assert filtered >= 0.92
    # The fitted model classifies about as well as the true parameters would.
    assert smoothed >= oracle_smoothed_accuracy(data) - 0.01


@pytest.mark.parametrize(("data_name", "model_name"), [("two", "fitted_two"), ("three", "fitted_three")])
def test_given_known_regimes_when_fitted_then_parameters_come_back_in_caller_units(
    data_name: str, model_name: str, request: pytest.FixtureRequest
) -> None:
    data: SyntheticRegimes = request.getfixturevalue(data_name)
    model: HMMRegimeDetector = request.getfixturevalue(model_name)

    true_vols = np.sqrt(np.diagonal(data.covariances, axis1=1, axis2=2)) / 100
    np.testing.assert_allclose(np.sqrt(np.diagonal(model.covars_, axis1=1, axis2=2)), true_vols, rtol=0.1)
    # Means within 4 standard errors of the truth (a state seen n_k days: se = vol / sqrt(n_k)).
    days = np.bincount(data.states, minlength=data.n_states)[:, None]
    assert np.all(np.abs(model.means_ - data.means / 100) <= 4 * true_vols / np.sqrt(days))
    np.testing.assert_allclose(np.diag(model.transmat_), np.diag(data.transmat), atol=0.02)
    assert model.state_names_ == data.state_names


def test_given_a_fit_when_durations_read_then_they_match_the_transmat_and_the_simulated_run_lengths(
    fitted_three: HMMRegimeDetector, three: SyntheticRegimes
) -> None:
    np.testing.assert_allclose(fitted_three.expected_durations_, 1.0 / (1.0 - np.diag(fitted_three.transmat_)))
    change = np.flatnonzero(np.diff(three.states)) + 1
    starts = np.r_[0, change]
    lengths = np.diff(np.r_[starts, three.states.size])[1:-1]
    labels = three.states[starts][1:-1]
    simulated = np.array([lengths[labels == k].mean() for k in range(3)])
    # 3,000 days hold only ~15-40 spells per state: the sample mean of a geometric duration is noisy.
    np.testing.assert_allclose(fitted_three.expected_durations_, simulated, rtol=0.3)


def test_given_ten_seeds_when_fitted_then_the_labels_are_identical(two: SyntheticRegimes) -> None:
    X = two.X / 100
    labels = [HMMRegimeDetector(n_states=2, n_restarts=2, random_state=seed).fit(X).predict(X) for seed in range(10)]
    for other in labels[1:]:
        np.testing.assert_array_equal(other, labels[0])
    assert np.mean(labels[0] == two.states) > 0.95  # and they are the true labels, calm = 0


def test_given_ten_seeds_on_three_states_when_fitted_then_the_labels_are_identical(three: SyntheticRegimes) -> None:
    X = three.X[:1500] / 100
    labels = [HMMRegimeDetector(n_states=3, n_restarts=5, random_state=seed).fit(X).predict(X) for seed in range(10)]
    agreement = [np.mean(other == labels[0]) for other in labels[1:]]
    assert min(agreement) == 1.0


def test_given_two_state_data_when_bic_chooses_then_it_picks_two(two: SyntheticRegimes) -> None:
    model = HMMRegimeDetector(n_states="bic", candidate_states=(1, 2, 3, 4), n_restarts=2, random_state=0).fit(
        two.X[:1200] / 100
    )
    assert model.n_states_ == 2
    assert set(model.criterion_scores_) == {1, 2, 3, 4}
    assert min(model.criterion_scores_, key=model.criterion_scores_.__getitem__) == 2
    assert model.bic_ == pytest.approx(model.criterion_scores_[2])


def test_given_three_state_data_when_bic_chooses_then_it_picks_three(three: SyntheticRegimes) -> None:
    model = HMMRegimeDetector(n_states="bic", candidate_states=(2, 3, 4), **FAST).fit(three.X / 100)
    assert model.n_states_ == 3
    assert model.state_names_ == ("calm", "normal", "turbulent")


def test_given_a_criterion_when_it_picks_k_then_the_model_equals_a_fit_with_k_states(two: SyntheticRegimes) -> None:
    X = two.X / 100
    chosen = HMMRegimeDetector(n_states="aic", candidate_states=(2, 3), **FAST).fit(X)
    direct = HMMRegimeDetector(n_states=chosen.n_states_, **FAST).fit(X)
    np.testing.assert_allclose(chosen.transmat_, direct.transmat_)
    assert chosen.aic_ == pytest.approx(chosen.criterion_scores_[chosen.n_states_])
    assert not hasattr(direct, "criterion_scores_")


# ---------------------------------------------------------- covariance types
@pytest.mark.parametrize(
    ("covariance_type", "n_mix"),
    [("full", 1), ("diag", 1), ("spherical", 1), ("tied", 1), ("full", 2), ("diag", 2), ("spherical", 2), ("tied", 2)],
)
def test_given_each_covariance_type_when_fitted_then_full_covariances_and_consistent_likelihoods(
    two: SyntheticRegimes, covariance_type: str, n_mix: int
) -> None:
    # Mixture components of single-Gaussian data are barely identified, so mixture EM crawls: a looser
    # tol and a shorter sample keep the test fast.
    X = two.X[:1000] / 100
    tol = 1e-4 if n_mix == 1 else 1e-2
    model = HMMRegimeDetector(n_states=2, covariance_type=covariance_type, n_mix=n_mix, tol=tol, **FAST).fit(X)

    assert model.covars_.shape == (2, 2, 2)
    for cov in model.covars_:
        np.testing.assert_allclose(cov, cov.T)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
    if n_mix == 1 and covariance_type == "diag":
        assert model.covars_[:, 0, 1] == pytest.approx([0.0, 0.0])
    if n_mix == 1 and covariance_type == "spherical":
        np.testing.assert_allclose(model.covars_[:, 0, 0], model.covars_[:, 1, 1])
    if n_mix == 1 and covariance_type == "tied":
        np.testing.assert_allclose(model.covars_[0], model.covars_[1])
    else:
        assert model.covars_[0, 0, 0] < model.covars_[1, 0, 0]  # state 0 is the calm one

    # Our forward filter (own emission densities) gives hmmlearn's log-likelihood, shifted by the
    # Jacobian of the scaling (n d log 100), and the training log-likelihood.
    jacobian = X.size * np.log(100.0)
    assert model.score(X) == pytest.approx(model.model_.score(X * 100) + jacobian, rel=1e-9)
    assert model.score(X) == pytest.approx(model.log_likelihood_, rel=1e-9)
    assert np.nanmax(model.restart_log_likelihoods_) == pytest.approx(model.log_likelihood_, rel=1e-9)

    # Parameter count: hmmlearn's, except that hmmlearn counts n_mix - 1 mixture weights in total
    # instead of n_states (n_mix - 1).
    hmmlearn_count = sum(model.model_._get_n_fit_scalars_per_param().values())
    assert model.n_parameters_ == hmmlearn_count + (2 - 1) * (n_mix - 1)
    n = X.shape[0]
    assert model.bic_ == pytest.approx(-2 * model.log_likelihood_ + model.n_parameters_ * np.log(n))
    assert model.aic_ == pytest.approx(-2 * model.log_likelihood_ + 2 * model.n_parameters_)

    # The relabelling permuted every array of the hmmlearn model consistently: the smoother
    # (hmmlearn, on model_) ends where our filter (on our copies of the parameters) ends.
    X_tail = X[:400]
    np.testing.assert_allclose(model.smoothed_proba(X_tail)[-1], model.predict_proba(X_tail)[-1], atol=1e-8)
    accuracy = np.mean(model.smoothed_proba(X).argmax(axis=1) == two.states[:1000])
    if n_mix == 1 and covariance_type == "tied":
        # One covariance for all states: only the means can tell states apart (measured accuracy 0.85).
        assert model.means_[0, 0] > model.means_[1, 0]  # equal variances: ties broken by the mean, highest first
    elif (n_mix, covariance_type) == (2, "spherical"):
        # Measured: this fit splits up days from down days (mixtures absorb the volatility): accuracy 0.49.
        assert model.means_[0, 0] != model.means_[1, 0]
    else:
        assert accuracy > 0.95  # measured 0.978 (spherical) to 0.9925 (full)


def test_given_a_mixture_hmm_when_fitted_then_state_moments_match_samples_of_its_mixtures(
    two: SyntheticRegimes,
) -> None:
    model = HMMRegimeDetector(n_states=2, n_mix=2, tol=1e-2, n_restarts=1, random_state=0).fit(two.X[:1000] / 100)
    rng = np.random.default_rng(0)
    hmm = model.model_
    for k in range(2):
        component = rng.choice(2, size=100_000, p=hmm.weights_[k])
        draws = (
            np.concatenate(
                [
                    rng.multivariate_normal(hmm.means_[k, m], hmm.covars_[k, m], size=int((component == m).sum()))
                    for m in range(2)
                ]
            )
            / 100
        )
        np.testing.assert_allclose(model.means_[k], draws.mean(axis=0), atol=3e-4)
        np.testing.assert_allclose(model.covars_[k], np.cov(draws.T), rtol=0.03, atol=1e-6)


def test_given_order_by_a_named_feature_when_fitted_then_states_are_ordered_by_its_variance(
    two: SyntheticRegimes,
) -> None:
    model = HMMRegimeDetector(n_states=2, order_by="bond", **FAST).fit(two.frame() / 100)
    assert model.covars_[0, 1, 1] < model.covars_[1, 1, 1]
    assert list(model.feature_names_in_) == ["equity", "bond"]


# ------------------------------------------------------------ EM restarts
def test_given_screening_when_fitted_then_it_finds_the_optimum_of_full_restarts(three: SyntheticRegimes) -> None:
    X = three.X[:1500] / 100
    screened = HMMRegimeDetector(n_states=3, n_restarts=6, screen_iter=5, n_finalists=2, random_state=3).fit(X)
    full = HMMRegimeDetector(n_states=3, n_restarts=6, screen_iter=0, random_state=3).fit(X)

    assert screened.log_likelihood_ == pytest.approx(full.log_likelihood_, abs=1e-3)
    np.testing.assert_array_equal(screened.predict(X), full.predict(X))
    # Only the two finalists ran on after 5 iterations and report a likelihood.
    assert np.isfinite(screened.restart_log_likelihoods_).sum() == 2
    assert np.isfinite(full.restart_log_likelihoods_).sum() == 6
    assert screened.n_iter_ > 5


def test_given_a_row_every_state_finds_impossible_when_fitted_then_em_falls_back_to_log_space(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 1e6-sigma row makes every emission density underflow in hmmlearn's scaled forward pass for
    # restarts that start without a state near it; those restarts are re-run in log space.
    X = np.random.default_rng(0).normal(size=(3000, 1))
    X[1500] = 1e6
    with caplog.at_level("DEBUG", logger="portfolio_engine.regime._hmm_fit"):
        model = HMMRegimeDetector(n_states=2, n_restarts=3, scale=1.0, random_state=0).fit(X)
    assert "underflow" in caplog.text
    assert np.isfinite(model.restart_log_likelihoods_).all()
    assert model.model_.implementation == "log"
    assert model.predict(X)[1500] == 0  # the outlier is alone in its state (variance 0.01 < 1: "calm")


# ------------------------------------------------------------ point in time
def test_given_a_fit_when_later_data_change_then_earlier_filtered_probabilities_do_not(
    fitted_two: HMMRegimeDetector, two: SyntheticRegimes
) -> None:
    X = two.X / 100
    full = fitted_two.predict_proba(X)
    t = 1200
    changed = X.copy()
    changed[t + 1 :] = np.random.default_rng(5).normal(0.0, 0.05, changed[t + 1 :].shape)

    np.testing.assert_array_equal(fitted_two.predict_proba(changed)[: t + 1], full[: t + 1])
    np.testing.assert_array_equal(fitted_two.predict_proba(X[: t + 1]), full[: t + 1])
    # Smoothed probabilities do look ahead: the same change moves them before t.
    assert not np.allclose(
        fitted_two.smoothed_proba(changed)[t - 5 : t + 1], fitted_two.smoothed_proba(X)[t - 5 : t + 1]
    )


def test_given_a_fit_when_filtering_then_the_last_filtered_row_is_the_last_smoothed_row(
    fitted_three: HMMRegimeDetector, three: SyntheticRegimes
) -> None:
    X = three.X / 100
    filtered, smoothed = fitted_three.predict_proba(X), fitted_three.smoothed_proba(X)
    np.testing.assert_allclose(filtered[-1], smoothed[-1], atol=1e-10)
    np.testing.assert_allclose(filtered.sum(axis=1), 1.0)
    next_day = fitted_three.predict_next_proba(X)
    np.testing.assert_allclose(next_day, filtered @ fitted_three.transmat_)
    np.testing.assert_allclose(next_day.sum(axis=1), 1.0)


def test_given_a_tiny_chain_when_filtered_then_it_matches_enumeration_over_all_paths() -> None:
    rng = np.random.default_rng(0)
    startprob = np.array([0.6, 0.4])
    transmat = np.array([[0.9, 0.1], [0.3, 0.7]])
    means, sds = np.array([0.0, 1.0]), np.array([1.0, 2.0])
    x = rng.normal(size=6)
    emissions = np.exp(-0.5 * ((x[:, None] - means) / sds) ** 2) / (sds * np.sqrt(2 * np.pi))

    filtered, log_likelihood = forward_filter(np.log(emissions), startprob, transmat)

    for t in range(x.size):
        joint = np.zeros(2)
        for path in itertools.product(range(2), repeat=t + 1):
            p = startprob[path[0]] * emissions[0, path[0]]
            for s in range(1, t + 1):
                p *= transmat[path[s - 1], path[s]] * emissions[s, path[s]]
            joint[path[-1]] += p
        np.testing.assert_allclose(filtered[t], joint / joint.sum(), rtol=1e-12)
        if t == x.size - 1:
            assert log_likelihood == pytest.approx(np.log(joint.sum()), rel=1e-12)


def test_given_a_fit_when_emissions_are_recomputed_with_scipy_then_the_filter_agrees(
    fitted_two: HMMRegimeDetector, two: SyntheticRegimes
) -> None:
    X = two.X[:300] / 100
    log_emissions = np.column_stack(
        [multivariate_normal(fitted_two.means_[k], fitted_two.covars_[k]).logpdf(X) for k in range(2)]
    )
    expected, log_likelihood = forward_filter(log_emissions, fitted_two.startprob_, fitted_two.transmat_)
    np.testing.assert_allclose(fitted_two.predict_proba(X), expected, atol=1e-10)
    assert fitted_two.score(X) == pytest.approx(log_likelihood, rel=1e-10)


# ------------------------------------------------------------------ summary
def test_given_a_fit_when_summarised_then_the_summary_is_json_ready_and_matches_the_attributes(
    fitted_two: HMMRegimeDetector,
) -> None:
    summary = fitted_two.summary()
    payload = json.loads(json.dumps(summary.to_dict()))

    assert payload["state_names"] == ["calm", "turbulent"]
    assert payload["feature_names"] == ["equity", "bond"]
    np.testing.assert_allclose(payload["transmat"], fitted_two.transmat_)
    np.testing.assert_allclose(payload["covariances"], fitted_two.covars_)
    np.testing.assert_allclose(payload["expected_durations"], fitted_two.expected_durations_)
    np.testing.assert_allclose(summary.stationary, fitted_two.model_.get_stationary_distribution(), atol=1e-10)
    assert payload["n_parameters"] == fitted_two.n_parameters_ == 1 + 2 + 4 + 6
    assert payload["bic"] == pytest.approx(fitted_two.bic_)
    assert summary.n_obs == 2000
    with pytest.raises(ValueError, match="read-only"):
        summary.transmat[0, 0] = 0.0


# ------------------------------------------------------ scikit-learn contract
def test_given_params_when_cloned_then_params_are_equal_and_the_clone_is_unfitted(
    fitted_two: HMMRegimeDetector,
) -> None:
    copy = clone(fitted_two)
    assert copy.get_params() == fitted_two.get_params()
    assert not hasattr(copy, "model_")
    copy.set_params(n_states=3, covariance_type="diag")
    assert (copy.n_states, copy.covariance_type) == (3, "diag")
    assert fitted_two.n_states == 2


def test_given_the_same_random_state_when_fitted_twice_then_results_are_identical(two: SyntheticRegimes) -> None:
    X = two.X[:800] / 100
    seed = np.random.SeedSequence(42)
    a = HMMRegimeDetector(n_states=2, n_restarts=3, random_state=seed).fit(X)
    b = HMMRegimeDetector(n_states=2, n_restarts=3, random_state=seed).fit(X)
    np.testing.assert_array_equal(a.restart_log_likelihoods_, b.restart_log_likelihoods_)
    np.testing.assert_array_equal(a.transmat_, b.transmat_)
    assert seed.n_children_spawned == 0  # the caller's SeedSequence is not consumed


def test_given_a_pipeline_when_fitted_then_it_predicts_like_the_detector_on_transformed_data(
    two: SyntheticRegimes,
) -> None:
    X = two.X
    to_decimal = FunctionTransformer(lambda z: z / 100)
    pipe = Pipeline([("decimal", to_decimal), ("hmm", HMMRegimeDetector(n_states=2, **FAST))]).fit(X)
    direct = HMMRegimeDetector(n_states=2, **FAST).fit(X / 100)
    np.testing.assert_array_equal(pipe.predict(X), direct.predict(X / 100))
    np.testing.assert_allclose(pipe.predict_proba(X), direct.predict_proba(X / 100))
    assert pipe.score(X) == pytest.approx(direct.score(X / 100))


def test_given_a_grid_search_when_run_then_scores_are_the_held_out_log_likelihoods(two: SyntheticRegimes) -> None:
    X = two.X[:1000] / 100
    cv = KFold(n_splits=2)
    grid = {"n_states": [2, 3], "covariance_type": ["full", "diag"]}
    search = GridSearchCV(HMMRegimeDetector(n_restarts=1, random_state=0), grid, cv=cv).fit(X)

    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True):
        folds = [
            HMMRegimeDetector(n_restarts=1, random_state=0, **params).fit(X[train]).score(X[test])
            for train, test in cv.split(X)
        ]
        assert score == pytest.approx(np.mean(folds), rel=1e-9)
    assert search.best_params_ in search.cv_results_["params"]
    assert search.best_estimator_.n_states_ == search.best_params_["n_states"]


# ------------------------------------------------------------------- errors
def test_given_too_few_rows_when_fitted_then_insufficient_data_names_both_numbers(two: SyntheticRegimes) -> None:
    with pytest.raises(InsufficientDataError, match=r"Received 20 observations; at least 26 are needed") as info:
        HMMRegimeDetector(n_states=2).fit(two.X[:20])
    assert "fewer states" in info.value.hint


def test_given_a_constant_column_when_fitted_then_degenerate_data_names_it(two: SyntheticRegimes) -> None:
    frame = two.frame() / 100
    frame["bond"] = 0.01
    with pytest.raises(DegenerateDataError, match="'bond' is constant") as info:
        HMMRegimeDetector().fit(frame)
    assert "Drop the constant column" in info.value.hint


def test_given_nan_features_when_fitted_then_non_finite_names_columns_and_row_count(two: SyntheticRegimes) -> None:
    frame = two.frame() / 100
    frame.iloc[:21, 1] = np.nan
    frame.iloc[100, 1] = np.inf
    with pytest.raises(NonFiniteFeaturesError, match=r"22 of 2000 rows.*\['bond'\]") as info:
        HMMRegimeDetector().fit(frame)
    assert "dropna" in info.value.hint


def test_given_one_em_iteration_when_fitted_then_convergence_error_with_a_hint(two: SyntheticRegimes) -> None:
    with pytest.raises(ConvergenceError, match="none of 2 EM runs converged") as info:
        HMMRegimeDetector(n_states=2, n_iter=1, n_restarts=2, random_state=0).fit(two.X / 100)
    assert "Raise n_iter" in info.value.hint


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"n_states": "cv"}, "n_states must be"),
        ({"n_states": 0}, "ints >= 1"),
        ({"covariance_type": "banded"}, "covariance_type must be one of .*received 'banded'"),
        ({"n_restarts": 0}, "n_restarts must be an int >= 1; received 0"),
        ({"scale": -1.0}, "scale must be a finite float > 0; received -1.0"),
        ({"screen_iter": -1}, "screen_iter"),
        ({"order_by": "vix"}, "not a feature name"),
        ({"order_by": 5}, "column position"),
    ],
)
def test_given_a_bad_hyperparameter_when_fitted_then_configuration_error(
    two: SyntheticRegimes, params: dict, needle: str
) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        HMMRegimeDetector(**params).fit(two.frame() / 100)


def test_given_other_columns_when_predicting_then_schema_error(fitted_two: HMMRegimeDetector, two) -> None:
    with pytest.raises(SchemaError, match="fitted on 2"):
        fitted_two.predict(two.X[:, :1])
    with pytest.raises(SchemaError, match="differ"):
        fitted_two.predict((two.frame() / 100)[["bond", "equity"]])
    with pytest.raises(SchemaError, match="2-D"):
        fitted_two.predict(two.X[:, 0])
    with pytest.raises(NonFiniteFeaturesError):
        fitted_two.predict_proba(np.full((3, 2), np.nan))
