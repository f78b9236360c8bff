"""The definition of a feature set: which indicators, with which windows, under which version.

A :class:`FeatureSpec` is plain data (JSON in, JSON out). Its :attr:`FeatureSpec.version` names a
feature set in the lake: the same definition computed by the same code always gets the same
version, and any change to a parameter or to the computation (``FEATURE_CODE_VERSION``) gets a new one.

Conventions (what :func:`portfolio_engine.features.compute_features` does with a spec):

* prices are ``adj_close`` unless a feature needs OHLC;
* volatilities are standard deviations of one-bar log returns, annualised with
  ``sqrt(periods_per_year)`` (252 trading days);
* windows count the symbol's own bars, not calendar days nor other symbols' dates;
* beta and correlation pair a symbol's returns with the index's over the dates both have a bar;
  ranks compare the symbols that have a value on a date;
* a feature is NaN until its window is full (warm-up), and at date t uses bars at or before t only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bump when the computation of any feature changes (formula, warm-up, seeding), so that feature sets
# computed by older code get a different version even when their definition is the same.
# 2: indicators on each symbol's own bars, beta/correlation on the dates shared with the index (1 used
#    the union of all symbols' dates; identical results where every symbol has the same dates).
FEATURE_CODE_VERSION: int = 2


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EwmaVolParams(_Params):
    """EWMA (RiskMetrics, zero-mean) volatility: set exactly one of ``halflife`` and ``span`` (in bars)."""

    halflife: float | None = Field(default=None, gt=0)
    span: float | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_of(self) -> EwmaVolParams:
        if (self.halflife is None) == (self.span is None):
            raise ValueError(f"set exactly one of halflife and span; got halflife={self.halflife}, span={self.span}")
        return self

    @property
    def name(self) -> str:
        if self.halflife is not None:
            return f"ewmavol_hl{_num(self.halflife)}"
        return f"ewmavol_span{_num(self.span)}"

    @property
    def warmup(self) -> int:
        """Returns needed before the estimate is reported: one half-life (or one span), at least 2."""
        return max(2, round(self.halflife if self.halflife is not None else self.span or 0))


class MomentumParams(_Params):
    """Price momentum ``P[t - skip] / P[t - lookback] - 1``, e.g. 12-1 month: lookback 252, skip 21."""

    lookback: int = Field(gt=0)
    skip: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _skip_inside(self) -> MomentumParams:
        if self.skip >= self.lookback:
            raise ValueError(f"skip ({self.skip}) must be shorter than lookback ({self.lookback})")
        return self

    @property
    def name(self) -> str:
        return f"mom_{self.lookback}_{self.skip}" if self.skip else f"mom_{self.lookback}"


class MACDParams(_Params):
    """MACD line (EMA fast - EMA slow of price), its signal line and histogram."""

    fast: int = Field(default=12, ge=1)
    slow: int = Field(default=26, ge=2)
    signal: int = Field(default=9, ge=1)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MACDParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast span ({self.fast}) must be shorter than slow span ({self.slow})")
        return self

    @property
    def names(self) -> tuple[str, str, str]:
        return (f"macd_{self.fast}_{self.slow}", f"macd_signal_{self.signal}", "macd_hist")


class BollingerParams(_Params):
    """Bollinger bands: SMA(window) +/- k population standard deviations; %b and bandwidth."""

    window: int = Field(default=20, ge=2)
    k: float = Field(default=2.0, gt=0)

    @property
    def names(self) -> tuple[str, str]:
        return (f"bb_pctb_{self.window}", f"bb_width_{self.window}")


class FeatureSpec(_Params):
    """Which features to compute, and with which parameters.

    Parameters
    ----------
    returns : bool, default True
        ``ret_1d`` (simple) and ``logret_1d`` (log) one-bar returns.
    vol_windows : tuple of int, default (21, 63)
        Rolling volatility ``vol_<w>d``: sample std (ddof=1) of log returns, annualised.
    ewma_vol : tuple of EwmaVolParams, default (halflife 20,)
        ``ewmavol_hl<h>`` / ``ewmavol_span<s>``: sqrt of the EWMA of squared log returns, annualised.
    momentum : tuple of MomentumParams, default (252 skip 21, 63)
        ``mom_<L>_<S>`` (``mom_<L>`` without skip).
    rsi_windows : tuple of int, default (14,)
        ``rsi_<n>``: Wilder's RSI, in [0, 100].
    macd : MACDParams or None, default (12, 26, 9)
        ``macd_<f>_<s>``, ``macd_signal_<g>``, ``macd_hist``.
    bollinger : BollingerParams or None, default (20, 2)
        ``bb_pctb_<w>``, ``bb_width_<w>``.
    atr_windows : tuple of int, default (14,)
        ``atr_<n>``: Wilder's average true range on OHLC adjusted like ``adj_close``; NaN for symbols
        without OHLC and on bars without high/low.
    drawdown : bool, default True
        ``drawdown``: ``adj_close`` over its running maximum, minus 1 (in [-1, 0]).
    beta_windows : tuple of int, default (63, 252)
        ``beta_<w>d`` and ``corr_<w>d`` of simple returns to the index's.
    index_symbol : str or None, default "^GSPC"
        The index for beta and correlation; None skips those features.
    rank_features : tuple of str, default ("mom_252_21", "vol_21d")
        ``rank_<feature>``: percentile rank (0, 1] across symbols at each date (the index excluded).
    periods_per_year : int, default 252
        Annualisation factor for volatilities.

    Raises
    ------
    pydantic.ValidationError
        On a window below its minimum, duplicate feature names or a rank of a feature not in the spec.
    """

    returns: bool = True
    vol_windows: tuple[int, ...] = (21, 63)
    ewma_vol: tuple[EwmaVolParams, ...] = (EwmaVolParams(halflife=20),)
    momentum: tuple[MomentumParams, ...] = (MomentumParams(lookback=252, skip=21), MomentumParams(lookback=63))
    rsi_windows: tuple[int, ...] = (14,)
    macd: MACDParams | None = MACDParams()
    bollinger: BollingerParams | None = BollingerParams()
    atr_windows: tuple[int, ...] = (14,)
    drawdown: bool = True
    beta_windows: tuple[int, ...] = (63, 252)
    index_symbol: str | None = "^GSPC"
    rank_features: tuple[str, ...] = ("mom_252_21", "vol_21d")
    periods_per_year: int = Field(default=252, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        for label, windows, least in (
            ("vol_windows", self.vol_windows, 2),
            ("rsi_windows", self.rsi_windows, 1),
            ("atr_windows", self.atr_windows, 1),
            ("beta_windows", self.beta_windows, 2),
        ):
            if any(w < least for w in windows):
                raise ValueError(f"{label} must be >= {least}; got {windows}")
        names = self.base_feature_names()
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names repeat: {repeated}; remove the duplicate parameters")
        unknown = [f for f in self.rank_features if f not in names]
        if unknown:
            raise ValueError(f"rank_features {unknown} are not computed by this spec; available: {names}")
        return self

    def base_feature_names(self) -> list[str]:
        """Names of the per-symbol features, in output order (without the cross-sectional ranks)."""
        names: list[str] = []
        if self.returns:
            names += ["ret_1d", "logret_1d"]
        names += [f"vol_{w}d" for w in self.vol_windows]
        names += [p.name for p in self.ewma_vol]
        names += [p.name for p in self.momentum]
        names += [f"rsi_{n}" for n in self.rsi_windows]
        if self.macd is not None:
            names += list(self.macd.names)
        if self.bollinger is not None:
            names += list(self.bollinger.names)
        names += [f"atr_{n}" for n in self.atr_windows]
        if self.drawdown:
            names.append("drawdown")
        if self.index_symbol is not None:
            for w in self.beta_windows:
                names += [f"beta_{w}d", f"corr_{w}d"]
        return names

    def feature_names(self) -> list[str]:
        """Every feature column :func:`compute_features` returns, in order (after ``date`` and ``symbol``)."""
        return self.base_feature_names() + [f"rank_{f}" for f in self.rank_features]

    def canonical_json(self) -> str:
        """Return the definition as canonical JSON: sorted keys, no whitespace, defaults written out."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def version(self) -> str:
        """First 12 hex digits of sha256 over the canonical JSON and ``FEATURE_CODE_VERSION``."""
        payload: dict[str, Any] = {"code_version": FEATURE_CODE_VERSION, "spec": json.loads(self.canonical_json())}
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        return digest.hexdigest()[:12]


def _num(value: float | None) -> str:
    """Format a window for a column name: 20.0 -> '20', 2.5 -> '2.5'."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


DEFAULT_FEATURE_SPEC = FeatureSpec()
