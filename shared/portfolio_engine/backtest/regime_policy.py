"""The regime-aware policy: what ``pipeline/optimize.py`` does for one date, replayed at every backtest decision.

At a decision ``t`` the policy sees only data strictly before ``t``:

1. the regime model (an HMM on the index's features, ``logret_1d`` and ``vol_21d`` by default) in force is the
   one fitted at the *refit anchor* of ``t``, the first trading date of ``t``'s period (``refit_every``, a year by
   default), on the features dated strictly before the anchor. The anchor depends on the calendar only, never on
   the decision schedule, so every fan-out window refits identically; fitted models are cached by anchor;
2. its filtered probabilities ``P(state at d | index data to d)`` for every ``d < t`` weight the assets' returns
   of the estimation window into per-regime moments (``regime_conditional_moments``), blended by the next
   period's probabilities (filtered at ``t - 1`` times the transition matrix, ``blend_moments``);
3. the spec's policy for the most probable state at ``t - 1`` is optimized (``spec.for_regime`` with the model's
   state names: a policy key names a role by volatility rank, so ``turbulent`` applies to the highest-variance
   state whatever the number of states).

Before ``min_history`` usable index observations precede the anchor, the spec's own estimators run instead
(:class:`~portfolio_engine.backtest.SpecPolicy`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from portfolio_engine.backtest._policies import DecisionContext, SpecPolicy
from portfolio_engine.exceptions import RiskInputError, SpecificationError
from portfolio_engine.features import indicators
from portfolio_engine.optimization import PortfolioSpec, blend_moments, optimize, regime_conditional_moments
from portfolio_engine.regime.definition import RegimeModelSpec, training_frame

__all__ = ["RegimeAwarePolicy"]

logger = logging.getLogger(__name__)

_VOL = re.compile(r"^vol_(\d+)d$")
_SYMBOL = "index"


def _default_regime_spec() -> RegimeModelSpec:
    return RegimeModelSpec(n_states=2, n_restarts=3)


def _check_index_returns(index_returns: object) -> pd.Series:
    if not isinstance(index_returns, pd.Series) or index_returns.empty:
        raise RiskInputError(
            f"index_returns must be a non-empty Series of daily simple returns; got {type(index_returns).__name__} "
            f"of length {len(index_returns) if hasattr(index_returns, '__len__') else None}.",
            hint="Pass e.g. prices['^GSPC'].pct_change().dropna() on the backtest's calendar.",
        )
    index = index_returns.index
    if not isinstance(index, pd.DatetimeIndex) or not (index.is_monotonic_increasing and index.is_unique):
        raise RiskInputError(
            "index_returns must be indexed by increasing, distinct dates.", hint="Use .sort_index() on a date index."
        )
    values = index_returns.to_numpy(dtype="float64")
    if not np.isfinite(values).all() or (values <= -1.0).any():
        raise RiskInputError(
            f"index_returns hold NaN, infinite or <= -100% values (first at "
            f"{index[~(np.isfinite(values) & (values > -1.0))][0].date()}).",
            hint="Drop the dates before the index trades (dropna()).",
        )
    return index_returns.astype("float64")


def _check_features(spec: RegimeModelSpec) -> None:
    if spec.model != "hmm":
        raise SpecificationError(
            f"RegimeAwarePolicy refits an HMM; regime_spec.model is {spec.model!r}.",
            hint="Use RegimeModelSpec(model='hmm', ...).",
        )
    unknown = [f for f in spec.columns if f not in ("logret_1d", "ret_1d") and not _VOL.match(f)]
    if unknown:
        raise SpecificationError(
            f"RegimeAwarePolicy computes features from the index's returns only; it cannot compute {unknown}.",
            hint="Use logret_1d, ret_1d and vol_<n>d features.",
        )


class RegimeAwarePolicy:
    """Backtest policy: refit an HMM on the index, regime-conditional moments, the spec's policy for the regime.

    Call it as ``policy(history, context)`` (see :class:`~portfolio_engine.backtest.Policy`). It ignores the
    holdings in the context, so :func:`~portfolio_engine.backtest.run_window` fan-outs merge to the single run.

    Parameters
    ----------
    spec : PortfolioSpec
        The portfolio; ``regime_policies`` switch it by regime role (``calm``, ``normal``, ``turbulent``: by the
        states' volatility rank) or exact state name.
    index_returns : Series of shape (n_days,)
        The index's daily simple returns on (at least) the backtest's calendar. Only rows strictly before a
        decision are read.
    regime_spec : RegimeModelSpec, optional
        The HMM (``model="hmm"``) and its features, computed point-in-time from ``index_returns``
        (``logret_1d``, ``ret_1d``, ``vol_<n>d``: annualised rolling std of log returns). Default: 2 states,
        3 restarts, ``logret_1d`` and ``vol_21d``.
    refit_every : str, default "YS"
        A pandas period-start offset (``"YS"``, ``"QS"``, ``"MS"``): the model is refitted at the first trading
        date of each period on data strictly before it.
    min_history : int, default 504
        Fewest usable index observations before an anchor to fit the HMM; before that the spec's own
        estimators run.

    Attributes
    ----------
    models : dict of Timestamp to HMMRegimeDetector or None
        Fitted models by refit anchor (None: too little history, the fallback ran).
    regimes : dict of Timestamp to str or None
        The most probable state at each decision (None for fallback decisions).

    Raises
    ------
    RiskInputError
        ``index_returns`` is not a non-empty, date-indexed, finite Series.
    SpecificationError
        An unknown offset, ``min_history < 2``, a non-HMM model or a feature the policy cannot compute.

    References
    ----------
    Hamilton, J. D. (1989), "A new approach to the economic analysis of nonstationary time series and the business
    cycle", Econometrica 57(2), 357-384.
    """

    def __init__(
        self,
        spec: PortfolioSpec,
        *,
        index_returns: pd.Series,
        regime_spec: RegimeModelSpec | None = None,
        refit_every: str = "YS",
        min_history: int = 504,
    ) -> None:
        if not isinstance(spec, PortfolioSpec):
            raise SpecificationError(
                f"spec must be a PortfolioSpec; got {type(spec).__name__}.", hint="Use PortfolioSpec.from_yaml(...)."
            )
        self.spec = spec
        self.index_returns = _check_index_returns(index_returns)
        self.regime_spec = _default_regime_spec() if regime_spec is None else regime_spec
        if not isinstance(self.regime_spec, RegimeModelSpec):
            raise SpecificationError(
                f"regime_spec must be a RegimeModelSpec; got {type(regime_spec).__name__}.",
                hint="Use RegimeModelSpec(n_states=2, ...).",
            )
        _check_features(self.regime_spec)
        try:
            offset = pd.tseries.frequencies.to_offset(refit_every)
        except ValueError as exc:
            raise SpecificationError(
                f"refit_every {refit_every!r} is not a pandas offset.", hint="Use 'YS', 'QS' or 'MS'."
            ) from exc
        if offset is None:
            raise SpecificationError(f"refit_every {refit_every!r} is not a pandas offset.", hint="Use 'YS'.")
        self.refit_every = refit_every
        self._offset = offset
        if isinstance(min_history, bool) or not isinstance(min_history, int) or min_history < 2:
            raise SpecificationError(
                f"min_history must be an integer >= 2; got {min_history!r}.", hint="e.g. 504 (two years)."
            )
        self.min_history = min_history
        self.models: dict[pd.Timestamp, Any] = {}
        self.regimes: dict[pd.Timestamp, str | None] = {}
        self._fallback = SpecPolicy(spec)

    # ------------------------------------------------------------------ features and models
    def _features(self, before: pd.Timestamp) -> pd.DataFrame:
        """The model's features on the index's returns strictly before ``before``, warm-up rows dropped."""
        returns = self.index_returns.loc[self.index_returns.index < before]
        if returns.empty:
            return pd.DataFrame(columns=self.regime_spec.columns, dtype="float64")
        logret = np.log1p(returns).to_frame(_SYMBOL)
        columns: dict[str, pd.Series] = {}
        for name in self.regime_spec.columns:
            match = _VOL.match(name)
            if match:
                columns[name] = indicators.rolling_volatility(logret, int(match.group(1)))[_SYMBOL]
            else:
                columns[name] = logret[_SYMBOL] if name == "logret_1d" else returns
        long = pd.DataFrame({"date": returns.index, "symbol": _SYMBOL, **{k: v.to_numpy() for k, v in columns.items()}})
        spec = self.regime_spec.model_copy(update={"symbol": _SYMBOL})
        return training_frame(long, spec, min_obs=0)

    def anchor(self, date: pd.Timestamp) -> pd.Timestamp:
        """The refit anchor of a decision at ``date``: the first trading date of its ``refit_every`` period."""
        start = self._offset.rollback(pd.Timestamp(date).normalize())
        calendar = self.index_returns.index
        position = int(calendar.searchsorted(start, side="left"))
        first = calendar[position] if position < len(calendar) else pd.Timestamp(date)
        return min(pd.Timestamp(first), pd.Timestamp(date))

    def model_at(self, anchor: pd.Timestamp) -> Any:
        """The HMM fitted on the features strictly before ``anchor`` (cached), None below ``min_history``."""
        if anchor not in self.models:
            frame = self._features(anchor)
            if len(frame) < self.min_history:
                self.models[anchor] = None
            else:
                self.models[anchor] = self.regime_spec.build_estimator().fit(frame)
                logger.info("regime model refitted", extra={"anchor": str(anchor.date()), "n_obs": len(frame)})
        return self.models[anchor]

    @property
    def refit_dates(self) -> list[pd.Timestamp]:
        """Anchors at which a model was fitted (cached), ascending."""
        return sorted(a for a, m in self.models.items() if m is not None)

    # ------------------------------------------------------------------ the decision
    def __call__(self, history: pd.DataFrame, context: DecisionContext) -> pd.Series:
        """Target weights for the decision at ``context.date`` from the data strictly before it.

        Parameters
        ----------
        history : DataFrame of shape (n_window, n_assets)
            Asset returns strictly before ``context.date`` (the engine's estimation window).
        context : DecisionContext

        Returns
        -------
        Series of shape (n_universe,)

        Raises
        ------
        RiskInputError
            The index has fewer than two returns on the history's dates.
        SpecificationError, DataError, InfeasibleError, SolverFailedError
            From the spec, the moment estimators and the optimizer.
        """
        date = pd.Timestamp(context.date)
        model = self.model_at(self.anchor(date))
        if model is None:
            self.regimes[date] = None
            return self._fallback(history, context)
        spec = self.spec
        missing = [a for a in spec.universe or [] if a not in history.columns]
        if missing:
            raise SpecificationError(
                f"The spec's universe names {missing}, which the returns do not have.",
                hint=f"Restrict the universe to the returns' columns: {history.columns.tolist()}.",
            )
        data = history.loc[history.index < date]
        data = data if spec.universe is None else data.loc[:, spec.universe]
        frame = self._features(date)
        columns = list(getattr(model, "feature_names_in_", frame.columns))
        filtered = pd.DataFrame(model.predict_proba(frame[columns]), index=frame.index, columns=model.state_names_)
        common = data.index.intersection(filtered.index)
        if len(common) < 2:
            raise RiskInputError(
                f"The index's features and the assets' history share {len(common)} dates before {date.date()}.",
                hint="Pass index_returns on the backtest's calendar.",
            )
        per_regime = regime_conditional_moments(
            data.loc[common], filtered.loc[common], periods_per_year=spec.periods_per_year
        )
        # The weights are held over the next period: blend by P(state at t | data to t - 1).
        next_probabilities = pd.Series(filtered.iloc[-1].to_numpy() @ model.transmat_, index=filtered.columns)
        moments = blend_moments(per_regime, next_probabilities)
        state = str(filtered.iloc[-1].idxmax())
        self.regimes[date] = state
        window = data if spec.lookback_days is None else data.iloc[-spec.lookback_days :]
        return optimize(spec.for_regime(state, model.state_names_), moments, returns=window).weights
