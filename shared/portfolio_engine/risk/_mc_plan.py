"""The plan of a Monte Carlo run: paths, horizon, seed and blocks, i.e. everything that fixes the random draws."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from portfolio_engine.exceptions import RiskInputError

__all__ = ["MonteCarloPlan"]


@dataclass(frozen=True)
class MonteCarloPlan:
    """How many paths, how long, from which seed, in which blocks: everything that fixes the random draws.

    Paths are generated in blocks of ``block_size`` (the last block may be shorter); block ``b`` draws from
    ``numpy.random.SeedSequence(run_seed, spawn_key=(b,))``, which is ``SeedSequence(run_seed).spawn(n)[b]``
    for any ``n > b``. A shard is a contiguous range of blocks; every split of the blocks gives the same paths.

    Parameters
    ----------
    n_paths : int
        Number of paths, > 0.
    horizon : int
        Number of daily steps, > 0.
    run_seed : int
        Entropy of the run's root ``SeedSequence``, >= 0.
    block_size : int, default 2**14
        Paths per block, > 0. Fixed for a run: a different block size gives different paths.
    fan_paths_per_block : int, default 256
        Paths of each block (its first ones) whose whole value path is kept for the fan chart's quantile bands.

    Raises
    ------
    RiskInputError
        A count that is not a positive integer, or a negative seed.
    """

    n_paths: int
    horizon: int
    run_seed: int
    block_size: int = 2**14
    fan_paths_per_block: int = 256

    def __post_init__(self) -> None:
        for name in ("n_paths", "horizon", "block_size", "fan_paths_per_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise RiskInputError(
                    f"{name} must be a positive integer; got {value!r}.",
                    hint="Use e.g. n_paths=100_000, horizon=21 (trading days), block_size=2**14.",
                )
            object.__setattr__(self, name, int(value))
        seed = self.run_seed
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise RiskInputError(f"run_seed must be a non-negative integer; got {seed!r}.", hint="Use e.g. 12345.")
        object.__setattr__(self, "run_seed", int(seed))

    @property
    def n_blocks(self) -> int:
        """Number of blocks, ``ceil(n_paths / block_size)``."""
        return -(-self.n_paths // self.block_size)

    def block_paths(self, block: int) -> int:
        """Number of paths in ``block``."""
        return min(self.block_size, self.n_paths - block * self.block_size)

    def shards(self, n_shards: int) -> list[range]:
        """Split the blocks into ``n_shards`` contiguous ranges as even as possible (empty ranges dropped).

        Raises
        ------
        RiskInputError
            ``n_shards`` is not a positive integer.
        """
        if isinstance(n_shards, bool) or not isinstance(n_shards, int | np.integer) or n_shards <= 0:
            raise RiskInputError(f"n_shards must be a positive integer; got {n_shards!r}.", hint="Use e.g. 8.")
        edges = [self.n_blocks * i // n_shards for i in range(n_shards + 1)]
        return [range(a, b) for a, b in pairwise(edges) if b > a]

    def to_dict(self) -> dict[str, int]:
        """The plan as plain integers (for a task's input or a shard's metadata)."""
        return {
            "n_paths": self.n_paths,
            "horizon": self.horizon,
            "run_seed": self.run_seed,
            "block_size": self.block_size,
            "fan_paths_per_block": self.fan_paths_per_block,
        }
