"""Regime-switching Monte Carlo of a portfolio's P&L, with deterministic fan-out over shards.

A Markov chain over regimes (an HMM's transition matrix, started from today's filtered probabilities)
drives per-regime daily return moments; innovations are Normal or Student-t. Units: DAILY simple returns
(:meth:`RegimeSwitchingModel.from_regime_moments` converts annual ``RegimeMoments``); the horizon is in days.

**Portfolio level** (:func:`simulate_shard`, :func:`simulate_portfolio`). With weights rebalanced daily to
``w``, a day's portfolio return in regime ``k`` is ``w' r`` with ``r ~ N(mu_k, Sigma_k)``, i.e. exactly
``N(w' mu_k, w' Sigma_k w)``; a multivariate Student-t stays univariate t with the same dof under a linear
map. So each path-day draws one uniform (the regime), one standard normal instead of ``n_assets`` and, for
Student-t, one standard gamma (``t = z sqrt(dof / chi2)``, ``chi2 = 2 G``). The value compounds,
``V_h = prod_{t <= h} (1 + r_t)``; P&L is ``V_H - 1`` (a fraction of today's value), the loss ``-P&L``;
VaR/CVaR are positive losses at confidence ``alpha``.

**Fan-out.** Paths come in fixed-size blocks; block ``b`` draws from ``SeedSequence(run_seed,
spawn_key=(b,))`` (= ``SeedSequence(run_seed).spawn(n)[b]``). A shard is a contiguous range of blocks; its
output (every path's terminal P&L and maximum drawdown, plus a fixed fan sample per block) is concatenated
in block order by :func:`merge_shards`, so 1, 8 or 64 shards give bit-identical VaR, CVaR, drawdown
probabilities and quantile bands, and so do any number of worker threads. Blocks stream: only the blocks
being simulated hold day-level arrays (``horizon x block_size`` floats each).

**Asset level** (:func:`simulate_asset_paths`): ``r = mu_s + L_s z`` with per-regime Cholesky factors,
for callers that need every asset's path, on a modest number of paths. Same seeds and draw order: the same
plan gives the same regime paths as the portfolio-level simulation.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._mc_inputs import Innovations, RegimeSwitchingModel, check_weights
from portfolio_engine.risk._mc_kernel import (
    PortfolioKernel,
    Workspace,
    asset_block,
    block_generator,
    chain_tables,
    regime_codes,
)
from portfolio_engine.risk._mc_plan import MonteCarloPlan
from portfolio_engine.risk._mc_results import MonteCarloResult, ShardResult, merge_shards

__all__ = [
    "AssetPaths",
    "Innovations",
    "MonteCarloPlan",
    "MonteCarloResult",
    "RegimeSwitchingModel",
    "ShardResult",
    "check_weights",
    "merge_shards",
    "simulate_asset_paths",
    "simulate_portfolio",
    "simulate_regimes",
    "simulate_shard",
]

T = TypeVar("T")

#: Largest ``n_paths x horizon x n_assets`` that :func:`simulate_asset_paths` returns (8 bytes each: 400 MB).
MAX_ASSET_PATH_ELEMENTS = 50_000_000


def _check_blocks(plan: MonteCarloPlan, blocks: range | None) -> range:
    if blocks is None:
        return range(plan.n_blocks)
    if not isinstance(blocks, range) or blocks.step != 1 or len(blocks) == 0:
        raise RiskInputError(
            f"blocks must be a non-empty contiguous range; got {blocks!r}.", hint="Use one of plan.shards(n)."
        )
    if blocks.start < 0 or blocks.stop > plan.n_blocks:
        raise RiskInputError(
            f"blocks {blocks.start}..{blocks.stop - 1} fall outside the run's {plan.n_blocks} blocks.",
            hint="Use one of plan.shards(n).",
        )
    return blocks


def _check_workers(n_workers: int) -> int:
    if isinstance(n_workers, bool) or not isinstance(n_workers, int | np.integer) or n_workers <= 0:
        raise RiskInputError(f"n_workers must be a positive integer; got {n_workers!r}.", hint="Use 1 or 2.")
    return int(n_workers)


def _fingerprint(plan: MonteCarloPlan, kernel: PortfolioKernel, innovations: str) -> str:
    digest = hashlib.sha256(json.dumps({**plan.to_dict(), "innovations": innovations, "dof": kernel.dof}).encode())
    for array in (kernel.growth, kernel.vols, kernel.tables.first, kernel.tables.rows):
        digest.update(np.ascontiguousarray(array, dtype="float64").tobytes())
    return digest.hexdigest()


def _run_blocks(task: Callable[[int, Workspace], T], blocks: range, n_workers: int) -> list[T]:
    """Run ``task(block, workspace)`` over the blocks, results in block order; threads only change the wall time.

    Each worker thread keeps its own :class:`Workspace`, so day-level buffers are allocated once per thread.
    """
    if n_workers == 1 or len(blocks) == 1:
        workspace = Workspace()
        return [task(b, workspace) for b in blocks]
    local = threading.local()

    def run(block: int) -> T:
        if not hasattr(local, "workspace"):
            local.workspace = Workspace()
        return task(block, local.workspace)

    # numpy releases the GIL while it draws variates and runs ufunc loops, so threads use both cores.
    with ThreadPoolExecutor(max_workers=n_workers) as executor:
        return list(executor.map(run, blocks))


def simulate_shard(
    model: RegimeSwitchingModel,
    weights: Any,
    plan: MonteCarloPlan,
    blocks: range | None = None,
    *,
    budget: float = 1.0,
    n_workers: int = 1,
) -> ShardResult:
    """Simulate the portfolio's value paths of some blocks of a run (one shard).

    Parameters
    ----------
    model : RegimeSwitchingModel
        Daily per-regime moments, transition matrix, today's regime probabilities, innovations.
    weights : Series indexed by asset, or array-like of shape (n_assets,)
        Portfolio weights (fractions of value), summing to ``budget``; rebalanced daily.
    plan : MonteCarloPlan
        Number of paths, horizon (days), seed, block size, fan sample size.
    blocks : range, optional
        The shard's contiguous blocks (one of ``plan.shards(n)``); default every block.
    budget : float, default 1.0
    n_workers : int, default 1
        Threads simulating blocks concurrently. Does not change the result.

    Returns
    -------
    ShardResult
        Terminal P&L and maximum drawdown of each of the shard's paths, and its fan sample.

    Raises
    ------
    RiskInputError
        Bad weights (NaN, unknown assets, wrong sum), blocks outside the run, or a bad ``n_workers``.
    """
    blocks = _check_blocks(plan, blocks)
    workers = _check_workers(n_workers)
    means, vols = model.portfolio_moments(weights, budget=budget)
    kernel = PortfolioKernel(
        run_seed=plan.run_seed,
        horizon=plan.horizon,
        fan_paths=plan.fan_paths_per_block,
        growth=1.0 + means,
        vols=vols,
        tables=chain_tables(model),
        dof=model.dof,
    )
    sizes = [plan.block_paths(b) for b in blocks]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    fan_sizes = [min(n, plan.fan_paths_per_block) for n in sizes]
    fan_starts = np.concatenate([[0], np.cumsum(fan_sizes)])
    terminal_pnl = np.empty(int(starts[-1]))
    max_drawdown = np.empty(int(starts[-1]))
    fan_values = np.empty((plan.horizon, int(fan_starts[-1])))

    def task(block: int, workspace: Workspace) -> None:
        i = block - blocks.start
        paths = slice(int(starts[i]), int(starts[i + 1]))
        fan = slice(int(fan_starts[i]), int(fan_starts[i + 1]))
        kernel.simulate(block, terminal_pnl[paths], max_drawdown[paths], fan_values[:, fan], workspace)

    _run_blocks(task, blocks, workers)
    return ShardResult(
        fingerprint=_fingerprint(plan, kernel, model.innovations),
        plan=plan,
        first_block=blocks.start,
        stop_block=blocks.stop,
        terminal_pnl=terminal_pnl,
        max_drawdown=max_drawdown,
        fan_values=fan_values,
    )


def simulate_portfolio(
    model: RegimeSwitchingModel,
    weights: Any,
    plan: MonteCarloPlan,
    *,
    budget: float = 1.0,
    n_shards: int = 1,
    n_workers: int = 1,
) -> MonteCarloResult:
    """Simulate every block of a run (as ``n_shards`` shards) and merge: the whole P&L distribution.

    Parameters
    ----------
    model, weights, plan, budget, n_workers
        As for :func:`simulate_shard`.
    n_shards : int, default 1
        Split the run as a fan-out would (the result does not depend on it).

    Returns
    -------
    MonteCarloResult
        ``var(alpha)``, ``cvar(alpha)``, ``drawdown_probability(x)``, ``quantile_bands(levels)``, ``mean``, ``std``.

    Raises
    ------
    RiskInputError
        As for :func:`simulate_shard`, or a bad ``n_shards``.
    """
    return merge_shards(
        simulate_shard(model, weights, plan, shard, budget=budget, n_workers=n_workers)
        for shard in plan.shards(n_shards)
    )


def simulate_regimes(model: RegimeSwitchingModel, plan: MonteCarloPlan, blocks: range | None = None) -> np.ndarray:
    """The regime paths of a run (the same ones both simulations use), without simulating returns.

    Returns
    -------
    ndarray of uint8, shape (n_block_paths, horizon)
        Regime codes (indices into ``model.states``) of the blocks' paths, in block order.

    Raises
    ------
    RiskInputError
        Blocks outside the run.
    """
    tables = chain_tables(model)

    def task(block: int, workspace: Workspace) -> np.ndarray:
        uniforms = block_generator(plan.run_seed, block).random((plan.horizon, plan.block_paths(block)))
        return regime_codes(uniforms, tables, workspace).T.copy()

    return np.concatenate(_run_blocks(task, _check_blocks(plan, blocks), 1))


@dataclass(frozen=True, eq=False)
class AssetPaths:
    """Asset-level paths: daily simple returns of every asset and the regime of every path-day.

    Attributes
    ----------
    returns : ndarray of shape (n_paths, horizon, n_assets)
    regimes : ndarray of uint8, shape (n_paths, horizon)
    assets : tuple
    """

    returns: np.ndarray
    regimes: np.ndarray
    assets: tuple[Any, ...]

    def portfolio_values(self, weights: Any, *, budget: float = 1.0) -> np.ndarray:
        """Value paths ``V_1 .. V_H`` (today = 1) of the daily-rebalanced portfolio, shape (n_paths, horizon).

        As in the portfolio-level simulation, a day's return below -100 % is floored at -100 %.

        Raises
        ------
        RiskInputError
            Bad weights.
        """
        w = check_weights(weights, self.assets, budget=budget)
        growth = np.maximum(1.0 + self.returns @ w, 0.0)
        return np.cumprod(growth, axis=1)

    def terminal_pnl(self, weights: Any, *, budget: float = 1.0) -> np.ndarray:
        """``V_H - 1`` per path, shape (n_paths,)."""
        return self.portfolio_values(weights, budget=budget)[:, -1] - 1.0


def simulate_asset_paths(
    model: RegimeSwitchingModel,
    plan: MonteCarloPlan,
    blocks: range | None = None,
    *,
    max_elements: int = MAX_ASSET_PATH_ELEMENTS,
) -> AssetPaths:
    """Every asset's daily returns on the paths of some blocks (slower; for callers that need assets).

    Within regime ``k``: ``r = mu_k + L_k z`` (Normal) or ``mu_k + L_k z sqrt((dof - 2) / chi2_dof)`` (standardised
    multivariate t, one chi-square per path-day shared by the assets), ``L_k`` the Cholesky factor of
    ``Sigma_k``. Draws ``n_assets`` normals per path-day.

    Parameters
    ----------
    model : RegimeSwitchingModel
    plan : MonteCarloPlan
    blocks : range, optional
        Default every block.
    max_elements : int, default 50,000,000
        Refuse to build more than this many ``path x day x asset`` returns.

    Returns
    -------
    AssetPaths

    Raises
    ------
    RiskInputError
        Too many elements, or blocks outside the run.
    """
    blocks = _check_blocks(plan, blocks)
    n_paths = sum(plan.block_paths(b) for b in blocks)
    elements = n_paths * plan.horizon * model.n_assets
    if elements > max_elements:
        raise RiskInputError(
            f"{n_paths} paths x {plan.horizon} days x {model.n_assets} assets = {elements:,} returns exceeds "
            f"max_elements={max_elements:,}.",
            hint="Use simulate_portfolio for the P&L distribution, fewer paths (blocks), or raise max_elements.",
        )
    factors, tables = model.factors(), chain_tables(model)
    returns = np.empty((n_paths, plan.horizon, model.n_assets))
    regimes = np.empty((n_paths, plan.horizon), dtype=np.uint8)
    start = 0
    for block in blocks:
        stop = start + plan.block_paths(block)
        returns[start:stop], regimes[start:stop] = asset_block(
            model, factors, tables, plan.run_seed, block, stop - start, plan.horizon
        )
        start = stop
    return AssetPaths(returns=returns, regimes=regimes, assets=model.assets)
