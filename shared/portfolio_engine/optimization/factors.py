"""Linear factor models of asset returns and the covariance they imply, ``B F B' + D``.

``LinearFactorModel`` regresses each asset on given factor returns (OLS with an intercept);
``PCAFactorModel`` takes the factors from the returns themselves (principal components). Three
builders prepare the data of each family and fit the model:

* :func:`fama_french_model`: monthly Fama-French factors (``Mkt-RF``, ``SMB``, ``HML``, ``RF`` in
  decimals, as ``load_ff3_monthly()`` returns them); daily asset returns are compounded to calendar
  months and taken in excess of ``RF``;
* :func:`etf_factor_model`: daily factor-ETF prices (e.g. MTUM QUAL SIZE USMV VLUE) -> returns as factors;
* :func:`macro_factor_model`: user-supplied level series (e.g. Treasury yields) -> changes as factors.

Dates are aligned explicitly by :func:`align_factor_data` (inner join, then rows with a gap in any
series dropped); fewer overlapping observations than needed raise :class:`DataError`.
Learned moments are kept in per-period units; ``covariance()`` and ``expected_returns()`` annualise.
"""

from portfolio_engine.optimization._factor_builders import etf_factor_model, fama_french_model, macro_factor_model
from portfolio_engine.optimization._factor_models import (
    LinearFactorModel,
    PCAFactorModel,
    align_factor_data,
    to_monthly_returns,
)

__all__ = [
    "LinearFactorModel",
    "PCAFactorModel",
    "align_factor_data",
    "etf_factor_model",
    "fama_french_model",
    "macro_factor_model",
    "to_monthly_returns",
]
