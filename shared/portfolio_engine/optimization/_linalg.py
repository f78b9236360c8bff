"""Covariance linear algebra shared by every method: PSD repair, square roots, and the scales solvers need.

Solver tolerances are absolute, so every problem is scaled before it is solved: risk terms by the mean
variance ``s = trace(Sigma) / n`` (:func:`variance_scale`), return terms by ``max |mu|`` (:func:`return_scale`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from portfolio_engine.exceptions import SpecificationError
from portfolio_engine.optimization._checks import check_symmetric

__all__ = [
    "NonPSDCovarianceWarning",
    "checked_covariance",
    "psd_factor",
    "repair_psd",
    "return_scale",
    "variance_scale",
]


class NonPSDCovarianceWarning(UserWarning):
    """A covariance matrix had a negative eigenvalue and was replaced by a nearby PSD matrix."""


Matrix = TypeVar("Matrix", pd.DataFrame, np.ndarray)


def variance_scale(cov: np.ndarray) -> float:
    """The mean variance ``trace(cov) / n`` (at least 1e-300): divides risk terms so objectives are O(1)."""
    return max(float(np.trace(cov)) / max(cov.shape[0], 1), 1e-300)


def return_scale(values: np.ndarray) -> float:
    """``max |values|`` (at least 1e-12): divides return terms so objectives are O(1)."""
    return max(float(np.abs(values).max(initial=0.0)), 1e-12)


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """A square root ``F`` with ``F' F = cov`` (eigen-decomposition; tiny negative eigenvalues clipped to 0).

    Works for singular (PSD) matrices, where a Cholesky factorisation fails.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)
        Symmetric.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
    """
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))).T


def checked_covariance(cov: np.ndarray, labels: Sequence[object] | None = None) -> np.ndarray:
    """``cov`` symmetrised, or a PSD repair of it (with a ``NonPSDCovarianceWarning``) when it is not PSD.

    A Cholesky factorisation is the cheap test of the usual (positive definite) case; only when it fails are
    the eigenvalues computed. ``labels`` name the assets in error messages.

    Raises
    ------
    SpecificationError
        Not square, not finite or not symmetric (see :func:`~portfolio_engine.optimization._checks.check_symmetric`).
    """
    cov = check_symmetric(cov, labels=labels)
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        cov = np.asarray(repair_psd(cov), dtype=float)
    return cov


def repair_psd(
    cov: Matrix,
    *,
    method: Literal["clip", "higham"] = "clip",
    floor: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> Matrix:
    """Return ``cov`` if it is positive semi-definite, else a nearby PSD matrix and a warning.

    ``cov`` counts as PSD when its smallest eigenvalue is at least ``floor - tol * max(|eig|)``.

    * ``clip``: eigenvalues below ``floor`` are raised to it, ``V max(L, floor) V'``. With
      ``floor=0`` this is the nearest PSD matrix in the Frobenius norm (Higham 1988). It changes the
      variances too.
    * ``higham``: the variances are kept exactly; the correlation matrix is replaced by the nearest
      correlation matrix (Frobenius norm, unit diagonal, PSD) by Higham's alternating projections
      with Dykstra's correction, then rescaled. ``floor`` must be 0.

    Parameters
    ----------
    cov : DataFrame or ndarray of shape (n_assets, n_assets)
        Symmetric (up to round-off).
    method : {"clip", "higham"}, default "clip"
    floor : float, default 0.0
        Smallest eigenvalue wanted (``clip`` only): a small positive floor makes the result positive definite.
    tol : float, default 1e-10
        Relative tolerance of the PSD test, and of the convergence of ``higham``.
    max_iter : int, default 200
        Iterations of ``higham``; the result is PSD even if it stops before converging.

    Returns
    -------
    DataFrame or ndarray of shape (n_assets, n_assets)
        The same object when no repair was needed, otherwise a new one of the same type (and labels).

    Warns
    -----
    NonPSDCovarianceWarning
        When a repair was made; the message names the most negative eigenvalue.

    Raises
    ------
    SpecificationError
        Not square, not finite, not symmetric, unknown method, ``floor`` < 0 or ``floor`` with ``higham``,
        or a variance <= 0 with ``higham``.

    References
    ----------
    Higham, N. J. (1988), "Computing a nearest symmetric positive semidefinite matrix", Linear Algebra and
    its Applications 103, 103-118.
    Higham, N. J. (2002), "Computing the nearest correlation matrix - a problem from finance", IMA Journal
    of Numerical Analysis 22(3), 329-343.
    """
    if method not in ("clip", "higham"):
        raise SpecificationError(f"Unknown repair method {method!r}.", hint="Choose 'clip' or 'higham'.")
    if floor < 0 or (method == "higham" and floor != 0):
        raise SpecificationError(
            f"floor must be >= 0, and 0 with method='higham'; got floor={floor!r}, method={method!r}.",
            hint="Use method='clip' with a small positive floor to get a positive definite matrix.",
        )
    labels = cov.index if isinstance(cov, pd.DataFrame) else None
    values = check_symmetric(cov, name="repair_psd's matrix", labels=labels)
    eigenvalues = np.linalg.eigvalsh(values) if values.size else np.zeros(0)
    if not values.size or eigenvalues[0] >= floor - tol * max(float(np.abs(eigenvalues).max()), 1e-300):
        return cov
    repaired = _clip(values, floor) if method == "clip" else _higham(values, tol=tol, max_iter=max_iter)
    warnings.warn(
        NonPSDCovarianceWarning(
            f"Covariance is not positive semi-definite: most negative eigenvalue {eigenvalues[0]:.6g} "
            f"(largest {eigenvalues[-1]:.6g}); replaced by a PSD matrix with method={method!r}."
        ),
        stacklevel=2,
    )
    if isinstance(cov, pd.DataFrame):
        return pd.DataFrame(repaired, index=cov.index.copy(), columns=cov.columns.copy())
    return repaired


def _clip(values: np.ndarray, floor: float) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh(values)
    repaired = (vectors * np.maximum(eigenvalues, floor)) @ vectors.T
    return (repaired + repaired.T) / 2.0


def _higham(values: np.ndarray, *, tol: float, max_iter: int) -> np.ndarray:
    variances = np.diag(values).copy()
    if (variances <= 0).any():
        raise SpecificationError(
            f"method='higham' needs positive variances; got {int((variances <= 0).sum())} <= 0 "
            f"(positions {np.flatnonzero(variances <= 0).tolist()}).",
            hint="Use method='clip', or drop the assets with zero variance.",
        )
    std = np.sqrt(variances)
    current = values / np.outer(std, std)
    correction = np.zeros_like(current)
    for _ in range(max_iter):
        shifted = current - correction
        projected = _clip(shifted, 0.0)
        correction = projected - shifted  # Dykstra's correction for the non-affine (PSD) set
        following = projected.copy()
        np.fill_diagonal(following, 1.0)
        change = float(np.linalg.norm(following - current)) / max(float(np.linalg.norm(current)), 1e-300)
        current = following
        if change < tol:
            break
    # The last projection is onto the unit diagonal and may leave eigenvalues of order -tol: one
    # final PSD projection and a congruent rescaling keep both properties exactly.
    psd = _clip(current, 0.0)
    scale = np.sqrt(np.clip(np.diag(psd), 1e-300, None))
    correlation = psd / np.outer(scale, scale)
    return correlation * np.outer(std, std)
