"""Stress tests of today's weights: historical replay, hypothetical shocks and reverse stress.

Conventions (see the private modules for details):

* Historical replay (``replay_scenarios``): the actual daily asset returns of named windows
  (:data:`DEFAULT_SCENARIOS`: ``gfc`` 2008-09-01..2009-03-31, ``covid`` 2020-02-01..2020-03-31, ``2022``
  2022-01-01..2022-12-31, ``dotcom`` 2000-03-01..2002-10-31, ``us_downgrade_2011`` 2011-08-01..2011-08-31,
  ``q4_2018`` 2018-10-01..2018-12-31). The headline ``cumulative_return`` is buy-and-hold (weights set on the eve of
  the window, then drifting); ``fixed_weight_return`` (rebalanced daily) is reported beside it; worst day and maximum
  drawdown come from the buy-and-hold path. Days without data: the proxy's return (e.g. the index) when a proxy is
  given, otherwise cash; such assets are listed as proxied or missing.
* Hypothetical shocks: ``equity_shock`` (uniform, or beta-scaled), ``sector_shock``, ``factor_shock`` (asset returns
  ``B f``), ``scenario_shock`` (any return vector); losses are ``-w' s``. Covariance stresses recompute the Normal
  VaR/CVaR: ``volatility_shock`` (``Sigma x factor^2``; x2 volatility is ``Sigma x 4``) and ``correlation_shock``
  (all correlations to 1 by default, same volatilities).
* Reverse stress: the smallest shock of a shape whose loss reaches a limit: closed form for linear shapes
  (``reverse_equity_shock``, ``reverse_scenario_multiple``, ``reverse_stress_linear``), Brent's method for a VaR or
  CVaR limit under a covariance scale (``reverse_volatility_stress``).

Losses are positive fractions of portfolio value; returns are simple daily returns; weights sum to the budget.
"""

from __future__ import annotations

from portfolio_engine.risk._reverse_stress import (
    ReverseStressResult,
    reverse_equity_shock,
    reverse_scenario_multiple,
    reverse_stress_linear,
    reverse_volatility_stress,
)
from portfolio_engine.risk._stress_replay import (
    DEFAULT_SCENARIOS,
    HistoricalScenario,
    ScenarioReplay,
    replay_scenario,
    replay_scenarios,
    stress_table,
)
from portfolio_engine.risk._stress_shocks import (
    CovarianceStress,
    ShockResult,
    correlation_shock,
    equity_shock,
    factor_shock,
    scenario_shock,
    sector_shock,
    volatility_shock,
)

__all__ = [
    "DEFAULT_SCENARIOS",
    "CovarianceStress",
    "HistoricalScenario",
    "ReverseStressResult",
    "ScenarioReplay",
    "ShockResult",
    "correlation_shock",
    "equity_shock",
    "factor_shock",
    "replay_scenario",
    "replay_scenarios",
    "reverse_equity_shock",
    "reverse_scenario_multiple",
    "reverse_stress_linear",
    "reverse_volatility_stress",
    "scenario_shock",
    "sector_shock",
    "stress_table",
    "volatility_shock",
]
