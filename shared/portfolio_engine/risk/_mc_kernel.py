"""Block kernels of the regime-switching Monte Carlo: seeding, draws, the regime chain, and the path recursions.

Arrays are time-major, ``(horizon, n_paths_in_block)``, so that each day's row is contiguous and the
day-by-day recursions (the regime chain, compounding, the running peak) stay in cache. Every day-level
array lives in a :class:`Workspace` reused from block to block: first touches of fresh memory (page faults)
cost more here than the arithmetic.

Per block, in this order: ``horizon x n`` uniforms (the regime chain), then the innovations
(``horizon x n`` standard normals for the portfolio-level kernel, ``horizon x n x n_assets`` for the
asset-level one), then, for Student-t innovations, ``horizon x n`` standard gammas. Both kernels therefore
see the same regime paths for the same plan, and with one asset the same innovations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from portfolio_engine.risk._mc_inputs import RegimeSwitchingModel

__all__ = [
    "ChainTables",
    "PortfolioKernel",
    "Workspace",
    "asset_block",
    "block_generator",
    "chain_tables",
    "draw_block",
    "regime_codes",
]


#: Days of growth factors computed per call (a few rows: fewer calls, still in cache).
GROWTH_CHUNK_DAYS = 3
#: A bound on |z| from numpy's standard_normal (its largest possible draw is about 13.7).
NORMAL_DRAW_BOUND = 40.0


class Workspace:
    """Named scratch buffers, grown on demand and reused: one per worker thread, never shared."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """A C-contiguous array of ``shape`` over the buffer ``name`` (contents undefined)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != np.dtype(dtype):
            buffer = np.empty(size, dtype=dtype)
            self._buffers[name] = buffer
        return buffer[:size].reshape(shape)


def block_generator(run_seed: int, block: int) -> np.random.Generator:
    """The generator of one block: SFC64 seeded by ``SeedSequence(run_seed, spawn_key=(block,))``.

    ``SeedSequence(run_seed, spawn_key=(b,))`` is the ``b``-th child of ``SeedSequence(run_seed).spawn(...)``,
    built in O(1). SFC64 is numpy's fastest bit generator here.
    """
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(run_seed, spawn_key=(block,))))


