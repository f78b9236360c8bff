"""Regime-switching Monte Carlo against closed forms (Normal, Student-t, Markov-chain moments), exact fan-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.optimization.regime_moments import regime_conditional_moments
from portfolio_engine.risk._mc_kernel import block_generator
from portfolio_engine.risk.monte_carlo import (
    MonteCarloPlan,
    MonteCarloResult,
    RegimeSwitchingModel,
    ShardResult,
    merge_shards,
    simulate_asset_paths,
    simulate_portfolio,
    simulate_regimes,
    simulate_shard,
)

ASSETS = ("a", "b", "c")
MEANS = np.array([[0.0006, 0.0004, 0.0002], [-0.0015, -0.0008, 0.0001]])
COVS = np.array(
    [
        [[1.0e-4, 3.0e-5, 1.0e-5], [3.0e-5, 8.0e-5, 1.0e-5], [1.0e-5, 1.0e-5, 4.0e-5]],
        [[6.0e-4, 3.0e-4, 1.0e-4], [3.0e-4, 5.0e-4, 1.0e-4], [1.0e-4, 1.0e-4, 2.0e-4]],
    ]
)
TRANSITION = np.array([[0.97, 0.03], [0.08, 0.92]])
INITIAL = np.array([0.6, 0.4])
WEIGHTS = pd.Series([0.5, 0.3, 0.2], index=list(ASSETS))


def two_regimes(**kwargs: object) -> RegimeSwitchingModel:
    return RegimeSwitchingModel(TRANSITION, INITIAL, MEANS, COVS, assets=ASSETS, **kwargs)


def one_regime(k: int = 0, **kwargs: object) -> RegimeSwitchingModel:
    return RegimeSwitchingModel([[1.0]], [1.0], MEANS[k : k + 1], COVS[k : k + 1], assets=ASSETS, **kwargs)


def portfolio_moments(k: int) -> tuple[float, float]:
    w = WEIGHTS.to_numpy()
    return float(w @ MEANS[k]), float(np.sqrt(w @ COVS[k] @ w))


def es_standard_error(result: MonteCarloResult, level: float) -> float:
    """SE of the empirical ES: sd((L - q)_+) / (sqrt(n) (1 - alpha)); the quantile's own error drops out."""
    losses = -result.terminal_pnl
    excess = np.maximum(losses - result.var(level), 0.0)
    return float(excess.std(ddof=1) / np.sqrt(losses.size) / (1.0 - level))


# --- closed forms ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_one_regime_normal_var_and_es_match_the_normal_closed_form(level: float) -> None:
    # Given one regime with Normal innovations and a one-day horizon: the P&L is N(w'mu, w'Sigma w) exactly
    mean, vol = portfolio_moments(0)
    plan = MonteCarloPlan(n_paths=200_000, horizon=1, run_seed=11)
    # When simulated
    result = simulate_portfolio(one_regime(), WEIGHTS, plan)
    # Then VaR and ES of the loss -P&L agree with the Normal closed forms within 3 standard errors
    z = stats.norm.ppf(level)
    var_exact = -mean + vol * z
    es_exact = -mean + vol * stats.norm.pdf(z) / (1.0 - level)
    var_se = np.sqrt(level * (1.0 - level) / plan.n_paths) / (stats.norm.pdf(z) / vol)  # sqrt(a(1-a)/n) / f(q)
    assert abs(result.var(level) - var_exact) < 3.0 * var_se
    assert abs(result.cvar(level) - es_exact) < 3.0 * es_standard_error(result, level)
    # and the standard errors are small enough for the comparison to mean something (under 1 % of the VaR)
    assert var_se < 0.01 * var_exact


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_one_regime_student_t_var_and_es_match_the_t_closed_form(level: float) -> None:
    # Given Student-t innovations (dof 4) scaled to the regime's covariance, over one day
    dof = 4.0
    mean, vol = portfolio_moments(1)
    scale = vol * np.sqrt((dof - 2.0) / dof)  # a standardised t has variance 1
    plan = MonteCarloPlan(n_paths=200_000, horizon=1, run_seed=12)
    # When simulated
    result = simulate_portfolio(one_regime(1, innovations="student_t", dof=dof), WEIGHTS, plan)
    # Then VaR and ES match the t distribution's (scipy) within 3 standard errors
    loss = stats.t(dof, loc=-mean, scale=scale)
    var_exact = float(loss.ppf(level))
    es_exact = float(loss.expect(lambda x: x, lb=var_exact, conditional=True))
    var_se = np.sqrt(level * (1.0 - level) / plan.n_paths) / float(loss.pdf(var_exact))
    assert abs(result.var(level) - var_exact) < 3.0 * var_se
    assert abs(result.cvar(level) - es_exact) < 3.0 * es_standard_error(result, level)
    # and the tails are heavier than a Normal's of the same variance
    assert result.var(0.99) > -mean + vol * stats.norm.ppf(0.99)


