"""What code a run executed: the versions of the packages that compute, and a version of the engine's own code.

A run records them so that ``spe replay`` can say whether a difference comes from the data or the code.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "code_version", "package_versions", "source_hash"]

#: Distributions whose versions can change a run's numbers.
PACKAGES = (
    "stochastic-portfolio-engine",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "hmmlearn",
    "xgboost-cpu",
    "cvxpy",
    "clarabel",
    "pyarrow",
)


@cache
def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None when one is not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cache
def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of the engine's Python sources, by relative path: changes with any edit."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_version(deployed: str | None = None) -> str:
    """``deployed`` (a git commit set at deploy time, ``SPE_CODE_VERSION``) or ``src-<hash of the sources>``."""
    return deployed or f"src-{source_hash()}"
