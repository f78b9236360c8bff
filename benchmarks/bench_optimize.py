"""Optimization: single-solve times against skfolio and PyPortfolioOpt, and a monthly min-variance walk-forward.

Data: the bundled 20 stocks, daily simple returns 1990-2022.

1. Single solves on the last 756 days. We and PyPortfolioOpt take the annualised sample mean and covariance;
   skfolio takes the returns and estimates the same sample moments itself inside ``fit`` (well under a
   millisecond of its time). Best of several runs, in milliseconds, of a fresh solve each time (no solver state
   carried between runs, for anyone): minimum variance, maximum Sharpe, Black-Litterman (equal market weights,
   risk aversion 2.5, tau 0.05, He-Litterman Omega, one absolute and one relative view, then maximum Sharpe on
   the posterior moments), risk parity (equal risk contributions), minimum CVaR (95 %, historical scenarios)
   and a 50-point frontier. "n/a": the library has no such method. Where a peer solves the same problem (same
   inputs, same definition) the row also shows the largest weight difference from it.
2. Walk-forward: at each month end with 252 returns behind it, long-only fully-invested minimum variance of
   the sample covariance of the trailing 252 days (about 380 re-solves). The three contenders do the same
   work from the same input, each month's returns window as a DataFrame, to the weights:

   * us: ``sample_covariance(window)`` (our validated estimator) then
     ``MeanVarianceOptimizer("min_variance").solve_weights(None, cov)``, one optimizer built once and re-solved.
     It keeps the last active set between months and returns it only when the KKT conditions verify it (an
     algorithmic advantage of re-solving a sequence, not a cache: every month is solved from its own data);
   * cvxpy DPP: a problem built once with a covariance-factor Parameter, re-solved with Clarabel at the same
     tolerances as ours and the same scaling (Cholesky factor of ``cov / mean variance``), i.e. the best settings
     we would use in good faith (looser tolerances leave weights off by up to ~1e-4 on some windows);
   * skfolio: ``MeanRisk(MINIMIZE_RISK, VARIANCE)`` refitted on each window (its own sample covariance), as
     shipped and "tuned": its documented accuracy knobs ``scale_objective=1e4`` (daily variances are ~1e-4, so
     the objective becomes O(1)) and Clarabel gaps of 1e-10. As shipped, its weights are off the exact optimum
     by up to ~1e-3 on some windows; tuned, by a few 1e-6. The ratio and the weight difference use the tuned
     configuration
     (its run time is about that of the shipped one; the shipped one is timed once, for information).

   Every timed contender gets the same warm-up (five windows) and the best of the same number of runs.

The last line is exactly
``RESULT walk_forward_vs_skfolio=<x> walk_forward_vs_cvxpy_dpp=<y> max_abs_weight_diff=<z>``:
x and y how many times faster our walk-forward is than skfolio's and than the cvxpy DPP problem, z the largest
weight difference from skfolio over the whole walk-forward (every month, every asset).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from portfolio_engine.adapters.market_data.bundled import DEFAULT_UNIVERSE, BundledSource
from portfolio_engine.optimization import MeanVarianceOptimizer, efficient_frontier, max_sharpe, min_variance
from portfolio_engine.optimization._solvers import SOLVER_OPTIONS
from portfolio_engine.optimization.moments import Moments, sample_covariance

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

ASSETS = tuple(DEFAULT_UNIVERSE)
WINDOW = 252
SINGLE_WINDOW = 756
RISK_AVERSION = 2.5
TAU = 0.05
SKFOLIO_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10}
WALK_REPEAT = 3  # best of, for every timed walk-forward


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls, and the last call's result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def load_returns() -> pd.DataFrame:
    bars = BundledSource().fetch(ASSETS)
    prices = bars.pivot(index="date", columns="symbol", values="adj_close")[list(ASSETS)]
    return prices.pct_change().iloc[1:]


# --- single solves -------------------------------------------------------------------------------------------


def ours_rows(moments: Moments, returns: pd.DataFrame) -> dict[str, Callable[[], Any] | None]:
    rows: dict[str, Callable[[], Any] | None] = {
        "min-variance": lambda: min_variance(moments).weights.to_numpy(),
        "max Sharpe": lambda: max_sharpe(moments).weights.to_numpy(),
        "50-point frontier": lambda: efficient_frontier(moments, n_points=50).weights.to_numpy(),
    }
    try:
        from portfolio_engine.optimization.black_litterman import RelativeView, black_litterman

        market = pd.Series(1.0 / len(ASSETS), index=list(ASSETS))

        def bl() -> np.ndarray:
            posterior = black_litterman(
                moments.cov,
                market,
                risk_aversion=RISK_AVERSION,
                tau=TAU,
                absolute={"AAPL": 0.10},
                relative=[RelativeView(long=["JPM"], short=["BAC"], outperformance=0.02)],
            )
            return max_sharpe(posterior).weights.to_numpy()

        rows["Black-Litterman"] = bl
    except ImportError:
        rows["Black-Litterman"] = None
    try:
        from portfolio_engine.optimization.risk_parity import risk_budgeting_weights

        rows["risk parity"] = lambda: risk_budgeting_weights(moments.cov).weights.to_numpy()
    except ImportError:
        rows["risk parity"] = None
    try:
        from portfolio_engine.optimization.cvar import minimize_cvar

        rows["min-CVaR"] = lambda: minimize_cvar(returns, beta=0.95).weights.to_numpy()
    except ImportError:
        rows["min-CVaR"] = None
    return rows


def skfolio_rows(returns: pd.DataFrame) -> dict[str, Callable[[], Any] | None]:
    from skfolio import RiskMeasure
    from skfolio.moments import EquilibriumMu
    from skfolio.optimization import MeanRisk, ObjectiveFunction, RiskBudgeting
    from skfolio.prior import BlackLitterman, EmpiricalPrior

    def fit(model: Any) -> np.ndarray:
        return np.asarray(model.fit(returns).weights_)

    daily_views = [f"AAPL == {0.10 / 252!r}", f"JPM - BAC == {0.02 / 252!r}"]
    variance = RiskMeasure.VARIANCE
    minimise, ratio = ObjectiveFunction.MINIMIZE_RISK, ObjectiveFunction.MAXIMIZE_RATIO
    return {
        "min-variance": lambda: fit(MeanRisk(objective_function=minimise, risk_measure=variance)),
        "max Sharpe": lambda: fit(MeanRisk(objective_function=ratio, risk_measure=variance)),
        "Black-Litterman": lambda: fit(
            MeanRisk(
                objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                risk_measure=variance,
                prior_estimator=BlackLitterman(
                    views=daily_views,
                    tau=TAU,
                    prior_estimator=EmpiricalPrior(mu_estimator=EquilibriumMu(risk_aversion=RISK_AVERSION)),
                ),
            )
        ),
        "risk parity": lambda: fit(RiskBudgeting(risk_measure=variance)),
        "min-CVaR": lambda: fit(
            MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.CVAR, cvar_beta=0.95)
        ),
        "50-point frontier": lambda: fit(MeanRisk(risk_measure=variance, efficient_frontier_size=50)),
    }


def pypfopt_rows(moments: Moments, returns: pd.DataFrame) -> dict[str, Callable[[], Any] | None]:
    from pypfopt import BlackLittermanModel, EfficientCVaR, EfficientFrontier
    from pypfopt.black_litterman import market_implied_prior_returns

    mu, cov = moments.mu, moments.cov

    def frontier() -> np.ndarray:
        low = float(mu @ min_weights())
        targets = np.linspace(low, float(mu.max()) - 1e-6, 50)
        rows = []
        for target in targets:
            ef = EfficientFrontier(mu, cov)
            ef.efficient_return(float(target))
            rows.append(ef.weights)
        return np.array(rows)

    def min_weights() -> np.ndarray:
        ef = EfficientFrontier(mu, cov)
        ef.min_volatility()
        return np.asarray(ef.weights)

    def sharpe() -> np.ndarray:
        ef = EfficientFrontier(mu, cov)
        ef.max_sharpe(risk_free_rate=0.0)
        return np.asarray(ef.weights)

    def bl() -> np.ndarray:
        caps = pd.Series(1.0, index=list(ASSETS))
        prior = market_implied_prior_returns(caps, RISK_AVERSION, cov)
        picking = np.zeros((2, len(ASSETS)))
        picking[0, ASSETS.index("AAPL")] = 1.0
        picking[1, ASSETS.index("JPM")], picking[1, ASSETS.index("BAC")] = 1.0, -1.0
        model = BlackLittermanModel(cov, pi=prior, P=picking, Q=np.array([0.10, 0.02]), tau=TAU)
        ef = EfficientFrontier(model.bl_returns(), model.bl_cov())
        ef.max_sharpe(risk_free_rate=0.0)
        return np.asarray(ef.weights)

    def cvar() -> np.ndarray:
        ef = EfficientCVaR(mu, returns, beta=0.95)
        ef.min_cvar()
        return np.asarray(ef.weights)

    return {
        "min-variance": min_weights,
        "max Sharpe": sharpe,
        "Black-Litterman": bl,
        "risk parity": None,  # PyPortfolioOpt has no risk parity (only HRP)
        "min-CVaR": cvar,
        "50-point frontier": frontier,
    }


def single_solves(returns: pd.DataFrame) -> list[tuple[str, float | None, float | None, float | None, str]]:
    window = returns.iloc[-SINGLE_WINDOW:]
    moments = Moments(window.mean() * 252, window.cov() * 252)
    libraries = [ours_rows(moments, window), skfolio_rows(window), pypfopt_rows(moments, window)]
    # Rows where a peer solves the same problem (definitions, inputs and defaults); None: not comparable.
    same_problem: dict[str, tuple[bool, bool]] = {
        "min-variance": (True, True),
        "max Sharpe": (True, True),
        "Black-Litterman": (False, True),  # skfolio's views are daily and its prior differs; PyPortfolioOpt's match
        "risk parity": (True, False),
        "min-CVaR": (True, True),
    }
    table = []
    for row in ("min-variance", "max Sharpe", "Black-Litterman", "risk parity", "min-CVaR", "50-point frontier"):
        times: list[float | None] = []
        weights: list[Any] = []
        for library in libraries:
            fn = library.get(row)
            if fn is None:
                times.append(None)
                weights.append(None)
                continue
            fn()  # warm-up (imports, first compilation)
            repeat = 3 if row == "50-point frontier" else 7
            seconds, w = best_of(fn, repeat)
            times.append(seconds * 1e3)
            weights.append(w)
        note = ""
        if row in same_problem and weights[0] is not None:
            diffs = [
                f"{float(np.abs(np.asarray(weights[0]) - np.asarray(w)).max()):.1e}" if w is not None and same else "-"
                for w, same in zip(weights[1:], same_problem[row], strict=True)
            ]
            note = "max |dw| vs skfolio / PyPortOpt " + " / ".join(diffs)
        table.append((row, times[0], times[1], times[2], note))
    return table


# --- walk-forward --------------------------------------------------------------------------------------------


def rebalance_ends(index: pd.DatetimeIndex) -> list[int]:
    """Exclusive end positions of the windows: one per month end with WINDOW returns behind it."""
    positions = pd.Series(np.arange(len(index)), index=index)
    last = positions.groupby(index.to_period("M")).max().to_numpy() + 1
    return [int(e) for e in last if e >= WINDOW]


def windows(returns: pd.DataFrame, ends: list[int]) -> list[pd.DataFrame]:
    """Each month's trailing window, as the DataFrame every contender starts from (sliced once, for all)."""
    return [returns.iloc[end - WINDOW : end] for end in ends]


