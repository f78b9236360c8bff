"""Model artefacts in the lake (a folder or S3), the champion-challenger registry in the store of record.

Artefacts, per model kind and name, are immutable files::

    models/<kind>/<name>/<version>/<file>        model.joblib, metadata.json, validation.json, ...

The champion pointer and every decision are events of the model's stream in the store (``model/<kind>/<name>``:
``ChallengerRegistered``, ``ChampionPromoted``, ``ChampionPinned``, ``ChampionRolledBack``), read back through
the store's ``champion`` view; appending them is the commit's job (``pipeline.champion``), one conditional
append decided on the champion it read. Artefacts are written before any event names them, so a reader never
finds a champion whose files are missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from portfolio_engine.exceptions import LakeError, ModelNotFoundError
from portfolio_engine.ports import Lake, Store
from portfolio_engine.records.events import model_stream
from portfolio_engine.records.views import ChampionView


class StoreModelRegistry:
    """The :class:`~portfolio_engine.ports.ModelRegistry` port: artefacts in the lake, the champion in the store."""

    def __init__(self, lake: Lake, store: Store, *, kind: str = "regime") -> None:
        self.lake = lake
        self.store = store
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
        return dict(json.loads(self.read_file(name, version, "metadata.json")))

    def stream(self, name: str) -> str:
        """The model's stream in the store."""
        return model_stream(self.kind, name)

    def champion_view(self, name: str) -> ChampionView | None:
        """The champion, whether it is pinned, and the stream version it was read at."""
        raw = self.store.view("champion", f"{self.kind}/{name}")
        return None if raw is None else ChampionView.model_validate(raw)

    def champion(self, name: str) -> str | None:
        view = self.champion_view(name)
        return None if view is None else view.champion

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every training decision recorded for ``name``, oldest first (``ChallengerRegistered`` events)."""
        return [e.data for e in self.store.events(self.stream(name)) if e.type == "ChallengerRegistered"]
