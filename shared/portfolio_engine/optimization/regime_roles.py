"""Regime policies by role: which state of a regime model a ``regime_policies`` key names.

Regime models order their states calmest first (by the variance of their first feature), so a state's role is
its volatility rank: ``calm`` (the lowest-variance state), ``turbulent`` (the highest-variance state), ``normal``
(any state between). A policy key names a role, or one state exactly (``state_<i>``, as models with four or
more states name them); an exact state key wins over the state's role.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from portfolio_engine.exceptions import SpecificationError

__all__ = ["REGIME_ROLES", "RegimePolicy", "check_policy_keys", "regime_roles"]

#: The roles a regime policy key may name, by the volatility rank of a model's states (calmest first).
REGIME_ROLES: tuple[str, ...] = ("calm", "normal", "turbulent")
_STATE_KEY = re.compile(r"^state_(0|[1-9][0-9]*)$")
_ROLE_TEXT = {
    "calm": "lowest variance",
    "normal": "between the calmest and the most turbulent",
    "turbulent": "highest variance",
}


def regime_roles(state_names: Sequence[str]) -> dict[str, str | None]:
    """Each state's role by volatility rank: ``calm`` first, ``turbulent`` last, ``normal`` between.

    Parameters
    ----------
    state_names : sequence of str
        A regime model's ``state_names_``, calmest (lowest variance) first: ``calm, turbulent`` for 2 states,
        ``calm, normal, turbulent`` for 3, ``state_0 .. state_{n-1}`` for more.

    Returns
    -------
    dict of str to str or None
        The role of each state; a single state has none (it is both the calmest and the most turbulent).
    """
    names = [str(n) for n in state_names]
    last = len(names) - 1
    if last < 1:
        return dict.fromkeys(names)
    return {n: "calm" if i == 0 else "turbulent" if i == last else "normal" for i, n in enumerate(names)}


def check_policy_keys(keys: Sequence[str]) -> None:
    """Refuse a ``regime_policies`` key that is neither a role nor a ``state_<i>`` name (with a suggestion)."""
    for key in keys:
        if key in REGIME_ROLES or _STATE_KEY.match(key):
            continue
        close = difflib.get_close_matches(key, REGIME_ROLES, n=1, cutoff=0.6)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        raise SpecificationError(
            f"regime_policies key {key!r} names no regime.",
            hint=f"{suggestion}Use a role ({', '.join(REGIME_ROLES)}: the calmest state, any state between, the "
            "most turbulent, by variance) or a state of a 4+ state model (state_0, state_1, ...).",
        )


@dataclass(frozen=True)
class RegimePolicy:
    """Which regime policy is in force (see :meth:`PortfolioSpec.in_force`).

    Attributes
    ----------
    state : str or None
        The regime state (None: no regime was given).
    role : str or None
        The state's role by volatility rank (``calm``, ``normal``, ``turbulent``); None when unknown (a single
        state, or a ``state_<i>`` label given without the model's state names).
    key : str or None
        The ``regime_policies`` key applied; None when the spec's own settings apply.
    n_states : int or None
        The model's number of states, when known.
    """

    state: str | None = None
    role: str | None = None
    key: str | None = None
    n_states: int | None = None

    def describe(self) -> str:
        """One line for a run summary, e.g. ``regime state_3 (turbulent: highest variance of 4 states): policy ...``."""
        if self.state is None:
            return "no regime: the spec's own settings"
        where = self.state
        if self.role is not None:
            rank = _ROLE_TEXT[self.role] + (f" of {self.n_states} states" if self.n_states else "")
            where = f"{self.state} ({rank})" if self.role == self.state else f"{self.state} ({self.role}: {rank})"
        if self.key is None:
            return f"regime {where}: no policy, the spec's own settings"
        return f"regime {where}: policy {self.key!r}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the four attributes."""
        return {"state": self.state, "role": self.role, "key": self.key, "n_states": self.n_states}