def walk_ours(frames: list[pd.DataFrame]) -> np.ndarray:
    optimizer = MeanVarianceOptimizer("min_variance")
    out = np.empty((len(frames), frames[0].shape[1]))
    for i, window in enumerate(frames):
        out[i] = optimizer.solve_weights(None, sample_covariance(window))
    return out


def walk_ours_moments(frames: list[pd.DataFrame]) -> np.ndarray:
    """The same through the pandas API: Moments in, OptimizationResult out (for information)."""
    optimizer = MeanVarianceOptimizer("min_variance")
    out = np.empty((len(frames), frames[0].shape[1]))
    for i, window in enumerate(frames):
        moments = Moments(window.mean() * 252, sample_covariance(window))
        out[i] = optimizer.solve(moments).weights.to_numpy()
    return out


def walk_cvxpy(frames: list[pd.DataFrame]) -> np.ndarray:
    n = frames[0].shape[1]
    factor = cp.Parameter((n, n))
    w = cp.Variable(n)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(factor @ w)), [cp.sum(w) == 1, w >= 0])
    assert problem.is_dcp(dpp=True)
    out = np.empty((len(frames), n))
    for i, window in enumerate(frames):
        cov = np.cov(window.to_numpy(), rowvar=False) * 252
        factor.value = np.linalg.cholesky(cov / (np.trace(cov) / n)).T
        problem.solve(solver=cp.CLARABEL, **SOLVER_OPTIONS["CLARABEL"])
        out[i] = w.value
    return out


