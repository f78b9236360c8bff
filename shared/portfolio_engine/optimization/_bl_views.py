"""Black-Litterman views: friendly absolute and relative views turned into the matrices ``P`` and ``Q``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError

__all__ = ["RelativeView", "Views", "build_views"]


@dataclass(frozen=True)
class RelativeView:
    """One relative view: the ``long`` basket outperforms the ``short`` basket by ``outperformance`` a year.

    Parameters
    ----------
    long, short : sequence of str or mapping of str to float
        Assets of each leg. A sequence weights its assets equally; a mapping gives relative weights
        (for example market capitalisations, as in Idzorek 2005). Each leg is normalised to sum to one, so the
        row of ``P`` holds ``+1`` in total on the long leg and ``-1`` on the short leg.
    outperformance : float
        Expected annual return of long minus short (``0.02`` is 2 %).
    name : str, optional
        Label of the view; defaults to ``"<long>-<short>"``.
    """

    long: Sequence[str] | Mapping[str, float]
    short: Sequence[str] | Mapping[str, float]
    outperformance: float
    name: str | None = None


@dataclass(frozen=True)
class Views:
    """Views in matrix form: ``P @ mu = Q`` (plus noise of covariance ``Omega``).

    Attributes
    ----------
    picking : DataFrame of shape (n_views, n_assets)
        ``P``; rows are named views, columns the assets.
    returns : Series of shape (n_views,)
        ``Q``, annual expected returns of the view portfolios.
    """

    picking: pd.DataFrame
    returns: pd.Series = field(repr=False)

    def __post_init__(self) -> None:
        if not self.picking.index.equals(self.returns.index):
            raise SpecificationError(
                f"View names differ between P {list(self.picking.index)} and Q {list(self.returns.index)}.",
                hint="Build views with build_views(...), or index P's rows and Q by the same view names.",
            )
        values = self.picking.to_numpy(dtype=float)
        q = self.returns.to_numpy(dtype=float)
        if not (np.isfinite(values).all() and np.isfinite(q).all()):
            bad = [
                str(v)
                for v, row, r in zip(self.picking.index, values, q, strict=True)
                if not np.isfinite([*row, r]).all()
            ]
            raise SpecificationError(f"P or Q holds NaN or infinite values in views {bad}.", hint="Give finite views.")

    def __len__(self) -> int:
        return len(self.returns)


def _names(leg: Sequence[str] | Mapping[str, float]) -> list[str]:
    return [leg] if isinstance(leg, str) else list(leg)


def _leg(leg: Sequence[str] | Mapping[str, float], side: str, label: str) -> dict[str, float]:
    if isinstance(leg, str):
        leg = [leg]
    weights = dict(leg) if isinstance(leg, Mapping) else dict.fromkeys(leg, 1.0)
    total = float(sum(weights.values()))
    values = np.array(list(weights.values()), dtype=float)
    if not weights or not np.isfinite(values).all() or (values < 0).any() or total <= 0:
        raise SpecificationError(
            f"The {side} leg of view {label!r} is empty or has negative weights: {weights!r}.",
            hint="List at least one asset per leg, with non-negative relative weights.",
        )
    return {asset: value / total for asset, value in weights.items()}


def build_views(
    assets: Sequence[str] | pd.Index,
    *,
    absolute: Mapping[str, float] | None = None,
    relative: Sequence[RelativeView] = (),
) -> Views:
    """Turn friendly views into ``(P, Q)``.

    Parameters
    ----------
    assets : sequence of str
        The universe, in the covariance's order (columns of ``P``).
    absolute : mapping of str to float, optional
        ``{asset: expected annual return}``; each becomes a row of ``P`` with a single one.
    relative : sequence of RelativeView, default ()
        Outperformance views between baskets.

    Returns
    -------
    Views
        Absolute views first (named by their asset), then relative ones.

    Raises
    ------
    SpecificationError
        If a view names an unknown asset, an asset sits on both legs, or two views share a name.

    Examples
    --------
    >>> views = build_views(["A", "B", "C"], absolute={"A": 0.05},
    ...                     relative=[RelativeView(long=["B"], short=["C"], outperformance=0.02)])
    >>> views.picking.loc["B-C"].tolist()
    [0.0, 1.0, -1.0]
    """
    universe = pd.Index(assets)
    rows: dict[str, dict[str, float]] = {}
    q: dict[str, float] = {}
    for asset, value in (absolute or {}).items():
        rows[asset] = {asset: 1.0}
        q[asset] = float(value)
    for view in relative:
        label = view.name or f"{'+'.join(_names(view.long))}-{'+'.join(_names(view.short))}"
        long_leg, short_leg = _leg(view.long, "long", label), _leg(view.short, "short", label)
        if overlap := sorted(set(long_leg) & set(short_leg)):
            raise SpecificationError(
                f"Assets {overlap} sit on both legs of view {label!r}.", hint="Put each asset on one leg only."
            )
        if label in rows:
            raise SpecificationError(f"Two views are named {label!r}.", hint="Give each RelativeView a unique name.")
        rows[label] = long_leg | {asset: -value for asset, value in short_leg.items()}
        q[label] = float(view.outperformance)
    named = {asset for row in rows.values() for asset in row}
    if unknown := sorted(named - set(universe)):
        raise SpecificationError(f"Views name assets outside the universe: {unknown}.", hint="Fix the tickers.")
    picking = pd.DataFrame(
        [[row.get(asset, 0.0) for asset in universe] for row in rows.values()],
        index=pd.Index(list(rows), name="view"),
        columns=universe,
        dtype=float,
    )
    return Views(picking=picking, returns=pd.Series(q, index=picking.index, dtype=float, name="Q"))
