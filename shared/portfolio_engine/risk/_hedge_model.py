"""The risk model a hedge proposal is measured with: moments and scenarios in daily units, and the measures.

A book is a vector of asset weights ``w`` plus a position ``x`` in the index (``x = -h`` for a short hedge
of ``h``); the rest of the budget is cash at a zero return. Its daily return is ``r_p = w'r + x r_m``.

Historical VaR/CVaR over ``h`` days use the same scenarios and conventions as ``risk.measures``: each asset's
(and the index's) overlapping ``h``-day compounded return, held ``h`` days (buy and hold), so a book's
horizon return is ``w'R_h + x R_h,m``, linear in the book. The replayed drawdown compounds the book's daily
returns at fixed weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import RiskInputError
from portfolio_engine.risk._var import empirical_var_cvar, horizon_returns, normal_var_cvar
from portfolio_engine.risk.limits import LimitSpec

__all__ = ["HedgeRiskModel", "historical_tail", "normal_tail"]

TailMethod = Literal["normal", "historical"]


def normal_tail(mean: float, std: float, level: float, horizon: int) -> tuple[float, float]:
    """Parametric Normal (VaR, CVaR) of the loss ``-R`` over ``horizon`` days, from daily moments.

    ``R ~ N(h mean, h std^2)`` (square-root-of-time scaling): ``VaR = -h mean + z std sqrt(h)``,
    ``CVaR = -h mean + std sqrt(h) phi(z) / (1 - level)`` with ``z = Phi^-1(level)``.
    """
    return normal_var_cvar(horizon * mean, std * math.sqrt(horizon), level)


def historical_tail(sample: np.ndarray, level: float) -> tuple[float, float]:
    """Historical (VaR, CVaR) of a sample of horizon returns, with the conventions of ``risk.measures``.

    VaR is the ``inverted_cdf`` empirical quantile of the loss and CVaR the Acerbi-Tasche tail mean.
    """
    return empirical_var_cvar(sample, level)


def _frame(value: object, name: str) -> pd.DataFrame:
    if not isinstance(value, pd.DataFrame):
        raise RiskInputError(f"{name} must be a DataFrame; got {type(value).__name__}.", hint="Label it by asset.")
    if not np.isfinite(value.to_numpy(dtype=float)).all():
        raise RiskInputError(f"{name} holds NaN or infinite values.", hint="Drop or fill the gaps first.")
    return value


@dataclass(frozen=True)
class HedgeRiskModel:
    """What a hedge proposal needs to re-measure risk for new weights. All moments are DAILY.

    Parameters
    ----------
    covariance : DataFrame of shape (n_assets, n_assets)
        Daily covariance of the assets' simple returns, labelled by asset on both axes.
    mean : Series of shape (n_assets,), optional
        Daily mean returns; None means zero (the usual choice for short-horizon risk).
    index_covariance : Series of shape (n_assets,), optional
        Daily covariance of each asset with the index; needed for index hedges, beta and tracking error
        (measured against the index).
    index_variance : float, optional
        Daily variance of the index; needed with ``index_covariance``.
    index_mean : float, default 0.0
        Daily mean return of the index.
    scenarios : DataFrame of shape (n_days, n_assets), optional
        Daily simple returns replayed for historical VaR/CVaR and the drawdown limit.
    index_scenarios : Series of shape (n_days,), optional
        The index's returns on the same days (needed to replay an index hedge).
    sector_map : mapping of str to str, optional
        Asset -> sector, for the sector-exposure limit.
    tail_method : {"normal", "historical"}, default "normal"
        How VaR/CVaR limits are measured; "historical" needs ``scenarios``.
    periods_per_year : int, default 252
        Annualisation of volatility and tracking error.

    Raises
    ------
    RiskInputError
        For NaN values, mismatched labels, a non-symmetric covariance, a negative variance, or
        ``tail_method="historical"`` without scenarios.
    """

    covariance: pd.DataFrame
    mean: pd.Series | None = None
    index_covariance: pd.Series | None = None
    index_variance: float | None = None
    index_mean: float = 0.0
    scenarios: pd.DataFrame | None = None
    index_scenarios: pd.Series | None = None
    sector_map: Mapping[str, str] | None = None
    tail_method: TailMethod = "normal"
    periods_per_year: int = 252
    _horizons: dict[int, tuple[np.ndarray, np.ndarray | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        cov = _frame(self.covariance, "covariance")
        if list(cov.index) != list(cov.columns):
            raise RiskInputError("covariance must have the same labels on both axes.", hint="Use returns.cov().")
        if not np.allclose(cov.to_numpy(), cov.to_numpy().T, rtol=1e-10, atol=1e-14):
            raise RiskInputError("covariance is not symmetric.", hint="Symmetrise it: (S + S.T) / 2.")
        assets = list(cov.columns)
        for name in ("mean", "index_covariance"):
            series = getattr(self, name)
            if series is not None and (
                set(series.index) != set(assets) or not np.isfinite(series.to_numpy(dtype=float)).all()
            ):
                raise RiskInputError(
                    f"{name} must be finite and labelled by the assets {assets}; got {list(series.index)}.",
                    hint="Build the model with HedgeRiskModel.from_returns.",
                )
        if (self.index_covariance is None) != (self.index_variance is None):
            raise RiskInputError("index_covariance and index_variance go together.", hint="Give both or neither.")
        if self.index_variance is not None and not (math.isfinite(self.index_variance) and self.index_variance > 0):
            raise RiskInputError(f"index_variance must be > 0; got {self.index_variance!r}.", hint="Daily variance.")
        if self.scenarios is not None:
            unknown = sorted(set(assets) - set(_frame(self.scenarios, "scenarios").columns))
            if unknown:
                raise RiskInputError(f"scenarios lack assets {unknown}.", hint="Give one column per asset.")
        if self.index_scenarios is not None and (
            self.scenarios is None or not self.index_scenarios.index.equals(self.scenarios.index)
        ):
            raise RiskInputError("index_scenarios must share the scenarios' dates.", hint="Align them on dates.")
        if self.tail_method not in ("normal", "historical"):
            raise RiskInputError(f"tail_method must be normal or historical; got {self.tail_method!r}.", hint="")
        if self.tail_method == "historical" and self.scenarios is None:
            raise RiskInputError("tail_method='historical' needs scenarios.", hint="Give scenarios=returns.")

    @classmethod
    def from_returns(
        cls,
        returns: pd.DataFrame,
        index_returns: pd.Series | None = None,
        *,
        sector_map: Mapping[str, str] | None = None,
        tail_method: TailMethod = "historical",
        with_mean: bool = False,
        periods_per_year: int = 252,
    ) -> HedgeRiskModel:
        """A model from daily returns: sample moments (``ddof=1``) and the returns themselves as scenarios.

        Parameters
        ----------
        returns : DataFrame of shape (n_days, n_assets)
            Daily simple returns, without gaps.
        index_returns : Series of shape (n_days,), optional
            The index's daily returns; rows are kept where both are present.
        sector_map, tail_method, periods_per_year
            As in the class.
        with_mean : bool, default False
            Use the sample mean (True) or a zero mean (False).
        """
        frame = _frame(returns, "returns")
        if index_returns is not None:
            joined = frame.join(index_returns.rename("__index__"), how="inner")
            frame, index = joined[frame.columns], joined["__index__"]
            joint = joined.cov().to_numpy()
            n = frame.shape[1]
            return cls(
                covariance=pd.DataFrame(joint[:n, :n], index=frame.columns, columns=frame.columns),
                mean=frame.mean() if with_mean else None,
                index_covariance=pd.Series(joint[:n, n], index=frame.columns),
                index_variance=float(joint[n, n]),
                index_mean=float(index.mean()) if with_mean else 0.0,
                scenarios=frame,
                index_scenarios=index,
                sector_map=sector_map,
                tail_method=tail_method,
                periods_per_year=periods_per_year,
            )
        return cls(
            covariance=frame.cov(),
            mean=frame.mean() if with_mean else None,
            scenarios=frame,
            sector_map=sector_map,
            tail_method=tail_method,
            periods_per_year=periods_per_year,
        )

    @property
    def assets(self) -> list[str]:
        return [str(a) for a in self.covariance.columns]

    @property
    def has_index(self) -> bool:
        return self.index_variance is not None

    def aligned(self, weights: pd.Series, *, budget: float | None = 1.0, name: str = "weights") -> np.ndarray:
        """``weights`` as an array in the model's asset order (absent assets at zero).

        Raises
        ------
        RiskInputError
            For NaN weights, assets the model does not know, or weights not summing to ``budget`` (1e-6).
        """
        values = pd.to_numeric(weights, errors="coerce")
        if not np.isfinite(values.to_numpy(dtype=float)).all():
            raise RiskInputError(f"{name} hold NaN or infinite values: {weights.to_dict()}.")
        unknown = sorted(str(a) for a in set(values.index) - set(self.assets))
        if unknown:
            raise RiskInputError(f"{name} name assets the risk model does not know: {unknown}.")
        if budget is not None and abs(float(values.sum()) - budget) > 1e-6:
            raise RiskInputError(f"{name} sum to {float(values.sum())!r}, not the budget {budget!r}.")
        return values.reindex(self.assets, fill_value=0.0).to_numpy(dtype=float)

    def measurable(self, spec: LimitSpec) -> str | None:
        """Why a limit cannot be measured from this model for any weights (None: it can)."""
        if spec.kind == "current_drawdown":
            return "the current drawdown is realised P&L, not a function of the weights"
        if spec.kind in ("tracking_error", "beta") and not self.has_index:
            return f"{spec.kind} needs the index's moments"
        if spec.kind == "max_drawdown" and self.scenarios is None:
            return "the drawdown limit is replayed on scenarios; none were given"
        if spec.kind == "sector_weight" and self.sector_map is None:
            return "the sector limit needs a sector map"
        return None

    def daily_mean_std(self, w: np.ndarray, x: float = 0.0) -> tuple[float, float]:
        """Daily mean and standard deviation of ``w'r + x r_m``."""
        mu = 0.0 if self.mean is None else float(self.mean.reindex(self.assets).to_numpy() @ w)
        var = float(w @ self.covariance.to_numpy() @ w)
        if x != 0.0:
            c = self.index_covariance.reindex(self.assets).to_numpy()  # type: ignore[union-attr]
            var += 2.0 * x * float(w @ c) + x * x * float(self.index_variance)  # type: ignore[arg-type]
            mu += x * self.index_mean
        return mu, math.sqrt(max(var, 0.0))

    def daily_returns(self, w: np.ndarray, x: float = 0.0) -> np.ndarray:
        """Replayed daily returns of the book on the scenarios, shape (n_days,)."""
        if self.scenarios is None:
            raise RiskInputError("No scenarios to replay.", hint="Give scenarios (daily returns).")
        path = self.scenarios[self.assets].to_numpy(dtype=float) @ w
        if x != 0.0:
            if self.index_scenarios is None:
                raise RiskInputError("An index hedge is replayed on index_scenarios; none given.")
            path = path + x * self.index_scenarios.to_numpy(dtype=float)
        return path

    def horizon_book_returns(self, w: np.ndarray, x: float, horizon: int) -> np.ndarray:
        """The book's ``horizon``-day buy-and-hold returns on the scenarios, shape (n_windows,)."""
        if horizon not in self._horizons:
            if self.scenarios is None:
                raise RiskInputError("No scenarios to replay.", hint="Give scenarios (daily returns).")
            assets = horizon_returns(self.scenarios[self.assets].to_numpy(dtype=float), horizon)
            index = None
            if self.index_scenarios is not None:
                index = horizon_returns(self.index_scenarios.to_numpy(dtype=float)[:, None], horizon)[:, 0]
            self._horizons[horizon] = (assets, index)
        assets, index = self._horizons[horizon]
        path = assets @ w
        if x != 0.0:
            if index is None:
                raise RiskInputError("An index hedge is replayed on index_scenarios; none given.")
            path = path + x * index
        return path

    def beta(self, w: np.ndarray, x: float = 0.0) -> float:
        """Beta of the book to the index."""
        c = self.index_covariance.reindex(self.assets).to_numpy()  # type: ignore[union-attr]
        return float(w @ c) / float(self.index_variance) + x  # type: ignore[arg-type]

    def measure(self, spec: LimitSpec, w: np.ndarray, x: float = 0.0) -> float:
        """The value limit ``spec`` caps, for the book ``(w, x)`` (units of :mod:`portfolio_engine.risk.limits`).

        Raises
        ------
        RiskInputError
            If the limit cannot be measured from this model (see :meth:`measurable`).
        """
        reason = self.measurable(spec)
        if reason is not None:
            raise RiskInputError(f"Cannot measure {spec.name!r}: {reason}.", hint="Give the model what it needs.")
        if spec.kind in ("var", "cvar"):
            level, horizon = spec.tail
            if self.tail_method == "historical":
                tail = historical_tail(self.horizon_book_returns(w, x, horizon), level)
            else:
                tail = normal_tail(*self.daily_mean_std(w, x), level, horizon)
            return max(tail[0] if spec.kind == "var" else tail[1], 0.0)
        if spec.kind == "volatility":
            return self.daily_mean_std(w, x)[1] * math.sqrt(self.periods_per_year)
        if spec.kind == "max_drawdown":
            value = np.cumprod(1.0 + self.daily_returns(w, x))
            peak = np.maximum.accumulate(np.concatenate(([1.0], value)))[1:]
            return float(np.max(1.0 - value / peak, initial=0.0))
        if spec.kind == "weight":
            return float(np.max(np.abs(w), initial=0.0))
        if spec.kind == "sector_weight":
            sectors = self.sector_map or {}
            missing = sorted(a for a, v in zip(self.assets, w, strict=True) if v != 0 and a not in sectors)
            if missing:
                raise RiskInputError(f"sector_map has no sector for {missing}.", hint="Map every held asset.")
            totals: dict[str, float] = {}
            for asset, value in zip(self.assets, w, strict=True):
                if value != 0:
                    totals[sectors[asset]] = totals.get(sectors[asset], 0.0) + float(value)
            return max((abs(v) for v in totals.values()), default=0.0)
        if spec.kind == "gross_leverage":
            return float(np.abs(w).sum()) + abs(x)
        if spec.kind == "tracking_error":
            # The benchmark is the index: the active book is (w, x - 1).
            return self.daily_mean_std(w, x - 1.0)[1] * math.sqrt(self.periods_per_year)
        return abs(self.beta(w, x))

    def summary(self, w: np.ndarray, x: float = 0.0) -> dict[str, float]:
        """Volatility (annualised), parametric Normal 1-day VaR/CVaR at 95% and 99%, and beta if known."""
        mean, std = self.daily_mean_std(w, x)
        out = {"volatility": std * math.sqrt(self.periods_per_year)}
        for level in (0.95, 0.99):
            var, cvar = normal_tail(mean, std, level, 1)
            out[f"var_{round(level * 100)}_1d_normal"] = var
            out[f"cvar_{round(level * 100)}_1d_normal"] = cvar
        if self.has_index:
            out["beta"] = self.beta(w, x)
        return out
