"""Monte Carlo outputs: a shard's exactly mergeable output, the merged result and its risk figures.

Conventions: P&L is the change of the portfolio's value over the horizon as a fraction of today's value,
``V_H - 1``; the loss is ``L = -P&L``; VaR and CVaR at confidence ``alpha`` (e.g. 0.95, 0.99) are positive
numbers for losses. A merged result holds every path's terminal P&L and maximum drawdown in block order,
so every figure below is a deterministic function of the same arrays whatever the number of shards.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskError, RiskInputError
from portfolio_engine.risk._mc_plan import MonteCarloPlan

__all__ = ["MonteCarloResult", "ShardResult", "merge_shards"]

#: Size of the strided sample that locates the loss tail before the exact selection.
PILOT_SIZE = 65_536
DEFAULT_BAND_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _check_level(level: float) -> float:
    if not isinstance(level, int | float | np.floating) or not 0.0 < float(level) < 1.0:
        raise RiskInputError(
            f"confidence level must be in (0, 1); got {level!r}.", hint="Use e.g. 0.95 or 0.99 (not 95)."
        )
    return float(level)


@dataclass(frozen=True, eq=False)
class ShardResult:
    """The output of one shard (a contiguous range of blocks), small enough to store as one object.

    Attributes
    ----------
    fingerprint : str
        SHA-256 of the plan and the simulated model (portfolio moments, chain thresholds, innovations):
        only shards of the same run merge.
    plan : MonteCarloPlan
    first_block, stop_block : int
        The shard's blocks are ``range(first_block, stop_block)``.
    terminal_pnl : ndarray of shape (n_shard_paths,)
        ``V_H - 1`` per path, in block order.
    max_drawdown : ndarray of shape (n_shard_paths,)
        ``max_h (1 - V_h / max(1, V_1 .. V_h))`` per path.
    fan_values : ndarray of shape (horizon, n_shard_fan_paths)
        Whole value paths ``V_1 .. V_H`` of the first ``fan_paths_per_block`` paths of each block.
    """

    fingerprint: str
    plan: MonteCarloPlan
    first_block: int
    stop_block: int
    terminal_pnl: np.ndarray
    max_drawdown: np.ndarray
    fan_values: np.ndarray

    def to_bytes(self) -> bytes:
        """The shard as an uncompressed ``.npz`` payload (random float64 does not compress)."""
        meta = {
            "fingerprint": self.fingerprint,
            "plan": self.plan.to_dict(),
            "first_block": self.first_block,
            "stop_block": self.stop_block,
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            meta=np.array(json.dumps(meta)),
            terminal_pnl=self.terminal_pnl,
            max_drawdown=self.max_drawdown,
            fan_values=self.fan_values,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> ShardResult:
        """Read a shard written by :meth:`to_bytes`.

        Raises
        ------
        RiskError
            The payload is not a shard.
        """
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                return cls(
                    fingerprint=str(meta["fingerprint"]),
                    plan=MonteCarloPlan(**meta["plan"]),
                    first_block=int(meta["first_block"]),
                    stop_block=int(meta["stop_block"]),
                    terminal_pnl=np.asarray(data["terminal_pnl"], dtype="float64"),
                    max_drawdown=np.asarray(data["max_drawdown"], dtype="float64"),
                    fan_values=np.asarray(data["fan_values"], dtype="float64"),
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RiskError(
                f"payload of {len(payload)} bytes is not a Monte Carlo shard ({exc}).",
                hint="Pass the bytes written by ShardResult.to_bytes().",
            ) from exc


@dataclass(frozen=True, eq=False)
class MonteCarloResult:
    """Every path's terminal P&L and maximum drawdown, and the fan sample, merged in block order.

    Attributes
    ----------
    plan : MonteCarloPlan
    fingerprint : str
    terminal_pnl : ndarray of shape (n_paths,)
    max_drawdown : ndarray of shape (n_paths,)
    fan_values : ndarray of shape (horizon, n_fan_paths)
    """

    plan: MonteCarloPlan
    fingerprint: str
    terminal_pnl: np.ndarray
    max_drawdown: np.ndarray
    fan_values: np.ndarray
    _tail: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict, init=False, repr=False)

    @property
    def n_paths(self) -> int:
        """Number of paths."""
        return int(self.terminal_pnl.size)

    def _sorted_losses_from(self, level: float) -> np.ndarray:
        """The losses' order statistics from the ``ceil(n alpha)``-th on, ascending.

        Kept for higher levels: the suffix of the sorted losses is the same array whichever level was asked
        first, so every figure stays a fixed function of the paths.
        """
        k = max(math.ceil(self.n_paths * level) - 1, 0)
        cached = self._tail.get("losses")
        if cached is None or k < cached[0]:
            cached = (k, self._loss_tail(self.n_paths - k))
            self._tail["losses"] = cached
        return cached[1][k - cached[0] :]

    def _loss_tail(self, count: int) -> np.ndarray:
        """The ``count`` largest losses, ascending: exact, without sorting or partitioning every path.

        A strided pilot sample gives a P&L threshold with comfortably more than ``count`` paths below it; the
        paths below it are sorted. If too few fall below (practically never), every loss is partitioned.
        """
        pnl = self.terminal_pnl
        pilot = pnl[:: max(pnl.size // PILOT_SIZE, 1)]
        expected = len(pilot) * count / pnl.size
        rank = math.ceil(1.25 * expected + 5.0 * math.sqrt(expected) + 10.0)
        if rank < len(pilot):
            threshold = np.partition(pilot, rank)[rank]
            candidates = pnl[pnl <= threshold]
            if candidates.size >= count:
                return np.sort(np.negative(candidates))[candidates.size - count :]
        losses = np.negative(pnl)
        losses.partition(pnl.size - count)
        return np.sort(losses[pnl.size - count :])

    def var(self, level: float = 0.95) -> float:
        """Value at risk: the ``ceil(n alpha)``-th smallest loss (the empirical ``alpha``-quantile of ``-P&L``).

        Raises
        ------
        RiskInputError
            ``level`` outside (0, 1).
        """
        return float(self._sorted_losses_from(_check_level(level))[0])

    def cvar(self, level: float = 0.95) -> float:
        """Conditional VaR (expected shortfall) of the empirical loss distribution.

        ``CVaR = VaR + sum_i (L_i - VaR)_+ / (n (1 - alpha))`` (Rockafellar-Uryasev), which is the exact
        expected shortfall of the sample (Acerbi-Tasche), ties included.

        Raises
        ------
        RiskInputError
            ``level`` outside (0, 1).

        References
        ----------
        Rockafellar, R. T. and Uryasev, S. (2002), "Conditional value-at-risk for general loss distributions",
        Journal of Banking & Finance 26(7), 1443-1471.
        Acerbi, C. and Tasche, D. (2002), "On the coherence of expected shortfall", Journal of Banking & Finance
        26(7), 1487-1503.
        """
        level = _check_level(level)
        tail = self._sorted_losses_from(level)
        var = float(tail[0])
        # Losses before the VaR's rank are <= VaR and add nothing to sum_i (L_i - VaR)_+.
        excess = float(np.subtract(tail[1:], var).sum())
        return var + excess / (self.n_paths * (1.0 - level))

    def drawdown_probability(self, threshold: float) -> float:
        """Probability that a path's maximum drawdown over the horizon exceeds ``threshold`` (e.g. 0.10).

        Raises
        ------
        RiskInputError
            ``threshold`` outside [0, 1).
        """
        if not isinstance(threshold, int | float | np.floating) or not 0.0 <= float(threshold) < 1.0:
            raise RiskInputError(
                f"drawdown threshold must be in [0, 1); got {threshold!r}.", hint="Use a fraction, e.g. 0.10."
            )
        return float(np.count_nonzero(self.max_drawdown > threshold)) / self.n_paths

    @property
    def mean(self) -> float:
        """Mean terminal P&L."""
        return float(self.terminal_pnl.mean())

    @property
    def std(self) -> float:
        """Standard deviation of the terminal P&L (ddof=1)."""
        return float(self.terminal_pnl.std(ddof=1)) if self.n_paths > 1 else 0.0

    def quantile_bands(self, levels: Sequence[float] = DEFAULT_BAND_LEVELS) -> pd.DataFrame:
        """Quantiles of the portfolio value (today = 1) per day, for a fan chart.

        Computed on the fan sample (the first ``fan_paths_per_block`` paths of every block, a systematic
        subsample of i.i.d. paths), with numpy's default linear interpolation.

        Returns
        -------
        DataFrame of shape (horizon + 1, n_levels)
            Index ``step`` 0 .. horizon (step 0 is today's value 1), columns the levels.

        Raises
        ------
        RiskInputError
            A level outside (0, 1).
        """
        checked = [_check_level(level) for level in levels]
        quantiles = np.quantile(self.fan_values, checked, axis=1).T if checked else np.empty((self.plan.horizon, 0))
        values = np.vstack([np.ones((1, len(checked))), quantiles])
        return pd.DataFrame(values, index=pd.RangeIndex(self.plan.horizon + 1, name="step"), columns=checked)

    def summary(
        self, levels: Iterable[float] = (0.95, 0.99), drawdowns: Iterable[float] = (0.05, 0.10, 0.20)
    ) -> dict[str, float]:
        """Mean, std, VaR and CVaR per level, drawdown probabilities per threshold, as a flat dict."""
        out = {"n_paths": float(self.n_paths), "horizon": float(self.plan.horizon), "mean": self.mean, "std": self.std}
        for level in levels:
            out[f"var_{level:g}"] = self.var(level)
            out[f"cvar_{level:g}"] = self.cvar(level)
        for threshold in drawdowns:
            out[f"p_drawdown_gt_{threshold:g}"] = self.drawdown_probability(threshold)
        return out


def merge_shards(shards: Iterable[ShardResult]) -> MonteCarloResult:
    """Merge the shards of one run (in any order) into the result over all its paths.

    The shards must come from the same run (same fingerprint) and cover its blocks ``0 .. n_blocks - 1``
    exactly once. Arrays are concatenated in block order, so the result is bit-identical however the blocks
    were split.

    Raises
    ------
    RiskError
        No shard, shards of different runs, or blocks missing or covered twice.
    """
    ordered = sorted(shards, key=lambda s: s.first_block)
    if not ordered:
        raise RiskError("No shard to merge.", hint="Simulate at least one shard.")
    first = ordered[0]
    for shard in ordered[1:]:
        if shard.fingerprint != first.fingerprint or shard.plan != first.plan:
            raise RiskError(
                f"Shards of different runs: fingerprints {first.fingerprint[:12]} and {shard.fingerprint[:12]}.",
                hint="Merge only the shards of one run (same model, weights, plan and seed).",
            )
    expected = 0
    for shard in ordered:
        if shard.first_block != expected:
            raise RiskError(
                f"Shard blocks do not tile the run: expected a shard starting at block {expected}, "
                f"got blocks {shard.first_block}..{shard.stop_block - 1}.",
                hint="Pass every shard of the run exactly once (plan.shards(n) lists them).",
            )
        expected = shard.stop_block
    if expected != first.plan.n_blocks:
        raise RiskError(
            f"Shards cover blocks 0..{expected - 1}; the run has {first.plan.n_blocks} blocks.",
            hint="Pass every shard of the run exactly once (plan.shards(n) lists them).",
        )
    if len(ordered) == 1:  # nothing to concatenate: keep the shard's arrays
        return MonteCarloResult(
            plan=first.plan,
            fingerprint=first.fingerprint,
            terminal_pnl=first.terminal_pnl,
            max_drawdown=first.max_drawdown,
            fan_values=first.fan_values,
        )
    return MonteCarloResult(
        plan=first.plan,
        fingerprint=first.fingerprint,
        terminal_pnl=np.concatenate([s.terminal_pnl for s in ordered]),
        max_drawdown=np.concatenate([s.max_drawdown for s in ordered]),
        fan_values=np.concatenate([s.fan_values for s in ordered], axis=1),
    )
