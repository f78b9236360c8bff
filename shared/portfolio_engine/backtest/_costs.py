"""Transaction costs of a rebalance: proportional (basis points) plus an optional market-impact term.

References
----------
.. [1] Grinold, R. C. and Kahn, R. N. (2000). *Active Portfolio Management*, 2nd ed., ch. 16: the square-root
   law, impact per unit traded growing like the square root of the size, so the cost of a trade like size^(3/2).
.. [2] Almgren, R., Thum, C., Hauptmann, E. and Li, H. (2005). Direct estimation of equity market impact.
   *Risk* 18(7), 58-62.
.. [3] Almgren, R. and Chriss, N. (2000). Optimal execution of portfolio transactions. *Journal of Risk* 3(2),
   5-39: a linear temporary impact, so a cost quadratic in the size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from portfolio_engine.exceptions import SpecificationError

__all__ = ["Impact", "TransactionCosts"]

Impact = Literal["none", "sqrt", "quadratic"]
_EXPONENT = {"none": 0.0, "sqrt": 1.5, "quadratic": 2.0}


@dataclass(frozen=True)
class TransactionCosts:
    """Cost of moving the weights by ``trades`` (fractions of portfolio value).

    ``cost = cost_bps / 1e4 * sum |trade_i| + impact_coefficient * sum |trade_i| ** p`` with ``p = 3/2`` for the
    square-root impact law [1]_ [2]_ and ``p = 2`` for a linear (Almgren-Chriss) impact [3]_. The trade is a
    fraction of portfolio value, so ``impact_coefficient`` folds in the portfolio's size relative to the traded
    volume and the assets' volatility (e.g. ``eta * sigma * sqrt(portfolio value / daily volume)`` for the
    square-root law).

    Parameters
    ----------
    cost_bps : float, default 0.0
        Proportional cost (commission, half spread) in basis points of the value traded.
    impact : {"none", "sqrt", "quadratic"}, default "none"
    impact_coefficient : float, default 0.0

    Raises
    ------
    SpecificationError
        A negative or non-finite parameter, or an unknown impact model.
    """

    cost_bps: float = 0.0
    impact: Impact = "none"
    impact_coefficient: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cost_bps", "impact_coefficient"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise SpecificationError(
                    f"TransactionCosts.{name} must be a finite number >= 0; got {value!r}.",
                    hint="e.g. TransactionCosts(cost_bps=10, impact='sqrt', impact_coefficient=0.01).",
                )
        if self.impact not in _EXPONENT:
            raise SpecificationError(
                f"Unknown impact model {self.impact!r}.", hint="Choose 'none', 'sqrt' or 'quadratic'."
            )

    def cost(self, trades: np.ndarray) -> float:
        """Cost, as a fraction of portfolio value, of the trades (target minus held weights).

        Parameters
        ----------
        trades : ndarray of shape (n_assets,)

        Returns
        -------
        float
        """
        size = np.abs(trades)
        total = self.cost_bps / 1e4 * float(size.sum())
        if self.impact != "none" and self.impact_coefficient:
            total += self.impact_coefficient * float((size ** _EXPONENT[self.impact]).sum())
        return total
