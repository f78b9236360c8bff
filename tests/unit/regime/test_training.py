"""Training for the registry: the holdout metric, its BIC-style penalty, and the complexity-aware promotion rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from portfolio_engine.regime.definition import RegimeModelSpec
from portfolio_engine.regime.synthetic import two_state_market
from portfolio_engine.regime.training import (
    PENALIZED_METRIC,
    PROMOTION_METRIC,
    bic_penalty,
    decide_promotion,
    fit_regime_model,
    hmm_of,
)


def test_the_penalty_is_bic_per_observation() -> None:
    # Given an HMM fitted on 2-state synthetic data
    data = two_state_market(800, np.random.default_rng(7))
    model = RegimeModelSpec(n_restarts=2, scale=1.0).build_estimator().fit(data.frame())
    n = model.n_obs_
    # Then log-likelihood per observation less the penalty is -BIC / 2n (BIC = -2 log L + k ln n, Schwarz 1978)
    assert model.log_likelihood_ / n - bic_penalty(model.n_parameters_, n) == pytest.approx(-model.bic_ / (2 * n))
    assert bic_penalty(13, 1000) == pytest.approx(13 * math.log(1000) / 2000)


def test_a_more_complex_challenger_must_beat_the_champion_by_more_than_its_extra_parameters_cost() -> None:
    # Given a 2-state champion (13 parameters) and a 4-state challenger (35), both fitted on 1000 days:
    # the extra 22 parameters cost 22 ln(1000) / 2000 = 0.0760 nats per holdout day
    extra = 22 * math.log(1000) / 2000
    args = {"challenger_parameters": 35, "champion_parameters": 13, "n_train": 1000}
    # When its holdout gain is below that / Then it is refused, though its raw metric is higher
    refused = decide_promotion(1.0 + extra - 0.001, 1.0, **args)
    assert not refused.promote and refused.challenger_metric > refused.champion_metric
    assert refused.challenger_penalty == pytest.approx(35 * math.log(1000) / 2000)
    assert refused.champion_penalty == pytest.approx(13 * math.log(1000) / 2000)
    assert refused.challenger_score == pytest.approx(1.0 + extra - 0.001 - refused.challenger_penalty)
    assert refused.reason.startswith(f"{PROMOTION_METRIC} less the BIC penalty k ln(n) / 2n (n = 1000 days)")
    assert " < champion 1.000000 - 0.044900 (k = 13) = 0.955100" in refused.reason
    assert refused.scores() == {
        "challenger_score": refused.challenger_score,
        "champion_score": refused.champion_score,
        "challenger_penalty": refused.challenger_penalty,
        "champion_penalty": refused.champion_penalty,
    }
    # And above it, it is promoted
    assert decide_promotion(1.0 + extra + 0.001, 1.0, **args).promote


def test_a_refresh_of_the_same_definition_is_promoted_and_a_simpler_challenger_gets_the_benefit() -> None:
    same = decide_promotion(1.0, 1.0, challenger_parameters=13, champion_parameters=13, n_train=1000)
    assert same.promote and same.challenger_score == same.champion_score
    # A 1-state challenger (5 parameters) slightly worse on the holdout than a 2-state champion still wins
    simpler = decide_promotion(0.99, 1.0, challenger_parameters=5, champion_parameters=13, n_train=1000)
    assert simpler.promote


def test_without_a_comparable_champion_the_penalty_is_recorded_but_does_not_decide() -> None:
    first = decide_promotion(1.0, None, challenger_parameters=13, n_train=1000)
    assert first.promote and first.reason == "no champion yet" and first.champion_score is None
    assert first.challenger_score == pytest.approx(1.0 - bic_penalty(13, 1000))
    other = decide_promotion(0.5, 1.0, challenger_parameters=13, n_train=1000, champion_compatible=False)
    assert other.promote and other.reason == "the champion reads other inputs"
    with pytest.raises(ValueError, match="champion_parameters"):
        decide_promotion(1.0, 1.0, challenger_parameters=13, n_train=1000)


def test_the_trained_model_records_the_probe_size_and_the_penalized_score() -> None:
    data = two_state_market(900, np.random.default_rng(3))
    spec = RegimeModelSpec(n_restarts=2, holdout_days=252, min_train_days=252, scale=1.0)
    trained = fit_regime_model(data.frame(), spec)
    metrics = trained.metrics
    # The probe (fitted without the holdout) is what the holdout scores, so its size is what is penalized
    probe = spec.build_estimator().fit(data.frame().iloc[:-252])
    assert metrics["holdout_n_parameters"] == hmm_of(probe).n_parameters_ == 13
    assert metrics["holdout_n_train"] == 900 - 252
    assert metrics["holdout_penalty"] == pytest.approx(13 * math.log(648) / (2 * 648))
    assert metrics[PENALIZED_METRIC] == pytest.approx(metrics[PROMOTION_METRIC] - metrics["holdout_penalty"])