def draw_block(
    generator: np.random.Generator,
    horizon: int,
    n_paths: int,
    *,
    n_assets: int | None = None,
    dof: float | None = None,
    workspace: Workspace | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every random variate one block needs, in the fixed order: uniforms, normals, gammas.

    Parameters
    ----------
    generator : numpy.random.Generator
    horizon, n_paths : int
    n_assets : int, optional
        Draw ``(horizon, n_paths, n_assets)`` normals (asset level) instead of ``(horizon, n_paths)``.
    dof : float, optional
        Student-t degrees of freedom: also draw ``(horizon, n_paths)`` standard gammas of shape ``dof / 2``.
    workspace : Workspace, optional
        Buffers to draw into (default fresh arrays).

    Returns
    -------
    uniforms : ndarray of shape (horizon, n_paths)
    normals : ndarray of shape (horizon, n_paths) or (horizon, n_paths, n_assets)
    gammas : ndarray of shape (horizon, n_paths), or None
    """
    ws = workspace if workspace is not None else Workspace()
    uniforms = generator.random(out=ws.array("uniforms", (horizon, n_paths)))
    shape = (horizon, n_paths) if n_assets is None else (horizon, n_paths, n_assets)
    normals = generator.standard_normal(out=ws.array("normals", shape))
    gammas = None
    if dof is not None:
        gammas = generator.standard_gamma(dof / 2.0, out=ws.array("gammas", (horizon, n_paths)))
    return uniforms, normals, gammas


@dataclass(frozen=True)
class ChainTables:
    """Cumulative thresholds of the regime chain: the next regime is the number of thresholds ``<= u``.

    Attributes
    ----------
    first : ndarray of shape (n_regimes - 1,)
        Cumulative probabilities of the first simulated day's regime, ``initial @ transition``.
    rows : ndarray of shape (n_regimes, n_regimes - 1)
        Cumulative probabilities of each transition row (the last column, 1, is implicit).
    """

    first: np.ndarray
    rows: np.ndarray


def chain_tables(model: RegimeSwitchingModel) -> ChainTables:
    """The chain's thresholds from the model's transition matrix and initial probabilities."""
    first = np.cumsum(model.initial @ model.transition)[:-1]
    rows = np.cumsum(model.transition, axis=1)[:, :-1]
    return ChainTables(first=np.ascontiguousarray(first), rows=np.ascontiguousarray(rows))


def _count_at_or_below(uniforms: np.ndarray, thresholds: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
    """``out = sum_j (u >= t_j)`` (uint8): the regime a uniform selects from one row of cumulative probabilities."""
    if len(thresholds) == 1:
        np.greater_equal(uniforms, thresholds[0], out=out.view(np.bool_))
        return
    out.fill(0)
    for threshold in thresholds:
        np.greater_equal(uniforms, threshold, out=scratch)
        np.add(out, scratch.view(np.uint8), out=out)


def regime_codes(uniforms: np.ndarray, tables: ChainTables, workspace: Workspace | None = None) -> np.ndarray:
    """Regime of every path on every day from one uniform per path-day (inverse CDF of the transition row).

    Parameters
    ----------
    uniforms : ndarray of shape (horizon, n_paths)
    tables : ChainTables
    workspace : Workspace, optional

    Returns
    -------
    ndarray of uint8, shape (horizon, n_paths)
        Regime codes ``0 .. n_regimes - 1`` (a workspace buffer when a workspace is given).
    """
    ws = workspace if workspace is not None else Workspace()
    horizon, n_paths = uniforms.shape
    n_regimes = tables.rows.shape[0]
    codes = ws.array("codes", (horizon, n_paths), np.uint8)
    if n_regimes == 1:
        codes.fill(0)
        return codes
    scratch = ws.array("chain_scratch", (horizon, n_paths), np.bool_)
    _count_at_or_below(uniforms[0], tables.first, codes[0], scratch[0])
    if horizon == 1:
        return codes
    # The next regime from every possible previous regime, for the whole block at once (cheap comparisons);
    # the day loop then only selects, with uint8 arithmetic: s_h = nxt_0 + sum_k [s_{h-1} = k] (nxt_k - nxt_0).
    rest, rest_scratch = uniforms[1:], scratch[1:]
    base = ws.array("chain_base", rest.shape, np.uint8)
    _count_at_or_below(rest, tables.rows[0], base, rest_scratch)
    deltas = []
    for k in range(1, n_regimes):
        delta = ws.array(f"chain_delta_{k}", rest.shape, np.uint8)
        _count_at_or_below(rest, tables.rows[k], delta, rest_scratch)
        # uint8 differences wrap modulo 256; the selected sum is exact because it lies in 0 .. K-1.
        np.subtract(delta, base, out=delta)
        deltas.append(delta)
    selected = scratch[0]
    term = ws.array("chain_term", (n_paths,), np.uint8)
    for h in range(1, horizon):
        previous, current = codes[h - 1], codes[h]
        for k, delta in enumerate(deltas, start=1):
            # With two regimes the previous code is itself the indicator of regime 1.
            indicator = previous if n_regimes == 2 else np.equal(previous, k, out=selected).view(np.uint8)
            np.multiply(indicator, delta[h - 1], out=current if k == 1 else term)
            if k > 1:
                np.add(current, term, out=current)
        np.add(current, base[h - 1], out=current)
    return codes


@dataclass(frozen=True)
class PortfolioKernel:
    """Portfolio-level block simulation: one uniform, one normal (and for Student-t one gamma) per path-day.

    Within regime ``k`` the portfolio's daily simple return is ``m_k + v_k e`` with ``m_k = w' mu_k``,
    ``v_k = sqrt(w' Sigma_k w)`` and ``e`` standard Normal, or standardised Student-t with ``dof`` degrees of
    freedom (a linear map of a multivariate t is univariate t with the same dof). The value compounds daily,
    ``V_h = prod_{t <= h} (1 + r_t)`` (weights rebalanced to ``w`` every day); a day's return below -100 % is
    floored at -100 % (ruin is absorbing).
    """

    run_seed: int
    horizon: int
    fan_paths: int
    growth: np.ndarray  # (K,) 1 + m_k
    vols: np.ndarray  # (K,) v_k
    tables: ChainTables
    dof: float | None

    def simulate(
        self, block: int, terminal_pnl: np.ndarray, max_drawdown: np.ndarray, fan_values: np.ndarray, ws: Workspace
    ) -> None:
        """Simulate one block of ``len(terminal_pnl)`` paths into the given output slices.

        Parameters
        ----------
        block : int
        terminal_pnl, max_drawdown : ndarray of shape (n_paths,)
            Written: ``V_H - 1`` and ``max_h (1 - V_h / max(1, V_1 .. V_h))`` per path.
        fan_values : ndarray of shape (horizon, min(n_paths, fan_paths))
            Written: the value paths of the block's first paths.
        ws : Workspace
        """
        generator = block_generator(self.run_seed, block)
        uniforms, values, gammas = draw_block(generator, self.horizon, terminal_pnl.size, dof=self.dof, workspace=ws)
        if gammas is not None and self.dof is not None:
            # Standardised t: e = z sqrt((dof - 2) / chi2_dof) = z sqrt(((dof - 2) / 2) / G), G ~ Gamma(dof / 2).
            np.divide((self.dof - 2.0) / 2.0, gammas, out=gammas)
            np.sqrt(gammas, out=gammas)
            np.multiply(values, gammas, out=values)
        codes = regime_codes(uniforms, self.tables, ws)
        floor_at_ruin = self._may_reach_ruin(values)
        self._paths(values, codes, terminal_pnl, max_drawdown, ws, floor_at_ruin)
        fan_values[...] = values[:, : fan_values.shape[1]]

    def _may_reach_ruin(self, innovations: np.ndarray) -> bool:
        """Whether some growth factor ``g_k + v_k e`` of the block can be negative (then it is floored at 0)."""
        if (self.growth <= 0).any():
            return True
        # 1 + r < 0 needs e < -g_k / v_k in some regime. numpy's ziggurat cannot return |z| > ~14 (its tail
        # draws r - log(u) / r from 53-bit uniforms), so Normal innovations skip the pass over the block.
        threshold = float((self.growth / np.maximum(self.vols, 1e-300)).min())
        if self.dof is None and threshold > NORMAL_DRAW_BOUND:
            return False
        return float(innovations.min()) < -threshold

    def _paths(
        self,
        values: np.ndarray,
        codes: np.ndarray,
        terminal_pnl: np.ndarray,
        max_drawdown: np.ndarray,
        ws: Workspace,
        floor_at_ruin: bool,
    ) -> None:
        """Innovations -> value paths in place, with each path's running peak and worst value / peak.

        A day's growth factor is ``g_0 + v_0 z + sum_{k >= 1} [s = k] ((g_k - g_0) + (v_k - v_0) z)``, computed
        a few days at a time; the compounding and the drawdown go day by day. Chunks and rows stay in cache.
        """
        horizon, n_paths = values.shape
        peak = ws.array("peak", (n_paths,))
        ratio = ws.array("ratio", (n_paths,))
        worst = max_drawdown  # holds min_h V_h / peak_h until the end
        for start in range(0, horizon, GROWTH_CHUNK_DAYS):
            stop = min(start + GROWTH_CHUNK_DAYS, horizon)
            self._growth(values[start:stop], codes[start:stop], ws, floor_at_ruin)
            for h in range(start, stop):
                row = values[h]
                if h == 0:
                    np.maximum(row, 1.0, out=peak)  # the path starts at 1, its first peak
                    np.divide(row, peak, out=worst)
                    continue
                np.multiply(row, values[h - 1], out=row)
                np.maximum(peak, row, out=peak)
                np.divide(row, peak, out=ratio)
                np.minimum(worst, ratio, out=worst)
        np.subtract(1.0, worst, out=max_drawdown)
        np.subtract(values[-1], 1.0, out=terminal_pnl)

    def _growth(self, values: np.ndarray, codes: np.ndarray, ws: Workspace, floor_at_ruin: bool) -> None:
        """Innovations -> growth factors ``1 + r`` in place, for a few days (rows) of a block."""
        growth, vols = self.growth, self.vols
        n_regimes = len(growth)
        if n_regimes > 1:
            extra = ws.array("extra", values.shape)
            term = ws.array("term", values.shape)
            for k in range(1, n_regimes):
                target = extra if k == 1 else term
                np.multiply(values, vols[k] - vols[0], out=target)
                np.add(target, growth[k] - growth[0], out=target)
                # With two regimes the codes are themselves the indicator of regime 1.
                if n_regimes == 2:
                    selector = codes
                else:
                    selector = np.equal(codes, k, out=ws.array("indicator", codes.shape, np.bool_)).view(np.uint8)
                np.multiply(target, selector, out=target)
                if k > 1:
                    np.add(extra, term, out=extra)
        np.multiply(values, vols[0], out=values)
        np.add(values, growth[0], out=values)
        if n_regimes > 1:
            np.add(values, extra, out=values)
        if floor_at_ruin:
            np.maximum(values, 0.0, out=values)


def asset_block(
    model: RegimeSwitchingModel,
    factors: np.ndarray,
    tables: ChainTables,
    run_seed: int,
    block: int,
    n_paths: int,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Asset-level paths of one block: ``r = mu_s + L_s z`` (times the t scale), per-regime Cholesky factors.

    Returns
    -------
    returns : ndarray of shape (n_paths, horizon, n_assets)
        Daily simple returns.
    regimes : ndarray of uint8, shape (n_paths, horizon)
    """
    generator = block_generator(run_seed, block)
    uniforms, normals, gammas = draw_block(generator, horizon, n_paths, n_assets=model.n_assets, dof=model.dof)
    codes = regime_codes(uniforms, tables)
    returns = np.empty_like(normals)
    for k in range(model.n_regimes):
        mask = codes == k
        returns[mask] = normals[mask] @ factors[k].T
    if gammas is not None and model.dof is not None:
        returns *= np.sqrt(((model.dof - 2.0) / 2.0) / gammas)[..., None]
    for k in range(model.n_regimes):
        returns[codes == k] += model.means[k]
    return np.ascontiguousarray(returns.transpose(1, 0, 2)), np.ascontiguousarray(codes.T)
