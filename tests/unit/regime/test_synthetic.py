"""The synthetic regime generator: its samples have the statistics of the chain and the Gaussians it was given."""

from __future__ import annotations

import numpy as np
import pytest

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.regime import (
    SyntheticRegimes,
    simulate_regimes,
    stationary_distribution,
    three_state_market,
    two_state_market,
)

TRANSMAT = np.array([[0.95, 0.04, 0.01], [0.10, 0.85, 0.05], [0.05, 0.15, 0.80]])
MEANS = np.array([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
COVS = np.array([[[1.0, 0.3], [0.3, 0.5]], [[2.0, -0.5], [-0.5, 1.0]], [[4.0, 1.0], [1.0, 3.0]]])


def run_lengths(states: np.ndarray) -> dict[int, np.ndarray]:
    """Lengths of the maximal runs of each state, leaving out the first and last (censored) runs."""
    change = np.flatnonzero(np.diff(states)) + 1
    starts = np.r_[0, change]
    lengths = np.diff(np.r_[starts, states.size])
    labels = states[starts]
    inner = slice(1, -1)
    return {int(k): lengths[inner][labels[inner] == k] for k in np.unique(states)}


@pytest.fixture(scope="module")
def sample() -> SyntheticRegimes:
    return simulate_regimes(200_000, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(7))


def test_given_a_chain_when_simulated_then_transition_frequencies_match_transmat(sample: SyntheticRegimes) -> None:
    counts = np.zeros((3, 3))
    np.add.at(counts, (sample.states[:-1], sample.states[1:]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    # Binomial standard error of each row entry is at most sqrt(0.25 / n_i) ~ 0.003 here.
    np.testing.assert_allclose(empirical, TRANSMAT, atol=0.01)


def test_given_a_chain_when_simulated_then_time_shares_match_the_stationary_distribution(
    sample: SyntheticRegimes,
) -> None:
    # Independent route to pi: every row of P^500 has converged to it.
    pi = np.linalg.matrix_power(TRANSMAT, 500)[0]
    np.testing.assert_allclose(stationary_distribution(TRANSMAT), pi, atol=1e-12)
    shares = np.bincount(sample.states, minlength=3) / sample.states.size
    np.testing.assert_allclose(shares, pi, atol=0.02)


def test_given_a_chain_when_simulated_then_mean_run_lengths_are_one_over_one_minus_p_ii(
    sample: SyntheticRegimes,
) -> None:
    runs = run_lengths(sample.states)
    expected = 1.0 / (1.0 - np.diag(TRANSMAT))  # 20, 6.67, 5 periods
    np.testing.assert_allclose(sample.expected_durations, expected)
    for k in range(3):
        assert runs[k].mean() == pytest.approx(expected[k], rel=0.05)


def test_given_states_when_simulated_then_each_state_has_its_mean_and_covariance(sample: SyntheticRegimes) -> None:
    for k in range(3):
        rows = sample.X[sample.states == k]
        np.testing.assert_allclose(rows.mean(axis=0), MEANS[k], atol=0.05)
        np.testing.assert_allclose(np.cov(rows.T), COVS[k], atol=0.08)


def test_given_the_same_seed_when_simulated_twice_then_samples_are_identical() -> None:
    a = simulate_regimes(500, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(3))
    b = simulate_regimes(500, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(3))
    c = simulate_regimes(500, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.states, b.states)
    assert not np.array_equal(a.states, c.states)


def test_given_a_one_hot_startprob_when_simulated_then_every_path_starts_there() -> None:
    firsts = {
        int(simulate_regimes(1, TRANSMAT, MEANS, COVS, startprob=[0, 0, 1], rng=np.random.default_rng(s)).states[0])
        for s in range(20)
    }
    assert firsts == {2}


def test_given_no_startprob_when_simulated_then_it_is_the_stationary_distribution() -> None:
    data = simulate_regimes(10, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(0))
    np.testing.assert_allclose(data.startprob @ TRANSMAT, data.startprob, atol=1e-12)
    assert data.state_names == ("calm", "normal", "turbulent")
    assert data.feature_names == ("x0", "x1")


@pytest.mark.parametrize("preset", [two_state_market, three_state_market])
def test_given_a_preset_when_simulated_then_states_run_calm_to_turbulent_in_percent_units(preset) -> None:
    data = preset(5000, np.random.default_rng(0))
    equity_vol = np.sqrt(data.covariances[:, 0, 0])
    assert np.all(np.diff(equity_vol) > 0)
    # Daily percent units: calm equity volatility under 1 %, turbulent above 1.5 %.
    assert equity_vol[0] < 1.0 < 1.5 < equity_vol[-1]
    assert data.X.shape == (5000, 2)
    assert data.feature_names == ("equity", "bond")
    assert np.all(data.expected_durations >= 25)  # persistent enough to be identifiable
    frame = data.frame()
    assert list(frame.columns) == ["equity", "bond"]
    assert frame.index.is_monotonic_increasing and len(frame) == 5000


@pytest.mark.parametrize(
    ("transmat", "means", "covs", "needle"),
    [
        ([[0.9, 0.2], [0.1, 0.9]], MEANS[:2], COVS[:2], "row sums"),
        ([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]], MEANS[:2], COVS[:2], "square"),
        (TRANSMAT, MEANS[:2], COVS, "means must have shape"),
        (TRANSMAT, MEANS, COVS[:, :1, :1], "covariances must have shape"),
        (TRANSMAT, MEANS, np.array([np.eye(2), np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]), "not positive definite"),
        (TRANSMAT, MEANS, np.array([np.eye(2), np.eye(2), [[1.0, 0.2], [0.1, 1.0]]]), "not symmetric"),
    ],
)
def test_given_bad_parameters_when_simulated_then_a_configuration_error_names_them(
    transmat, means, covs, needle
) -> None:
    with pytest.raises(ConfigurationError, match=needle) as info:
        simulate_regimes(10, transmat, means, covs, rng=np.random.default_rng(0))
    assert info.value.hint


def test_given_zero_periods_when_simulated_then_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="n_obs"):
        simulate_regimes(0, TRANSMAT, MEANS, COVS, rng=np.random.default_rng(0))
