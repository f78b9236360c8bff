"""A portfolio specification: universe, method, its parameters, estimators, constraints, limits.

:class:`PortfolioSpec` is plain data, frozen and validated; it reads from YAML or JSON and writes back
to a JSON-ready dictionary that reads into an equal spec. Example (YAML)::

    name: core-equity
    universe: [AAPL, MSFT, JNJ, XOM]
    method: max_sharpe
    risk_free_rate: 0.02
    estimators: {mean: historical, covariance: ledoit_wolf}
    constraints:
      weight_bounds: [0.0, 0.4]
      groups: {tech: [AAPL, MSFT]}
      group_bounds: {tech: [null, 0.5]}
    regime_policies:
      turbulent: {method: min_variance, constraints: {weight_bounds: [0.0, 0.3]}}
    limits: {max_drawdown: 0.2}

``regime_policies`` maps a regime to overrides of any field except ``name``, ``universe``, ``regime_aware`` and
``regime_policies`` (``constraints`` overrides are merged into the base constraints). A key names a *role*, by
the volatility rank of the model's states (regime models order them calmest first): ``calm`` (the
lowest-variance state), ``turbulent`` (the highest-variance state) or ``normal`` (any state between); or one
state exactly (``state_<i>``, as models with four or more states name them). An exact state key wins over the
state's role. So ``turbulent`` applies to the 2-state model's ``turbulent`` and to the 4-state model's
``state_3`` alike. Any other key is refused when the spec is read; :meth:`PortfolioSpec.check_regime_policies`
also refuses keys that match no state of a given model. :meth:`PortfolioSpec.in_force` returns the spec in
force in a state and which policy applied (:class:`RegimePolicy`).

The bundled default portfolio may meet a universe smaller than its own: see
:mod:`portfolio_engine.optimization.spec_fitting`. Roles: :mod:`portfolio_engine.optimization.regime_roles`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal, Self, get_args

import yaml
from pydantic import Field, model_validator

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._spec_model import SpecModel
from portfolio_engine.optimization.constraints import Constraints
from portfolio_engine.optimization.moments import COVARIANCE_ESTIMATORS, MEAN_ESTIMATORS
from portfolio_engine.optimization.regime_roles import REGIME_ROLES, RegimePolicy, check_policy_keys, regime_roles

__all__ = ["METHODS", "SHARED_METHOD_PARAMS", "EstimatorSpec", "Method", "PortfolioSpec"]

Method = Literal[
    "min_variance",
    "max_sharpe",
    "target_return",
    "target_risk",
    "max_utility",
    "efficient_frontier",
    "black_litterman",
    "risk_parity",
    "min_cvar",
    "mean_cvar",
    "resampled",
    "hrp",
]
#: Every method a spec may name.
METHODS: tuple[str, ...] = get_args(Method)

_NOT_OVERRIDABLE = ("name", "universe", "regime_aware", "regime_policies")

#: ``method_params`` keys read outside the method (by the pipeline's rebalancing rule): every method accepts them.
SHARED_METHOD_PARAMS: frozenset[str] = frozenset({"rebalance"})


class EstimatorSpec(SpecModel):
    """Which estimators produce the moments (see :func:`portfolio_engine.optimization.estimate_moments`).

    Parameters
    ----------
    mean : str, default "historical"
    covariance : str, default "ledoit_wolf"
    options : dict
        Options of the chosen estimators (``span``, ``halflife``, ``n_factors``...).

    Raises
    ------
    SpecificationError
        Unknown estimator or an option neither estimator takes.
    """

    mean: str = "historical"
    covariance: str = "ledoit_wolf"
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known(self) -> Self:
        if self.mean not in MEAN_ESTIMATORS:
            raise SpecificationError(
                f"estimators.mean={self.mean!r} is unknown.", hint=f"Choose one of {sorted(MEAN_ESTIMATORS)}."
            )
        if self.covariance not in COVARIANCE_ESTIMATORS:
            raise SpecificationError(
                f"estimators.covariance={self.covariance!r} is unknown.",
                hint=f"Choose one of {sorted(COVARIANCE_ESTIMATORS)}.",
            )
        allowed = MEAN_ESTIMATORS[self.mean] | COVARIANCE_ESTIMATORS[self.covariance]
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            raise SpecificationError(
                f"estimators.options {unknown} do not apply to mean={self.mean!r}, covariance={self.covariance!r}.",
                hint=f"Valid options: {sorted(allowed) or 'none'}.",
            )
        return self


class PortfolioSpec(SpecModel):
    """What to optimize and under which constraints.

    Parameters
    ----------
    name : str, default "portfolio"
    universe : list of str, optional
        Assets to hold; None for every asset of the moments given at solve time.
    method : str, default "min_variance"
        One of :data:`METHODS`.
    target_return : float, optional
        Annual; required by ``target_return``.
    target_volatility : float, optional
        Annual, > 0; required by ``target_risk``.
    risk_aversion : float, default 1.0
        ``lambda`` of ``max_utility`` (``mu'w - lambda/2 w'Sigma w``) and of Black-Litterman's prior.
    risk_free_rate : float, default 0.0
        Annual; for the Sharpe ratio.
    frontier_points : int, default 50
    cvar_alpha : float, default 0.95
        Confidence level of CVaR, in [0.5, 1): 0.95 averages the worst 5 % of outcomes (the level, not the
        tail probability).
    n_resamples : int, default 100
        Resampled frontier draws.
    seed : int, optional
        Seed of every random draw of the method.
    method_params : dict
        Method-specific options (for example Black-Litterman views), read by that method; a method refuses
        keys it does not read, except those of :data:`SHARED_METHOD_PARAMS` (read outside the method, e.g.
        ``rebalance`` by the rebalancing rule).
    estimators : EstimatorSpec
    lookback_days : int or None, default 252
        Trailing window of returns the moments are estimated on (None: all).
    periods_per_year : int, default 252
    constraints : Constraints
    regime_aware : bool, default True
        Apply ``regime_policies`` when a regime is given.
    regime_policies : dict of str to dict
        Overrides by regime role or state, e.g. ``{"turbulent": {"method": "min_variance"}}`` (keys: ``calm``,
        ``normal``, ``turbulent`` or ``state_<i>``; see the module docstring).
    limits : dict of str to float
        Risk limits by name (checked by the risk stage).

    Raises
    ------
    SpecificationError
        Unknown field (named), a value out of range, a method without its required parameter, a
        universe repeating an asset, a non-numeric limit, an invalid regime policy or a policy key that names
        no regime (named, with the valid keys).
    """

    name: str = "portfolio"
    universe: list[str] | None = None
    method: Method = "min_variance"
    target_return: float | None = None
    target_volatility: float | None = Field(default=None, gt=0)
    risk_aversion: float = Field(default=1.0, gt=0)
    risk_free_rate: float = 0.0
    frontier_points: int = Field(default=50, ge=2)
    cvar_alpha: float = Field(default=0.95, ge=0.5, lt=1)
    n_resamples: int = Field(default=100, ge=1)
    seed: int | None = None
    method_params: dict[str, Any] = {}
    estimators: EstimatorSpec = EstimatorSpec()
    lookback_days: int | None = Field(default=252, ge=2)
    periods_per_year: int = Field(default=252, ge=1)
    constraints: Constraints = Constraints()
    regime_aware: bool = True
    regime_policies: dict[str, dict[str, Any]] = {}
    limits: dict[str, float] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for field in ("target_return", "risk_free_rate"):
            value = getattr(self, field)
            if value is not None and not math.isfinite(value):
                raise SpecificationError(f"{field} must be finite; got {value!r}.", hint=f"Give {field} in decimal.")
        if self.method == "target_return" and self.target_return is None:
            raise SpecificationError(
                "method='target_return' needs target_return; got None.", hint="Set target_return (annual, e.g. 0.08)."
            )
        if self.method == "target_risk" and self.target_volatility is None:
            raise SpecificationError(
                "method='target_risk' needs target_volatility; got None.",
                hint="Set target_volatility (annual, e.g. 0.12).",
            )
        if self.universe is not None:
            repeated = sorted({a for a in self.universe if self.universe.count(a) > 1})
            if repeated or not self.universe:
                raise SpecificationError(
                    f"universe is empty or repeats {repeated}.", hint="List each asset once, or null for all."
                )
        bad = {k: v for k, v in self.limits.items() if not math.isfinite(v)}
        if bad:
            raise SpecificationError(f"limits must be finite numbers; got {bad}.", hint="Give each limit as a number.")
        check_policy_keys(list(self.regime_policies))
        for key in self.regime_policies:
            self._with_policy(key)
        return self

    def regime_policy(self, state: str | None, state_names: Sequence[str] | None = None) -> RegimePolicy:
        """Which of ``regime_policies`` applies in regime ``state`` (pure: the spec is not changed).

        An exact state key (``state_3``) wins; else the state's role by volatility rank (:func:`regime_roles`).

        Parameters
        ----------
        state : str or None
            The regime's most probable state (None: no regime).
        state_names : sequence of str, optional
            The model's states, calmest first (``DetectRegimeOutput.state_names``, an HMM's ``state_names_``).
            Without them a state's role is its label when the label is a role (``calm``, ``normal``,
            ``turbulent``), else unknown.

        Returns
        -------
        RegimePolicy
            ``key`` is None when no policy applies or ``regime_aware`` is False.

        Raises
        ------
        SpecificationError
            ``state`` is not one of ``state_names``.
        """
        if state is None:
            return RegimePolicy()
        if state_names is None:
            role = state if state in REGIME_ROLES else None
            n_states = None
        else:
            roles = regime_roles(state_names)
            if state not in roles:
                raise SpecificationError(
                    f"Regime state {state!r} is not one of the model's states {list(roles)}.",
                    hint="Pass the state names of the model that gave the state (its state_names_).",
                )
            role, n_states = roles[state], len(roles)
        key = None
        if self.regime_aware:
            key = state if state in self.regime_policies else role if role in self.regime_policies else None
        return RegimePolicy(state=state, role=role, key=key, n_states=n_states)

    def in_force(
        self, state: str | None, state_names: Sequence[str] | None = None
    ) -> tuple[PortfolioSpec, RegimePolicy]:
        """The spec in force in regime ``state`` and which policy made it (see :meth:`regime_policy`).

        Returns this spec when no policy applies (``state`` None, no policy for the state or its role,
        ``regime_aware`` False); otherwise a spec with the policy applied and no regime policies of its own.

        Raises
        ------
        SpecificationError
            ``state`` is not one of ``state_names``; the policy overrides a field it may not or gives an
            invalid value (the key is named).
        """
        policy = self.regime_policy(state, state_names)
        return (self if policy.key is None else self._with_policy(policy.key)), policy

    def for_regime(self, state: str | None, state_names: Sequence[str] | None = None) -> PortfolioSpec:
        """The spec in force in regime ``state``: :meth:`in_force` without the policy description.

        Raises
        ------
        SpecificationError
            As :meth:`in_force`.
        """
        return self.in_force(state, state_names)[0]

    def check_regime_policies(self, state_names: Sequence[str]) -> None:
        """Refuse policy keys that match no state of a model (e.g. ``normal`` with a 2-state model).

        For a spec about to be saved against the champion regime model.

        Parameters
        ----------
        state_names : sequence of str
            The model's states, calmest first.

        Raises
        ------
        SpecificationError
            A key matches neither a state's name nor a state's role (named, with the keys that would).
        """
        roles = regime_roles(state_names)
        valid = [*dict.fromkeys([*(r for r in roles.values() if r is not None), *roles])]
        unmatched = [k for k in self.regime_policies if k not in valid]
        if unmatched:
            raise SpecificationError(
                f"regime_policies {unmatched} match no state of the regime model (states {list(roles)}).",
                hint=f"For this model use one of {valid}.",
            )

    def _with_policy(self, key: str) -> PortfolioSpec:
        """The spec with ``regime_policies[key]`` applied and no policies of its own."""
        overrides = dict(self.regime_policies[key])
        forbidden = [k for k in overrides if k in _NOT_OVERRIDABLE]
        if forbidden:
            raise SpecificationError(
                f"regime_policies[{key!r}] overrides {forbidden}, which a policy may not change.",
                hint=f"A policy may set any field except {list(_NOT_OVERRIDABLE)}.",
            )
        data = self.model_dump()
        if "constraints" in overrides:
            data["constraints"] = {**data["constraints"], **dict(overrides.pop("constraints") or {})}
        data.update(overrides)
        data["regime_policies"] = {}
        try:
            return type(self).model_validate(data)
        except SpecificationError as exc:
            raise SpecificationError(f"regime_policies[{key!r}]: {exc.message}", hint=exc.hint) from exc

    @classmethod
    def from_dict(cls, data: Any) -> PortfolioSpec:
        """Validate a mapping (as read from YAML or JSON).

        Raises
        ------
        SpecificationError
            ``data`` is not a mapping, or it fails validation.
        """
        if not isinstance(data, dict):
            raise SpecificationError(
                f"A portfolio spec must be a mapping; got {type(data).__name__} {data!r:.80}.",
                hint="Pass the YAML/JSON text of a mapping (read a file first: path.read_text()).",
            )
        return cls.model_validate(data)

    @classmethod
    def from_yaml(cls, text: str) -> PortfolioSpec:
        """Read a spec from YAML text (the core reads no files: callers pass ``path.read_text()``).

        Raises
        ------
        SpecificationError
            Not a string, unreadable YAML, not a mapping, or an invalid spec.
        """
        try:
            data = yaml.safe_load(_text(text, "YAML"))
        except yaml.YAMLError as exc:
            raise SpecificationError(f"The spec is not valid YAML: {exc}", hint="Check indentation.") from exc
        return cls.from_dict(data)

    @classmethod
    def from_json(cls, text: str) -> PortfolioSpec:
        """Read a spec from JSON text (the core reads no files: callers pass ``path.read_text()``).

        Raises
        ------
        SpecificationError
            Not a string, unreadable JSON, not an object, or an invalid spec.
        """
        try:
            data = json.loads(_text(text, "JSON"))
        except json.JSONDecodeError as exc:
            raise SpecificationError(f"The spec is not valid JSON: {exc}", hint="Check the syntax.") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; ``from_dict(spec.to_dict()) == spec``."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """YAML text; ``from_yaml(spec.to_yaml()) == spec``."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _text(text: object, kind: str) -> str | bytes:
    if not isinstance(text, str | bytes):
        raise SpecificationError(
            f"A {kind} spec must be given as text; got {type(text).__name__} {text!r:.80}.",
            hint="The optimization core reads no files: pass path.read_text(encoding='utf-8').",
        )
    return text