def test_compounded_value_over_the_horizon_has_the_iid_closed_form_moments() -> None:
    # Given one regime over 21 days: V = prod (1 + r_t), r_t i.i.d. with mean m and variance s^2
    mean, vol = portfolio_moments(1)
    horizon, plan = 21, MonteCarloPlan(n_paths=100_000, horizon=21, run_seed=13)
    # When simulated
    result = simulate_portfolio(one_regime(1), WEIGHTS, plan)
    # Then E[V] = (1 + m)^H and E[V^2] = ((1 + m)^2 + s^2)^H, within 3 standard errors
    values = result.terminal_pnl + 1.0
    assert abs(values.mean() - (1.0 + mean) ** horizon) < 3.0 * values.std() / np.sqrt(values.size)
    squares = values**2
    expected = ((1.0 + mean) ** 2 + vol**2) ** horizon
    assert abs(squares.mean() - expected) < 3.0 * squares.std() / np.sqrt(squares.size)


@pytest.mark.parametrize("n_regimes", [2, 3])
def test_regime_switching_value_moments_match_the_markov_chain_closed_form(n_regimes: int) -> None:
    # Given K regimes: the first day's regime ~ p0 P, then the chain; growth 1 + r with regime moments (g_k, v_k)
    if n_regimes == 2:
        model, transition, initial = two_regimes(), TRANSITION, INITIAL
    else:
        transition = np.array([[0.90, 0.07, 0.03], [0.10, 0.80, 0.10], [0.05, 0.15, 0.80]])
        initial = np.array([0.2, 0.5, 0.3])
        means = np.vstack([MEANS, [[0.003, 0.002, 0.001]]])
        covs = np.concatenate([COVS, COVS[:1] * 2.0])
        model = RegimeSwitchingModel(transition, initial, means, covs, assets=ASSETS)
    g, v = model.portfolio_moments(WEIGHTS)
    g = 1.0 + g
    horizon = 15
    plan = MonteCarloPlan(n_paths=120_000, horizon=horizon, run_seed=14, block_size=2**13)
    # When simulated
    values = simulate_portfolio(model, WEIGHTS, plan).terminal_pnl + 1.0
    # Then E[V] = p1' D (P D)^(H-1) 1 with D = diag(g), p1 = p0 P; E[V^2] likewise with diag(g^2 + v^2)
    p1 = initial @ transition
    for power, diag in ((1, g), (2, g**2 + v**2)):
        exact = (
            p1 @ np.diag(diag) @ np.linalg.matrix_power(transition @ np.diag(diag), horizon - 1) @ np.ones(n_regimes)
        )
        sample = values**power
        assert abs(sample.mean() - exact) < 3.0 * sample.std() / np.sqrt(sample.size)


def test_regime_chain_transition_frequencies_match_the_transition_matrix() -> None:
    # Given a 3-regime chain
    transition = np.array([[0.90, 0.07, 0.03], [0.10, 0.80, 0.10], [0.05, 0.15, 0.80]])
    initial = np.array([0.2, 0.5, 0.3])
    model = RegimeSwitchingModel(transition, initial, np.zeros((3, 1)), np.full((3, 1, 1), 1e-4))
    # When its regime paths are simulated
    regimes = simulate_regimes(model, MonteCarloPlan(n_paths=40_000, horizon=10, run_seed=15))
    # Then the first day follows p0 P and each observed transition i -> j has frequency P[i, j] (3 binomial SEs)
    first = np.bincount(regimes[:, 0], minlength=3) / len(regimes)
    p1 = initial @ transition
    assert np.all(np.abs(first - p1) < 3.0 * np.sqrt(p1 * (1 - p1) / len(regimes)))
    counts = np.zeros((3, 3))
    np.add.at(counts, (regimes[:, :-1].ravel(), regimes[:, 1:].ravel()), 1)
    totals = counts.sum(axis=1, keepdims=True)
    se = np.sqrt(transition * (1 - transition) / totals)
    assert np.all(np.abs(counts / totals - transition) < 3.0 * se)