def walk_skfolio(frames: list[pd.DataFrame], *, tuned: bool) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    options: dict[str, Any] = {"scale_objective": 1e4, "solver_params": SKFOLIO_TIGHT} if tuned else {}
    model = MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.VARIANCE, **options)
    out = np.empty((len(frames), frames[0].shape[1]))
    for i, window in enumerate(frames):
        out[i] = model.fit(window).weights_
    return out


def main() -> None:
    returns = load_returns()
    print(f"bundled 20 stocks: {len(returns)} daily returns, {returns.index[0].date()} to {returns.index[-1].date()}")
    print()
    print(f"single solves on the last {SINGLE_WINDOW} days (best time, ms)")
    print(f"{'method':<20}{'ours':>10}{'skfolio':>10}{'PyPortOpt':>11}   notes")

    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    for row, ours, skf, ppo, note in single_solves(returns):
        print(f"{row:<20}{cell(ours):>10}{cell(skf):>10}{cell(ppo):>11}   {note}")
    ends = rebalance_ends(returns.index)
    frames = windows(returns, ends)
    print()
    print(f"walk-forward: {len(ends)} monthly re-solves, long-only min variance, {WINDOW}-day sample covariance")
    contenders: dict[str, Callable[[list[pd.DataFrame]], np.ndarray]] = {
        "ours": walk_ours,
        "ours_moments": walk_ours_moments,
        "cvxpy": walk_cvxpy,
        "skfolio_tuned": lambda f: walk_skfolio(f, tuned=True),
    }
    timed: dict[str, tuple[float, np.ndarray]] = {}
    for name, walk in contenders.items():
        walk(frames[:5])  # the same warm-up for everyone (imports, cvxpy's compilation, first calls)
        timed[name] = best_of(lambda walk=walk: walk(frames), WALK_REPEAT)
    t_ours, w_ours = timed["ours"]
    t_moments, _ = timed["ours_moments"]
    t_cvxpy, w_cvxpy = timed["cvxpy"]
    t_sk_tuned, w_sk_tuned = timed["skfolio_tuned"]
    t_sk_default, w_sk_default = best_of(lambda: walk_skfolio(frames, tuned=False), 1)  # information only
    rows = [
        ("ours (returns window -> weights)", t_ours, 0.0),
        ("ours (Moments -> OptimizationResult)", t_moments, 0.0),
        ("cvxpy DPP, Clarabel", t_cvxpy, float(np.abs(w_cvxpy - w_ours).max())),
        ("skfolio MeanRisk, tuned", t_sk_tuned, float(np.abs(w_sk_tuned - w_ours).max())),
        ("skfolio MeanRisk, as shipped (1 run)", t_sk_default, float(np.abs(w_sk_default - w_ours).max())),
    ]
    print(f"{'':<40}{'total s':>9}{'ms/solve':>10}{'x ours':>9}{'max|dw|':>11}")
    for name, seconds, diff in rows:
        print(f"{name:<40}{seconds:>9.3f}{seconds / len(ends) * 1e3:>10.3f}{seconds / t_ours:>9.1f}{diff:>11.1e}")
    variances = np.array([[w @ (np.cov(f.to_numpy(), rowvar=False) * 252) @ w for f, w in zip(frames, ws, strict=True)]
                          for ws in (w_ours, w_sk_tuned)])  # fmt: skip
    excess = (variances[1] - variances[0]) / variances[0]
    print(
        f"objective check: (skfolio's variance - ours) / ours ranges over [{excess.min():.1e}, {excess.max():.1e}]; "
        f"lowest weight: ours {w_ours.min():.1e}, skfolio's {w_sk_tuned.min():.1e} (< 0: outside the long-only set)"
    )
    x = t_sk_tuned / t_ours
    y = t_cvxpy / t_ours
    z = float(np.abs(w_sk_tuned - w_ours).max())
    print(f"RESULT walk_forward_vs_skfolio={x:.1f} walk_forward_vs_cvxpy_dpp={y:.1f} max_abs_weight_diff={z:.2e}")


if __name__ == "__main__":
    main()
