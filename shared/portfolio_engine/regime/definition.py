"""What a stored regime model is: its definition (:class:`RegimeModelSpec`) and its training frame.

A spec names the series the model watches (one symbol of a feature set, some of its columns) and the
estimator's settings. Its ``version`` is a hash of both and of ``REGIME_CODE_VERSION``, so a registry
never mixes models that read different inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portfolio_engine.exceptions import ConfigurationError, InsufficientDataError, NonFiniteFeaturesError, SchemaError

if TYPE_CHECKING:  # the contracts import this module; a light handler must not import pandas
    import pandas as pd

#: Bump when a change to the regime code changes what a fitted model means.
REGIME_CODE_VERSION: int = 1

CovarianceType = Literal["full", "diag", "spherical", "tied"]


class RegimeModelSpec(BaseModel):
    """A regime model's definition: inputs, estimator and validation settings.

    Parameters
    ----------
    name : str
        Registry name; one champion per name.
    symbol : str
        The series the model watches (a symbol of the feature set; the market index by default).
    features : tuple of str
        Feature columns fed to the HMM (``logret_1d``, ``vol_21d`` ... from ``FeatureSpec``).
    model : {"hmm", "hybrid"}
        A hidden Markov model alone, or the HMM combined with the ML ensemble.
    n_states : int or {"bic", "aic"}
        Number of regimes, or the criterion that picks it among ``candidate_states``.
    holdout_days : int
        The most recent observations kept out of the challenger's evaluation fit; challenger and
        champion are both scored on them (mean one-step predictive log-likelihood).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="market", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    symbol: str = "^GSPC"
    features: tuple[str, ...] = ("logret_1d", "vol_21d")
    model: Literal["hmm", "hybrid"] = "hmm"
    n_states: int | Literal["bic", "aic"] = 2
    candidate_states: tuple[int, ...] = (2, 3, 4)
    covariance_type: CovarianceType = "full"
    n_mix: int = Field(default=1, ge=1)
    n_restarts: int = Field(default=5, ge=1)
    n_iter: int = Field(default=1000, ge=1)
    tol: float = Field(default=1e-4, gt=0)
    scale: float = Field(default=100.0, gt=0)
    random_state: int = 0
    ensemble_features: tuple[str, ...] | None = Field(
        default=None, description="Columns the hybrid's ensemble sees; None: the HMM's features."
    )
    combine: Literal["weighted", "stacked"] = "weighted"
    hmm_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    label_source: Literal["hmm", "volatility"] = "hmm"
    holdout_days: int = Field(default=252, ge=21)
    min_train_days: int = Field(default=504, ge=50)

    @field_validator("n_states")
    @classmethod
    def _states(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 8:
            raise ValueError(f"n_states must be between 1 and 8, got {value}")
        return value

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one feature column is needed")
        return value

    @property
    def version(self) -> str:
        """First 12 hex digits of sha256 over the definition and ``REGIME_CODE_VERSION``."""
        payload = {"code": REGIME_CODE_VERSION, "spec": self.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def columns(self) -> list[str]:
        """Every feature column the model reads (the HMM's, then the ensemble's)."""
        extra = [c for c in (self.ensemble_features or ()) if c not in self.features]
        return [*self.features, *extra]

    @classmethod
    def from_hyperparameters(cls, values: dict[str, Any]) -> RegimeModelSpec:
        """Build a spec from SageMaker hyperparameters (every value a string, JSON-encoded or plain)."""
        decoded: dict[str, Any] = {}
        for key, raw in values.items():
            if key.startswith("sagemaker_"):  # the SDK's own (program, submit directory, region, ...)
                continue
            if isinstance(raw, str):
                try:
                    decoded[key] = json.loads(raw)
                except json.JSONDecodeError:
                    decoded[key] = raw
            else:
                decoded[key] = raw
        try:
            return cls.model_validate(decoded)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(
                f"Invalid regime model hyperparameters: {problems}.",
                hint="Use RegimeModelSpec's field names and values (see `spe regime fit --help`).",
            ) from exc

    def to_hyperparameters(self) -> dict[str, str]:
        """The spec as SageMaker hyperparameters: a flat map of JSON-encoded strings."""
        return {key: json.dumps(value) for key, value in self.model_dump(mode="json").items()}

    def build_estimator(self) -> Any:
        """A fresh, unfitted estimator for this spec (HMM, or hybrid HMM + ensemble)."""
        from portfolio_engine.regime._hmm import HMMRegimeDetector

        hmm = HMMRegimeDetector(
            n_states=self.n_states,
            candidate_states=self.candidate_states,
            covariance_type=self.covariance_type,
            n_mix=self.n_mix,
            n_restarts=self.n_restarts,
            n_iter=self.n_iter,
            tol=self.tol,
            scale=self.scale,
            random_state=self.random_state,
        )
        if self.model == "hmm":
            return hmm
        from portfolio_engine.regime._ensemble import RegimeEnsembleClassifier
        from portfolio_engine.regime._hybrid import HybridRegimeModel

        return HybridRegimeModel(
            hmm=hmm,
            ensemble=RegimeEnsembleClassifier(random_state=self.random_state),
            hmm_columns=list(self.features),
            ensemble_columns=list(self.ensemble_features) if self.ensemble_features else None,
            label_source=self.label_source,
            combine=self.combine,
            hmm_weight=self.hmm_weight,
        )


def training_frame(features: pd.DataFrame, spec: RegimeModelSpec, *, min_obs: int | None = None) -> pd.DataFrame:
    """The model's input: ``spec.symbol``'s rows of a long feature table, its columns, by date.

    Rolling features start with a warm-up of NaN rows; those are dropped. A gap after the warm-up
    is an error: filling it would invent observations.

    Parameters
    ----------
    features : DataFrame
        Long feature table with ``date``, ``symbol`` and the spec's columns.
    spec : RegimeModelSpec
    min_obs : int, optional
        Fewest rows accepted; default ``spec.min_train_days`` (detection with a trained model needs 1).

    Returns
    -------
    DataFrame of shape (n_observations, n_columns)
        Indexed by date, ascending.

    Raises
    ------
    SchemaError
        If the symbol or a column is missing.
    NonFiniteFeaturesError
        If a value after the warm-up is NaN or infinite.
    InsufficientDataError
        If fewer than ``spec.min_train_days`` observations remain.
    """
    import numpy as np
    import pandas as pd

    missing = [c for c in spec.columns if c not in features.columns]
    if missing:
        available = sorted(c for c in features.columns if c not in ("date", "symbol"))
        raise SchemaError(
            f"The feature set has no column(s) {missing}.", hint=f"Pick columns of the feature set: {available}"
        )
    rows = features.loc[features["symbol"].astype(str) == spec.symbol, ["date", *spec.columns]]
    if rows.empty:
        raise SchemaError(
            f"The feature set has no rows for {spec.symbol!r}.",
            hint="Include the symbol in the run (it is the index by default: --benchmarks ^GSPC).",
        )
    frame = rows.set_index("date").sort_index().astype("float64")
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    finite = np.isfinite(frame.to_numpy()).all(axis=1)
    first = int(np.argmax(finite)) if finite.any() else len(frame)
    frame = frame.iloc[first:]
    bad = ~np.isfinite(frame.to_numpy())
    if bad.any():
        rows_bad = frame.index[bad.any(axis=1)]
        columns_bad = [c for c, flag in zip(frame.columns, bad.any(axis=0), strict=True) if flag]
        raise NonFiniteFeaturesError(
            f"{len(rows_bad)} row(s) of {spec.symbol} have NaN/inf in {columns_bad} after the warm-up "
            f"(first {rows_bad[0].date()}).",
        )
    needed = spec.min_train_days if min_obs is None else min_obs
    if len(frame) < needed:
        raise InsufficientDataError(
            f"{len(frame)} usable observations of {spec.symbol}; the model needs at least {needed}.",
        )
    return frame


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of a training frame's dates, columns and values: the 'training data hash' of an artefact."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps(list(frame.columns)).encode())
    digest.update(pd.DatetimeIndex(frame.index).asi8.tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype="float64")).tobytes())
    return digest.hexdigest()