@pytest.mark.parametrize("regime", [0, 1])
def test_identity_transition_and_one_hot_start_is_the_single_regime_simulation(regime: int) -> None:
    # Given a chain that never leaves the regime it starts in, with certainty
    model = RegimeSwitchingModel(np.eye(2), np.eye(2)[regime], MEANS, COVS, assets=ASSETS)
    plan = MonteCarloPlan(n_paths=30_000, horizon=10, run_seed=16)
    # When simulated, and the same plan simulated with that regime alone
    switching = simulate_portfolio(model, WEIGHTS, plan)
    single = simulate_portfolio(one_regime(regime), WEIGHTS, plan)
    # Then every path is the same (same draws; only the order of the arithmetic differs)
    np.testing.assert_allclose(switching.terminal_pnl, single.terminal_pnl, rtol=0, atol=1e-13)
    np.testing.assert_allclose(switching.max_drawdown, single.max_drawdown, rtol=0, atol=1e-13)


# --- fan-out ----------------------------------------------------------------------------------------------------


def figures(result: MonteCarloResult) -> tuple[object, ...]:
    return (
        result.var(0.95),
        result.cvar(0.95),
        result.var(0.99),
        result.cvar(0.99),
        result.drawdown_probability(0.05),
        result.mean,
        result.std,
        result.quantile_bands().to_numpy().tobytes(),
    )


def test_one_three_and_eight_shards_give_bit_identical_figures() -> None:
    # Given one run (26 blocks, the last one partial) split three ways, shards stored as bytes and merged out of order
    model = two_regimes(innovations="student_t", dof=5.0)
    plan = MonteCarloPlan(n_paths=100_003, horizon=21, run_seed=17, block_size=4_000, fan_paths_per_block=100)
    whole = simulate_portfolio(model, WEIGHTS, plan)
    for n_shards in (3, 8):
        shards = [simulate_shard(model, WEIGHTS, plan, blocks) for blocks in plan.shards(n_shards)]
        stored = [ShardResult.from_bytes(s.to_bytes()) for s in reversed(shards)]
        merged = merge_shards(stored)
        # Then every array and figure is bit-identical to the single shard's
        assert np.array_equal(merged.terminal_pnl, whole.terminal_pnl)
        assert np.array_equal(merged.max_drawdown, whole.max_drawdown)
        assert np.array_equal(merged.fan_values, whole.fan_values)
        assert figures(merged) == figures(whole)
    # and two worker threads change nothing either
    threaded = simulate_portfolio(model, WEIGHTS, plan, n_shards=3, n_workers=2)
    assert figures(threaded) == figures(whole)
    assert whole.n_paths == 100_003 and whole.fan_values.shape == (21, 25 * 100 + 3)


def test_a_different_run_seed_gives_different_paths() -> None:
    plan = MonteCarloPlan(n_paths=5_000, horizon=5, run_seed=18)
    other = MonteCarloPlan(n_paths=5_000, horizon=5, run_seed=19)
    first = simulate_portfolio(two_regimes(), WEIGHTS, plan)
    second = simulate_portfolio(two_regimes(), WEIGHTS, other)
    again = simulate_portfolio(two_regimes(), WEIGHTS, plan)
    assert not np.array_equal(first.terminal_pnl, second.terminal_pnl)
    assert first.var(0.95) != second.var(0.95)
    assert np.array_equal(first.terminal_pnl, again.terminal_pnl)


def test_block_seeds_are_the_spawned_children_of_the_run_seed() -> None:
    # spawn_key=(b,) is SeedSequence(run_seed).spawn(n)[b]: shards can seed their blocks without spawning all of them
    children = np.random.SeedSequence(123).spawn(5)
    for block in (0, 4):
        expected = np.random.Generator(np.random.SFC64(children[block])).random(4)
        assert np.array_equal(block_generator(123, block).random(4), expected)


def test_merge_refuses_missing_duplicated_or_foreign_shards() -> None:
    plan = MonteCarloPlan(n_paths=4_000, horizon=3, run_seed=20, block_size=1_000)
    shards = [simulate_shard(two_regimes(), WEIGHTS, plan, blocks) for blocks in plan.shards(4)]
    with pytest.raises(RiskError, match="blocks"):
        merge_shards(shards[:3])
    with pytest.raises(RiskError, match="tile"):
        merge_shards([*shards, shards[1]])
    foreign = simulate_shard(two_regimes(), pd.Series([0.2, 0.3, 0.5], index=list(ASSETS)), plan, range(3, 4))
    with pytest.raises(RiskError, match="different runs"):
        merge_shards([*shards[:3], foreign])
    with pytest.raises(RiskError, match="No shard"):
        merge_shards([])
    with pytest.raises(RiskError, match="not a Monte Carlo shard"):
        ShardResult.from_bytes(b"not an npz")


