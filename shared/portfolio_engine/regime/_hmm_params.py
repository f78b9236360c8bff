"""Validation of :class:`HMMRegimeDetector`'s hyperparameters (at ``fit``, per the scikit-learn contract)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any

from portfolio_engine.exceptions import ConfigurationError
from portfolio_engine.regime._hmm_fit import COVARIANCE_TYPES

CRITERIA = ("bic", "aic")
_STATES_HINT = "Use e.g. n_states=2, or n_states='bic' with candidate_states=(2, 3, 4)."


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and int(value) >= minimum


def _is_positive(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and float(value) > 0


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "covariance_type": (lambda v: v in COVARIANCE_TYPES, f"one of {COVARIANCE_TYPES}"),
    "n_mix": (lambda v: _is_int(v, 1), "an int >= 1"),
    "n_restarts": (lambda v: _is_int(v, 1), "an int >= 1"),
    "n_iter": (lambda v: _is_int(v, 1), "an int >= 1"),
    "tol": (_is_positive, "a finite float > 0"),
    "screen_iter": (lambda v: _is_int(v, 0), "an int >= 0"),
    "n_finalists": (lambda v: _is_int(v, 1), "an int >= 1"),
    "scale": (_is_positive, "a finite float > 0"),
    "min_covar": (_is_positive, "a finite float > 0"),
}


def check_hyperparameters(params: Mapping[str, Any]) -> list[int]:
    """Validate the hyperparameters and return the numbers of states to try, ascending.

    Parameters
    ----------
    params : mapping
        ``HMMRegimeDetector.get_params()``.

    Returns
    -------
    list of int
        ``[n_states]``, or the sorted distinct ``candidate_states`` when ``n_states`` is a criterion.

    Raises
    ------
    ConfigurationError
        Naming the first invalid hyperparameter and the value received.
    """
    for name, (valid, requirement) in _RULES.items():
        if not valid(params[name]):
            raise ConfigurationError(
                f"{name} must be {requirement}; received {params[name]!r}.",
                hint="See HMMRegimeDetector's docstring for the accepted values.",
            )
    n_states = params["n_states"]
    if isinstance(n_states, str):
        if n_states not in CRITERIA:
            raise ConfigurationError(
                f"n_states must be an int >= 1 or one of {CRITERIA}; received {n_states!r}.", hint=_STATES_HINT
            )
        raw: Sequence[Any] = list(params["candidate_states"])
    else:
        raw = [n_states]
    if not raw or not all(_is_int(k, 1) for k in raw):
        raise ConfigurationError(
            f"Numbers of states must be ints >= 1; received n_states={n_states!r}, "
            f"candidate_states={params['candidate_states']!r}.",
            hint=_STATES_HINT,
        )
    return sorted({int(k) for k in raw})


def order_feature_index(order_by: Any, feature_names: Sequence[str] | None, n_features: int) -> int:
    """Column position of ``order_by`` (a position, or a name seen in ``fit``).

    Raises
    ------
    ConfigurationError
        If ``order_by`` is neither a valid position nor a known column name.
    """
    if isinstance(order_by, str):
        if feature_names is None or order_by not in feature_names:
            raise ConfigurationError(
                f"order_by={order_by!r} is not a feature name; names seen in fit: {feature_names}.",
                hint="Fit on a DataFrame holding that column, or pass order_by as a column position.",
            )
        return list(feature_names).index(order_by)
    if not _is_int(order_by, 0) or order_by >= n_features:
        raise ConfigurationError(
            f"order_by={order_by!r} is not a column position of features with {n_features} columns.",
            hint="Pass an int in [0, n_features) or a column name.",
        )
    return int(order_by)
