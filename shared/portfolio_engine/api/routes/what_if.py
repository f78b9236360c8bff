"""``/what-if``: optimize a portfolio now, on the lake's prices, and say whether it would rebalance; change nothing.

The use case of ``spe optimize`` without ``--save`` (``pipeline.what_if``): a stored or bundled portfolio's spec,
or one given inline, with an optional method override, optimized against the stored holdings. It answers
synchronously, so the problem's size is checked before any work: at most ``SPE_API_WHAT_IF_MAX_ASSETS`` assets
and ``SPE_API_WHAT_IF_MAX_HISTORY_DAYS`` trading days of history (413 beyond). The proposal is written to the
lake as any optimization's; the store of record is only read: specs and holdings move only by a saved spec or a
committed run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field, model_validator

from portfolio_engine.api.errors import PayloadTooLargeError
from portfolio_engine.api.routing import operation, services
from portfolio_engine.exceptions import ModelNotFoundError

if TYPE_CHECKING:
    from portfolio_engine.pipeline.what_if import WhatIfSize

router = Router()

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class WhatIfRequest(BaseModel):
    """The portfolio to optimize: a stored or bundled portfolio's spec, or an inline spec (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    portfolio: str | None = Field(
        default=None, pattern=NAME, description="A portfolio's name: its stored spec, else the bundled one."
    )
    spec: dict[str, Any] | None = Field(default=None, description="A PortfolioSpec (see PortfolioSpec in the schemas).")
    method: str | None = Field(
        default=None, pattern=r"^[a-z_]{1,40}$", description="Optimize with this method instead of the spec's."
    )
    source: Literal["bundled", "yahoo", "alpha_vantage", "nasdaq_data_link"] = "bundled"
    regime: bool = Field(default=True, description="Regime-aware moments and policies from the champion model.")

    @model_validator(mode="after")
    def _one_spec(self) -> WhatIfRequest:
        if (self.portfolio is None) == (self.spec is None):
            raise ValueError("give exactly one of portfolio (a stored or bundled spec) and spec (an inline spec)")
        return self


class Decision(BaseModel):
    """Whether the portfolio would trade from its holdings to the target, and why."""

    rebalance: bool
    reason: str = Field(description="initial, regime_change, drift, universe_changed..., or why it would hold.")
    drift: float
    turnover: float
    cost: float
    benefit: float


class RegimeUsed(BaseModel):
    """The regime detection the what-if used (``available`` false: why none was)."""

    available: bool
    reason: str | None = None
    regime: str | None = None
    role: str | None = Field(default=None, description="calm, normal or turbulent, by volatility rank.")
    policy: str | None = Field(default=None, description="The regime_policies key in force (None: the spec's own).")
    model_name: str | None = None
    model_version: str | None = None
    as_of: str | None = None
    probabilities: dict[str, float] | None = None
    next_probabilities: dict[str, float] | None = None


class WhatIfResult(BaseModel):
    """The target weights and their moments, the rebalancing decision against the holdings, the regime used."""

    portfolio: str
    as_of: str = Field(description="The last day of prices used.")
    spec_source: str = Field(description="inline, store (spec vN) or bundled.")
    spec_method: str = Field(description="The spec's method (with the override).")
    method: str = Field(description="The method in force (a regime policy may replace the spec's).")
    weights: dict[str, float] = Field(description="Target weights; they sum to the spec's budget.")
    expected_return: float = Field(description="Annualized.")
    volatility: float = Field(description="Annualized.")
    sharpe: float
    risk_contributions: dict[str, float]
    decision: Decision
    regime: RegimeUsed | None = Field(description="None when not asked for (regime false).")
    adaptations: list[str] = Field(description="Changes made to the bundled default for the lake's universe.")
    proposal_key: str = Field(description="The lake object holding the full proposal (moments, spec in force).")


def _within_limits(size: WhatIfSize) -> None:
    settings = services().settings
    if size.assets > settings.api_what_if_max_assets:
        raise PayloadTooLargeError(
            f"The universe has {size.assets} assets; a what-if optimizes at most {settings.api_what_if_max_assets}.",
            hint="Narrow the spec's universe (SPE_API_WHAT_IF_MAX_ASSETS), or run it as a run (POST /runs).",
        )
    if size.history_days > settings.api_what_if_max_history_days:
        raise PayloadTooLargeError(
            f"The history spans {size.history_days} trading days; a what-if reads at most "
            f"{settings.api_what_if_max_history_days}.",
            hint="Set the spec's lookback_days lower (SPE_API_WHAT_IF_MAX_HISTORY_DAYS), or run it (POST /runs).",
        )


def _result(document: dict[str, Any]) -> WhatIfResult:
    model = document["regime_model"]
    regime = None
    if model is not None:
        regime = RegimeUsed(
            **{k: model.get(k) for k in ("available", "reason", "model_name", "model_version", "as_of")},
            regime=document["regime"] if document["regime_aware"] else None,
            role=document.get("regime_role") if document["regime_aware"] else None,
            policy=document.get("policy"),
            probabilities=model.get("probabilities"),
            next_probabilities=model.get("next_probabilities"),
        )
    return WhatIfResult(
        portfolio=document["portfolio"], as_of=str(document["as_of"]), spec_source=document["spec_source"],
        spec_method=document["spec_method"], method=document["method"], weights=document["target_weights"],
        expected_return=document["expected_return"], volatility=document["volatility"], sharpe=document["sharpe"],
        risk_contributions=document["risk_contributions"], decision=Decision(**document["decision"]), regime=regime,
        adaptations=document["adaptations"], proposal_key=document["result_key"],
    )  # fmt: skip


@operation(router, "POST", "/what-if", role="viewer", summary="Optimize now and say whether it would rebalance",
           tags=["what-if"], errors=(404, 413))  # fmt: skip
def what_if(body: WhatIfRequest) -> WhatIfResult:
    """As `spe optimize` without --save: nothing stored changes.

    413 beyond the asset or history limits; 404 when regime-aware and no regime model is the champion yet (the
    CLI would train one).
    """
    from datetime import UTC, datetime

    from portfolio_engine.pipeline import what_if as use_case

    bound = services()
    if body.regime and bound.store.view("champion", "regime/market") is None:
        # the CLI would train a first model here; a what-if through the API changes nothing stored
        raise ModelNotFoundError(
            "No regime model is the champion yet, so there is no current regime to optimize for.",
            hint='Run a rebalance first (POST /portfolios/default/runs) or send "regime": false.',
        )
    chosen = use_case.choose_spec(bound.store, spec=body.spec, portfolio=body.portfolio, method=body.method)
    lake = bound.lake()
    symbols = use_case.curated_symbols(lake, body.source)
    _within_limits(use_case.what_if_size(chosen, lake, body.source, symbols))
    document = use_case.what_if(
        chosen, store=bound.store, lake=lake, registry=bound.registry(), source=body.source, symbols=symbols,
        run_id=f"what-if-{datetime.now(UTC):%Y%m%dT%H%M%S%f}", regime=body.regime,
    )  # fmt: skip
    return _result(document)
