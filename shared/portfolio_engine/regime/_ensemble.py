"""A calibrated soft-voting ensemble that forecasts the regime ``horizon`` periods ahead.

Members: a random forest, scikit-learn's ``HistGradientBoostingClassifier`` and xgboost's
``XGBClassifier``. Histogram gradient boosting rather than ``GradientBoostingClassifier``: it is
10-100x faster on a few thousand daily rows (each member is fitted once per calibration fold, and
a search multiplies that again), grows one tree per class per iteration the same way, and has L2
regularisation and a minimum leaf size that keep its probabilities smooth. Its built-in early stopping
draws a random validation split, which would let future rows pick the model for past ones, so it is
off. The two boosters still differ: different split finding, regularisation and randomisation.

Each member is calibrated with ``CalibratedClassifierCV`` on walk-forward folds whose test blocks
split the second half of the rows: every calibrator is fitted on rows after the ones its model was
trained on, and the member's probabilities average the fold pairs (``ensemble=True``;
``cross_val_predict`` needs folds that cover every row, which time-ordered folds do not). Models are
trained on at least the first half of the rows: with scikit-learn's ``TimeSeriesSplit`` layout the
first fold's model sees a quarter of them and drags the average down (on a synthetic 1,000-row
problem the calibrated log-loss was 0.33 with ``TimeSeriesSplit(3)`` and 0.24 with this layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from portfolio_engine.exceptions import (
    ConfigurationError,
    InsufficientDataError,
    NonFiniteFeaturesError,
    SchemaError,
)
from portfolio_engine.regime.labels import align_to_next_period
from portfolio_engine.regime.validation._splits import WalkForwardSplit

MEMBERS = ("rf", "gb", "xgb")
CALIBRATION_METHODS = ("sigmoid", "isotonic", "temperature")
#: Aligned rows needed per calibration fold (train and calibration sets both need a few of each regime).
MIN_ROWS_PER_FOLD = 10


class _AllClassesClassifier(ClassifierMixin, BaseEstimator):
    """Wrap a classifier so it always answers for ``n_classes`` classes ``0..n_classes-1``.

    A time-ordered training fold may miss a regime (a rare turbulent state) or hold only one:
    xgboost refuses labels that are not ``0..m-1``, boosters refuse a single class, and the
    calibrator would misplace columns. The wrapper re-encodes the labels present, gives unseen
    classes probability 0, and predicts a constant when one class is present.

    Parameters
    ----------
    estimator : classifier
    n_classes : int
    """

    def __init__(self, estimator: Any = None, n_classes: int = 2) -> None:
        self.estimator = estimator
        self.n_classes = n_classes

    def fit(self, X: Any, y: Any) -> _AllClassesClassifier:
        y = np.asarray(y, dtype=np.int64)
        self.classes_ = np.arange(self.n_classes)
        self.present_ = np.unique(y)
        if len(self.present_) > 1:
            self.estimator_ = clone(self.estimator).fit(X, np.searchsorted(self.present_, y))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "present_")
        proba = np.zeros((len(X), self.n_classes))
        if len(self.present_) == 1:
            proba[:, self.present_[0]] = 1.0
        else:
            proba[:, self.present_] = self.estimator_.predict_proba(X)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


class RegimeEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated RF + gradient boosting + XGBoost, soft voting, forecasting ``y[t + horizon]`` from ``X[t]``.

    ``fit(X, y)`` takes the regime label of each row (``y[t]`` is the regime at t, e.g. HMM or volatility
    labels) and learns ``P(y[t + horizon] | X[t])``: it pairs each row with the label ``horizon`` rows later
    and drops the last ``horizon`` rows (and rows whose future label is missing) itself. So a Pipeline or
    a search can pass features and labels as they are. ``predict_proba(X)`` answers for every row of X.

    Parameters
    ----------
    horizon : int, default 1
        Periods ahead; 0 classifies the current regime.
    members : sequence of {"rf", "gb", "xgb"}, default ("rf", "gb", "xgb")
    weights : sequence of float, optional
        Soft-voting weight of each member (same order as ``members``); equal by default.
    calibration : {"sigmoid", "isotonic", "temperature"} or None, default "sigmoid"
        ``CalibratedClassifierCV`` method; None keeps the members' raw probabilities.
    calibration_splits : int, default 3
        Walk-forward calibration folds; their test blocks split the second half of the rows.
    rf_n_estimators, rf_max_depth, rf_min_samples_leaf, rf_max_features
        ``RandomForestClassifier``'s ``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``max_features``.
    gb_max_iter, gb_learning_rate, gb_max_depth, gb_min_samples_leaf, gb_l2_regularization
        ``HistGradientBoostingClassifier``'s parameters of the same names.
    xgb_n_estimators, xgb_learning_rate, xgb_max_depth, xgb_subsample, xgb_colsample_bytree, xgb_reg_lambda,
    xgb_min_child_weight
        ``XGBClassifier``'s parameters of the same names.
    n_jobs : int, default 1
        Threads per member, also the cap on OpenMP threads while fitting and predicting (the histogram
        booster takes every core otherwise, and oversubscribed OpenMP threads spin: 5x slower here on a
        busy 2-core machine). Calibration folds run one after the other; -1 or None: no cap.
    random_state : int, RandomState or None
        Seeds one integer per member, drawn in the order rf, gb, xgb.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Regime labels seen in the aligned targets, sorted.
    estimators_ : dict of str to fitted classifier
        Each member (a ``CalibratedClassifierCV`` unless ``calibration`` is None), on encoded labels.
    weights_ : ndarray of shape (n_members,)
        Normalised voting weights.
    n_features_in_, feature_names_in_
        As in scikit-learn.

    References
    ----------
    L. Breiman (2001), Random forests, Machine Learning 45(1).
    J. H. Friedman (2001), Greedy function approximation: a gradient boosting machine, Annals of Statistics 29(5).
    T. Chen, C. Guestrin (2016), XGBoost: a scalable tree boosting system, KDD '16.
    J. Platt (1999), Probabilistic outputs for support vector machines; B. Zadrozny, C. Elkan (2002),
    Transforming classifier scores into accurate multiclass probability estimates, KDD '02.
    """

    def __init__(
        self,
        *,
        horizon: int = 1,
        members: Sequence[str] = MEMBERS,
        weights: Sequence[float] | None = None,
        calibration: str | None = "sigmoid",
        calibration_splits: int = 3,
        rf_n_estimators: int = 200,
        rf_max_depth: int | None = None,
        rf_min_samples_leaf: int = 5,
        rf_max_features: str | float | None = "sqrt",
        gb_max_iter: int = 100,
        gb_learning_rate: float = 0.05,
        gb_max_depth: int | None = 3,
        gb_min_samples_leaf: int = 20,
        gb_l2_regularization: float = 1.0,
        xgb_n_estimators: int = 200,
        xgb_learning_rate: float = 0.05,
        xgb_max_depth: int = 3,
        xgb_subsample: float = 0.8,
        xgb_colsample_bytree: float = 0.8,
        xgb_reg_lambda: float = 1.0,
        xgb_min_child_weight: float = 1.0,
        n_jobs: int = 1,
        random_state: Any = None,
    ) -> None:
        self.horizon = horizon
        self.members = members
        self.weights = weights
        self.calibration = calibration
        self.calibration_splits = calibration_splits
        self.rf_n_estimators = rf_n_estimators
        self.rf_max_depth = rf_max_depth
        self.rf_min_samples_leaf = rf_min_samples_leaf
        self.rf_max_features = rf_max_features
        self.gb_max_iter = gb_max_iter
        self.gb_learning_rate = gb_learning_rate
        self.gb_max_depth = gb_max_depth
        self.gb_min_samples_leaf = gb_min_samples_leaf
        self.gb_l2_regularization = gb_l2_regularization
        self.xgb_n_estimators = xgb_n_estimators
        self.xgb_learning_rate = xgb_learning_rate
        self.xgb_max_depth = xgb_max_depth
        self.xgb_subsample = xgb_subsample
        self.xgb_colsample_bytree = xgb_colsample_bytree
        self.xgb_reg_lambda = xgb_reg_lambda
        self.xgb_min_child_weight = xgb_min_child_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------------------------------ building
    def _check_params(self) -> tuple[list[str], np.ndarray]:
        members = list(self.members)
        unknown = [m for m in members if m not in MEMBERS]
        if not members or unknown or len(set(members)) != len(members):
            raise ConfigurationError(
                f"members must be distinct names among {MEMBERS}; got {self.members!r}.",
                hint="E.g. members=('rf', 'xgb') to drop the histogram booster.",
            )
        weights = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, dtype="float64")
        if (
            weights.shape != (len(members),)
            or np.any(weights < 0)
            or not np.isfinite(weights).all()
            or not weights.sum()
        ):
            raise ConfigurationError(
                f"weights must be {len(members)} non-negative numbers, not all zero; got {self.weights!r}.",
                hint="One weight per member, in the order of `members`.",
            )
        if self.calibration is not None and self.calibration not in CALIBRATION_METHODS:
            raise ConfigurationError(
                f"calibration must be one of {CALIBRATION_METHODS} or None; got {self.calibration!r}.",
                hint="'sigmoid' suits small samples; 'isotonic' needs thousands of rows.",
            )
        if isinstance(self.calibration_splits, bool) or not isinstance(self.calibration_splits, int | np.integer):
            raise ConfigurationError(
                f"calibration_splits must be an integer >= 2; got {self.calibration_splits!r}.", hint="Use 3."
            )
        if self.calibration_splits < 2:
            raise ConfigurationError(
                f"calibration_splits must be an integer >= 2; got {self.calibration_splits!r}.", hint="Use 3."
            )
        return members, weights / weights.sum()

    def _member(self, name: str, seed: int) -> Any:
        if name == "rf":
            return RandomForestClassifier(
                n_estimators=self.rf_n_estimators,
                max_depth=self.rf_max_depth,
                min_samples_leaf=self.rf_min_samples_leaf,
                max_features=self.rf_max_features,
                n_jobs=self.n_jobs,
                random_state=seed,
            )
        if name == "gb":
            return HistGradientBoostingClassifier(
                max_iter=self.gb_max_iter,
                learning_rate=self.gb_learning_rate,
                max_depth=self.gb_max_depth,
                min_samples_leaf=self.gb_min_samples_leaf,
                l2_regularization=self.gb_l2_regularization,
                early_stopping=False,
                random_state=seed,
            )
        return XGBClassifier(
            n_estimators=self.xgb_n_estimators,
            learning_rate=self.xgb_learning_rate,
            max_depth=self.xgb_max_depth,
            subsample=self.xgb_subsample,
            colsample_bytree=self.xgb_colsample_bytree,
            reg_lambda=self.xgb_reg_lambda,
            min_child_weight=self.xgb_min_child_weight,
            tree_method="hist",
            n_jobs=self.n_jobs,
            random_state=seed,
            verbosity=0,
        )

    def _check_X(self, X: Any, *, reset: bool) -> np.ndarray:
        values = np.asarray(X, dtype="float64") if not hasattr(X, "to_numpy") else X.to_numpy(dtype="float64")
        if values.ndim != 2:
            raise SchemaError(
                f"X must be 2-D (n_observations, n_features); got shape {values.shape}.",
                hint="Pass a DataFrame of features, one row per period.",
            )
        if not np.isfinite(values).all():
            rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
            raise NonFiniteFeaturesError(f"X holds NaN/inf in {len(rows)} row(s) (first at position {rows[0]}).")
        validated: np.ndarray = validate_data(self, X, reset=reset, dtype="float64")
        return validated

    # ------------------------------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any) -> RegimeEnsembleClassifier:
        """Learn ``P(y[t + horizon] | X[t])``.

        Parameters
        ----------
        X : DataFrame or array of shape (n_observations, n_features)
            Features known at each t, oldest first.
        y : Series or array of shape (n_observations,)
            Regime label at each t (integers; NA rows are dropped after alignment).

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            Bad parameters.
        SchemaError
            If X is not 2-D.
        NonFiniteFeaturesError
            If X holds NaN or inf.
        InsufficientDataError
            Fewer than two regimes in the targets, or too few rows for the calibration folds.
        """
        members, weights = self._check_params()
        values = self._check_X(X, reset=True)
        X_al, y_al = align_to_next_period(values, y, self.horizon)
        self.classes_, y_enc = np.unique(y_al, return_inverse=True)
        if len(self.classes_) < 2:
            raise InsufficientDataError(
                f"The targets hold {len(self.classes_)} regime(s) {self.classes_.tolist()}; a classifier needs two.",
                hint="Use a longer training window, or labels with more than one regime in it.",
            )
        needed = 2 * MIN_ROWS_PER_FOLD * self.calibration_splits
        if len(y_al) < needed:
            raise InsufficientDataError(
                f"{len(y_al)} aligned rows; {self.calibration_splits} calibration splits need at least {needed}.",
                hint="Use a longer window or fewer calibration_splits.",
            )
        rng = check_random_state(self.random_state)
        seeds = dict(zip(MEMBERS, rng.randint(np.iinfo(np.int32).max, size=len(MEMBERS)).tolist(), strict=True))
        n_classes = len(self.classes_)
        self.estimators_: dict[str, Any] = {}
        with self._thread_cap():
            self._fit_members(members, seeds, n_classes, X_al, y_enc)
        self.weights_ = weights
        return self

    def _thread_cap(self) -> Any:
        limit = self.n_jobs if isinstance(self.n_jobs, int | np.integer) and self.n_jobs > 0 else None
        return threadpool_limits(limits=limit, user_api="openmp")

    def _fit_members(
        self, members: list[str], seeds: dict[str, int], n_classes: int, X_al: np.ndarray, y_enc: np.ndarray
    ) -> None:
        for name in members:
            base = _AllClassesClassifier(self._member(name, seeds[name]), n_classes=n_classes)
            if self.calibration is None:
                self.estimators_[name] = base.fit(X_al, y_enc)
                continue
            # Explicit (train, test) pairs: an int or splitter would make CalibratedClassifierCV demand
            # n_splits examples of every class, which a rare regime may not have.
            folds = WalkForwardSplit(n_splits=self.calibration_splits, train_size=len(y_enc) // 2)
            splits = list(folds.split(X_al))
            calibrated = CalibratedClassifierCV(base, method=self.calibration, cv=splits, ensemble=True)
            self.estimators_[name] = calibrated.fit(X_al, y_enc)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Weighted mean of the members' calibrated probabilities of the regime ``horizon`` periods ahead.

        Parameters
        ----------
        X : DataFrame or array of shape (n_observations, n_features)

        Returns
        -------
        ndarray of shape (n_observations, n_classes)
            Row t: probabilities of ``classes_`` at t + horizon; rows sum to 1.
        """
        check_is_fitted(self, "estimators_")
        values = self._check_X(X, reset=False)
        proba = np.zeros((len(values), len(self.classes_)))
        with self._thread_cap():
            for weight, estimator in zip(self.weights_, self.estimators_.values(), strict=True):
                proba += weight * estimator.predict_proba(values)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable regime ``horizon`` periods ahead, shape (n_observations,)."""
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of ``predict(X)[t]`` against ``y[t + horizon]`` (the pairing ``fit`` uses).

        Parameters
        ----------
        X : DataFrame or array of shape (n_observations, n_features)
        y : Series or array of shape (n_observations,)
            Regime label at each t.
        sample_weight : ignored
        """
        X_al, y_al = align_to_next_period(X, y, self.horizon)
        return float(np.mean(self.predict(X_al) == y_al))
