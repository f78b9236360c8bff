"""Model artefacts and the champion-challenger registry, stored in the lake (a folder or S3).

Layout, per model kind and name::

    models/<kind>/<name>/<version>/<file>        model.joblib, metadata.json, validation.json, ...
    models/<kind>/<name>/registry.json           {"champion": <version>, "history": [...]}

Artefacts are written before the registry names them, so a reader never finds a champion whose
files are missing. The registry document is rewritten whole: one writer per model name at a time
(the retrain state machine runs one execution per name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portfolio_engine.exceptions import LakeError, ModelNotFoundError
from portfolio_engine.ports import Lake


class LakeModelRegistry:
    """The :class:`~portfolio_engine.ports.ModelRegistry` port over a lake."""

    def __init__(self, lake: Lake, *, kind: str = "regime") -> None:
        self.lake = lake
        self.kind = kind

    def _prefix(self, name: str) -> str:
        return f"models/{self.kind}/{name}"

    def save(self, name: str, version: str, files: Mapping[str, bytes], metadata: dict[str, Any]) -> str:
        """Store a version's files and its metadata; return the version's URI.

        Raises
        ------
        LakeError
            If the version is already stored (versions are immutable).
        """
        base = f"{self._prefix(name)}/{version}"
        if self.lake.exists(f"{base}/metadata.json"):
            raise LakeError(
                f"{self.kind} model {name!r} version {version!r} is already stored; versions are never overwritten.",
                hint="Train again: a new version id is made from the time of training.",
            )
        for filename, payload in files.items():
            if filename != "metadata.json":
                self.lake.put_bytes(f"{base}/{filename}", payload)
        self.lake.put_json(f"{base}/metadata.json", metadata)
        return self.lake.key_uri(base)

    def read_file(self, name: str, version: str, filename: str) -> bytes:
        """One file of a stored version.

        Raises
        ------
        ModelNotFoundError
            If the version (or the file) is not stored.
        """
        key = f"{self._prefix(name)}/{version}/{filename}"
        if not self.lake.exists(key):
            raise ModelNotFoundError(f"No {filename} for {self.kind} model {name!r} version {version!r}.")
        return self.lake.get_bytes(key)

    def metadata(self, name: str, version: str) -> dict[str, Any]:
        import json

        return dict(json.loads(self.read_file(name, version, "metadata.json")))

    def _registry(self, name: str) -> dict[str, Any]:
        key = f"{self._prefix(name)}/registry.json"
        try:
            return dict(self.lake.get_json(key)) if self.lake.exists(key) else {"champion": None, "history": []}
        except (LakeError, ValueError) as exc:
            raise LakeError(
                f"The registry of {self.kind} model {name!r} cannot be read: {exc}",
                hint=f"Inspect {self.lake.key_uri(key)}; delete it to start the registry afresh.",
            ) from exc

    def champion(self, name: str) -> str | None:
        """The champion's version, or None before the first promotion."""
        champion = self._registry(name).get("champion")
        return str(champion) if champion else None

    def record(self, name: str, entry: dict[str, Any], *, champion: str | None) -> None:
        """Append a decision to the history and set the champion (None keeps the current one)."""
        registry = self._registry(name)
        registry["history"] = [*registry.get("history", []), entry]
        if champion is not None:
            registry["champion"] = champion
        self.lake.put_json(f"{self._prefix(name)}/registry.json", registry)

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every training decision recorded for ``name``, oldest first."""
        return list(self._registry(name).get("history", []))