# --- outputs ----------------------------------------------------------------------------------------------------


def test_var_and_cvar_of_a_hand_built_sample() -> None:
    # Given losses 0.01, 0.02, ..., 1.00 (P&L = -loss)
    plan = MonteCarloPlan(n_paths=100, horizon=1, run_seed=0)
    pnl = -np.arange(1, 101) / 100.0
    result = MonteCarloResult(plan, "x", pnl, np.zeros(100), np.ones((1, 1)))
    # Then VaR 95 % is the 95th smallest loss and CVaR the mean of the 5 largest; the order of the calls is irrelevant
    assert result.cvar(0.99) == pytest.approx(1.0, abs=1e-15)
    assert result.var(0.95) == 0.95
    assert result.cvar(0.95) == pytest.approx(np.mean([0.96, 0.97, 0.98, 0.99, 1.0]), abs=1e-15)
    fresh = MonteCarloResult(plan, "x", pnl, np.zeros(100), np.ones((1, 1)))
    assert (fresh.cvar(0.95), fresh.cvar(0.99)) == (result.cvar(0.95), result.cvar(0.99))
    # and a level between ranks takes the next order statistic (ceil(n alpha))
    assert result.var(0.951) == 0.96


@pytest.mark.parametrize("layout", ["random", "tail_hidden_from_the_pilot", "tail_only_in_the_pilot"])
def test_var_and_cvar_are_exact_order_statistics_whatever_the_layout_of_the_tail(layout: str) -> None:
    # Given 200,000 P&L values whose worst ones sit anywhere (the selection first looks at every 3rd value)
    rng = np.random.default_rng(27)
    pnl = rng.normal(0.0, 0.05, 200_000)
    if layout == "tail_hidden_from_the_pilot":
        pnl[::3] = np.abs(pnl[::3])  # the strided pilot sees only gains
    elif layout == "tail_only_in_the_pilot":
        pnl[::3] = -1.0 - np.abs(pnl[::3])  # every large loss is a pilot value: too few candidates, full partition
    plan = MonteCarloPlan(n_paths=200_000, horizon=1, run_seed=0)
    result = MonteCarloResult(plan, "x", pnl, np.zeros_like(pnl), np.ones((1, 1)))
    # Then VaR is the ceil(n alpha)-th smallest loss and CVaR the Rockafellar-Uryasev value, from a full sort
    losses = np.sort(-pnl)
    for level in (0.99, 0.95, 0.5):
        k = int(np.ceil(200_000 * level)) - 1
        assert result.var(level) == losses[k]
        expected_cvar = losses[k] + np.maximum(losses - losses[k], 0.0).sum() / (200_000 * (1 - level))
        assert result.cvar(level) == pytest.approx(expected_cvar, rel=1e-12)


def test_drawdowns_terminal_pnl_and_bands_agree_with_the_value_paths() -> None:
    # Given one block whose paths are all kept in the fan sample
    plan = MonteCarloPlan(n_paths=2_000, horizon=30, run_seed=21, block_size=2_000, fan_paths_per_block=2_000)
    result = simulate_portfolio(two_regimes(), WEIGHTS, plan)
    values = result.fan_values.T  # (paths, days)
    # Then the terminal P&L is the last value - 1 and the drawdown is computed from the running peak (start at 1)
    np.testing.assert_array_equal(result.terminal_pnl, values[:, -1] - 1.0)
    peak = np.maximum.accumulate(np.maximum(values, 1.0), axis=1)
    np.testing.assert_allclose(result.max_drawdown, (1.0 - values / peak).max(axis=1), rtol=0, atol=1e-15)
    assert result.drawdown_probability(0.05) == np.mean(result.max_drawdown > 0.05)
    # and the bands are numpy's quantiles of the values per day, today's value being 1
    bands = result.quantile_bands((0.05, 0.5, 0.95))
    assert bands.shape == (31, 3) and (bands.loc[0] == 1.0).all()
    np.testing.assert_array_equal(bands.loc[1:].to_numpy(), np.quantile(values, [0.05, 0.5, 0.95], axis=0).T)
    assert (bands[0.05] <= bands[0.5]).all() and (bands[0.5] <= bands[0.95]).all()


def test_a_return_below_minus_100_percent_ruins_the_path_and_stays_ruined() -> None:
    # Given an absurd daily volatility (80 %): some days lose more than everything
    model = RegimeSwitchingModel([[1.0]], [1.0], [[0.0]], [[[0.64]]])
    result = simulate_portfolio(model, [1.0], MonteCarloPlan(n_paths=20_000, horizon=5, run_seed=22))
    # Then those paths end at exactly -100 % with a 100 % drawdown, and none goes below
    ruined = result.terminal_pnl == -1.0
    assert 0.05 < ruined.mean() < 0.5
    assert result.terminal_pnl.min() == -1.0 and result.max_drawdown.max() == 1.0
    assert (result.max_drawdown[ruined] == 1.0).all()


# --- asset level --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("innovations", ["normal", "student_t"])
def test_asset_level_with_one_asset_reproduces_the_portfolio_level_paths(innovations: str) -> None:
    # Given a single asset: the asset-level kernel draws the same uniforms, normals (and gammas) in the same order
    model = RegimeSwitchingModel(
        TRANSITION, INITIAL, MEANS[:, :1], COVS[:, :1, :1], assets=("a",), innovations=innovations, dof=5.0
    )
    plan = MonteCarloPlan(n_paths=3_000, horizon=12, run_seed=23, block_size=1_024)
    # When both are simulated
    assets = simulate_asset_paths(model, plan)
    portfolio = simulate_portfolio(model, [1.0], plan)
    # Then the P&L agree path by path (up to rounding) and the regime paths are identical
    np.testing.assert_allclose(assets.terminal_pnl([1.0]), portfolio.terminal_pnl, rtol=0, atol=1e-13)
    assert np.array_equal(assets.regimes, simulate_regimes(model, plan))


def test_asset_level_portfolio_pnl_has_the_portfolio_level_distribution() -> None:
    # Given 3 correlated assets in 2 regimes (Student-t), asset-level and portfolio-level runs on independent seeds
    model = two_regimes(innovations="student_t", dof=6.0)
    assets = simulate_asset_paths(model, MonteCarloPlan(n_paths=20_000, horizon=10, run_seed=24))
    portfolio = simulate_portfolio(model, WEIGHTS, MonteCarloPlan(n_paths=100_000, horizon=10, run_seed=25))
    # Then the asset-level portfolio P&L is drawn from the same distribution (two-sample KS)
    pnl = assets.terminal_pnl(WEIGHTS)
    assert stats.ks_2samp(pnl, portfolio.terminal_pnl).pvalue > 0.01
    # and each regime's asset returns have the regime's covariance (Cholesky factors, standardised t)
    calm = assets.returns[assets.regimes == 0]
    np.testing.assert_allclose(np.cov(calm, rowvar=False), COVS[0], rtol=0.1, atol=3e-6)
    assert assets.returns.shape == (20_000, 10, 3)


def test_asset_level_handles_a_singular_covariance() -> None:
    # Given two perfectly correlated assets of equal volatility: a rank-1 covariance with no Cholesky factor
    model = RegimeSwitchingModel([[1.0]], [1.0], [[0.0, 0.0]], [np.full((2, 2), 1e-4)])
    # When asset paths are simulated
    paths = simulate_asset_paths(model, MonteCarloPlan(n_paths=5_000, horizon=4, run_seed=28))
    # Then both assets move together with the given volatility
    np.testing.assert_allclose(paths.returns[..., 0], paths.returns[..., 1], rtol=0, atol=1e-15)
    assert paths.returns[..., 0].std() == pytest.approx(0.01, rel=0.03)


def test_asset_level_refuses_too_many_elements() -> None:
    with pytest.raises(RiskInputError, match="max_elements"):
        simulate_asset_paths(two_regimes(), MonteCarloPlan(n_paths=10_000, horizon=10, run_seed=1), max_elements=1_000)


# --- inputs ------------------------------------------------------------------------------------------------------


def test_annual_regime_moments_are_converted_to_daily() -> None:
    # Given annual regime moments estimated from returns and a one-hot posterior
    rng = np.random.default_rng(26)
    returns = pd.DataFrame(rng.normal(0.0005, 0.01, (300, 3)), columns=list(ASSETS))
    labels = np.r_[np.zeros(150, int), np.ones(150, int)]
    posterior = pd.DataFrame(np.eye(2)[labels], index=returns.index, columns=["calm", "wild"])
    moments = regime_conditional_moments(returns, posterior)
    # When the model is built from them with initial probabilities keyed by state
    model = RegimeSwitchingModel.from_regime_moments(moments, TRANSITION, pd.Series({"wild": 0.4, "calm": 0.6}))
    # Then its moments are the daily sample moments of each regime's days
    np.testing.assert_allclose(model.means[1], returns[labels == 1].mean(), rtol=1e-12)
    np.testing.assert_allclose(model.covariances[0], returns[labels == 0].cov(), rtol=1e-12)
    assert model.states == ("calm", "wild") and model.assets == ASSETS
    np.testing.assert_array_equal(model.initial, [0.6, 0.4])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (pd.Series([0.5, np.nan, 0.5], index=list(ASSETS)), "NaN"),
        (pd.Series([0.5, 0.3, 0.3], index=list(ASSETS)), "sum to 1.1"),
        (pd.Series([0.5, 0.5], index=["a", "zzz"]), "zzz"),
        ([0.5, 0.5], "2 entries"),
    ],
)
def test_bad_weights_raise_risk_input_errors(weights: object, message: str) -> None:
    plan = MonteCarloPlan(n_paths=10, horizon=1, run_seed=1)
    with pytest.raises(RiskInputError, match=message):
        simulate_portfolio(two_regimes(), weights, plan)


def test_weights_may_omit_assets_and_follow_a_budget() -> None:
    plan = MonteCarloPlan(n_paths=1_000, horizon=2, run_seed=1)
    partial = simulate_portfolio(two_regimes(), pd.Series({"c": 0.5, "a": 0.3}), plan, budget=0.8)
    full = simulate_portfolio(two_regimes(), [0.3, 0.0, 0.5], plan, budget=0.8)
    assert np.array_equal(partial.terminal_pnl, full.terminal_pnl)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_paths": 0, "horizon": 5, "run_seed": 1}, "n_paths"),
        ({"n_paths": 10, "horizon": 0, "run_seed": 1}, "horizon"),
        ({"n_paths": 10, "horizon": -3, "run_seed": 1}, "horizon"),
        ({"n_paths": 10, "horizon": 5, "run_seed": -1}, "run_seed"),
        ({"n_paths": 10.5, "horizon": 5, "run_seed": 1}, "n_paths"),
    ],
)
def test_bad_plans_raise_risk_input_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RiskInputError, match=message):
        MonteCarloPlan(**kwargs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"transition": [[0.9, 0.2], [0.1, 0.9]]}, "not stochastic"),
        ({"transition": [[1.1, -0.1], [0.1, 0.9]]}, "negative"),
        ({"transition": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}, "square"),
        ({"initial": [0.5, 0.6]}, "not stochastic"),
        ({"covariances": COVS * np.array([1.0, -1.0])[:, None, None]}, "positive semidefinite"),
        ({"covariances": COVS + np.triu(np.full((3, 3), 1e-5), 1)}, "not symmetric"),
        ({"means": np.full((2, 3), np.nan)}, "NaN"),
        ({"innovations": "student_t"}, "dof > 2"),
        ({"innovations": "student_t", "dof": 2.0}, "dof > 2"),
        ({"innovations": "cauchy"}, "Unknown innovations"),
    ],
)
def test_bad_models_raise_risk_input_errors(changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "transition": TRANSITION,
        "initial": INITIAL,
        "means": MEANS,
        "covariances": COVS,
        "assets": ASSETS,
    } | changes
    with pytest.raises(RiskInputError, match=message):
        RegimeSwitchingModel(**arguments)


def test_bad_levels_thresholds_blocks_and_workers_raise_risk_input_errors() -> None:
    plan = MonteCarloPlan(n_paths=1_000, horizon=2, run_seed=1, block_size=500)
    result = simulate_portfolio(two_regimes(), WEIGHTS, plan)
    for call in (lambda: result.var(95), lambda: result.cvar(0.0), lambda: result.quantile_bands([1.5])):
        with pytest.raises(RiskInputError, match=r"\(0, 1\)"):
            call()
    with pytest.raises(RiskInputError, match="drawdown threshold"):
        result.drawdown_probability(-0.1)
    with pytest.raises(RiskInputError, match="outside"):
        simulate_shard(two_regimes(), WEIGHTS, plan, range(1, 3))
    with pytest.raises(RiskInputError, match="n_workers"):
        simulate_shard(two_regimes(), WEIGHTS, plan, n_workers=0)
    with pytest.raises(RiskInputError, match="n_shards"):
        plan.shards(0)
