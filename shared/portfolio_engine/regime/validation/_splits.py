"""Time-ordered cross-validation splitters with purge and embargo (scikit-learn splitter API).

Both splitters yield positional indices, sorted, and accept ``split(X, y=None, groups=None)`` and
``get_n_splits``, so ``GridSearchCV(cv=...)``, ``cross_validate`` and ``CalibratedClassifierCV`` take
them. Rows are assumed to be in time order (oldest first).

References
----------
M. Lopez de Prado (2018), Advances in Financial Machine Learning, Wiley, ch. 7 (purging and embargo).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from portfolio_engine.exceptions import ConfigurationError, InsufficientDataError


def _non_negative_int(name: str, value: Any, *, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ConfigurationError(f"{name} must be an integer >= {least}; got {value!r}.", hint=f"Set {name}={least}.")
    return int(value)


class WalkForwardSplit:
    """Walk-forward splits: each test block follows its training window, blocks move forward in time.

    Layout, for ``n`` rows: the ``n_splits`` test blocks are consecutive, ``test_size`` rows each, and
    the last one ends at the last row. For the test block starting at row ``s``:

    * the ``purge`` rows ``[s - purge, s)`` are in neither set (their features or labels overlap the
      test block, e.g. a 21-day rolling window or a label ``horizon`` periods ahead);
    * ``mode="expanding"``: training is ``[0, s - purge)``; ``mode="rolling"``: the last ``train_size``
      rows before the purge, ``[s - purge - train_size, s - purge)``;
    * ``embargo``: the ``embargo`` rows right after every *earlier* test block, ``[e_j, e_j + embargo)``
      with ``e_j`` the (exclusive) end of block j, are removed from this training window. They were
      evaluated while their information overlapped block j; later windows do not train on them, so the
      pooled out-of-sample results of blocks j and j + 1 share no observation through training. Only
      training windows that reach past an earlier block's end are affected (from the third fold on, when
      ``embargo <= test_size``).

    Every training index is strictly smaller than every test index of its fold.

    Parameters
    ----------
    n_splits : int, default 5
    mode : {"expanding", "rolling"}, default "expanding"
    train_size : int, optional
        Rolling: the window length (default: the first fold's expanding window). Expanding: the fewest
        rows of the first training window, used to size the test blocks when ``test_size`` is None.
    test_size : int, optional
        Rows per test block; default ``(n - train_size - purge) // n_splits`` when ``train_size`` is set,
        else ``n // (n_splits + 1)`` (scikit-learn's ``TimeSeriesSplit`` layout).
    purge : int, default 0
    embargo : int, default 0

    Raises
    ------
    ConfigurationError
        At construction, for a parameter out of range.
    InsufficientDataError
        From ``split``, when the rows cannot hold the layout.
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        mode: str = "expanding",
        train_size: int | None = None,
        test_size: int | None = None,
        purge: int = 0,
        embargo: int = 0,
    ) -> None:
        self.n_splits = _non_negative_int("n_splits", n_splits, least=1)
        if mode not in ("expanding", "rolling"):
            raise ConfigurationError(f"mode must be 'expanding' or 'rolling'; got {mode!r}.", hint="Use 'expanding'.")
        self.mode = mode
        self.train_size = None if train_size is None else _non_negative_int("train_size", train_size, least=1)
        self.test_size = None if test_size is None else _non_negative_int("test_size", test_size, least=1)
        self.purge = _non_negative_int("purge", purge)
        self.embargo = _non_negative_int("embargo", embargo)

    def __repr__(self) -> str:
        return (
            f"WalkForwardSplit(n_splits={self.n_splits}, mode={self.mode!r}, train_size={self.train_size}, "
            f"test_size={self.test_size}, purge={self.purge}, embargo={self.embargo})"
        )

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds (``n_splits``)."""
        return self.n_splits

    def _layout(self, n: int) -> tuple[int, int]:
        """``(test_size, first_test_start)`` for ``n`` rows, checked."""
        if self.test_size is not None:
            test_size = self.test_size
        elif self.train_size is not None:
            test_size = (n - self.train_size - self.purge) // self.n_splits
        else:
            test_size = n // (self.n_splits + 1)
        first_test = n - self.n_splits * test_size
        needed_train = 1 if self.train_size is None else self.train_size
        if test_size < 1 or first_test - self.purge < needed_train:
            raise InsufficientDataError(
                f"{n} rows cannot hold {self.n_splits} test blocks of {max(test_size, 1)} rows after a purge of "
                f"{self.purge} and a first training window of {needed_train} row(s).",
                hint="Use fewer splits, smaller blocks, a shorter purge or train_size, or a longer history.",
            )
        return test_size, first_test

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` positional indices, one pair per fold, oldest test block first.

        Parameters
        ----------
        X : array-like of shape (n_observations, ...)
            Only its length is used.
        y, groups : ignored

        Yields
        ------
        train : ndarray of int
        test : ndarray of int
        """
        n = len(X)
        test_size, first_test = self._layout(n)
        rolling_size = self.train_size if self.train_size is not None else first_test - self.purge
        for k in range(self.n_splits):
            start = first_test + k * test_size
            train_end = start - self.purge
            train_start = max(0, train_end - rolling_size) if self.mode == "rolling" else 0
            keep = np.ones(train_end - train_start, dtype=bool)
            for j in range(k):
                end_j = first_test + (j + 1) * test_size
                lo, hi = max(end_j, train_start), min(end_j + self.embargo, train_end)
                if lo < hi:
                    keep[lo - train_start : hi - train_start] = False
            train = np.arange(train_start, train_end)[keep]
            if train.size == 0:
                raise InsufficientDataError(
                    f"Fold {k}'s rolling window [{train_start}, {train_end}) is entirely embargoed "
                    f"(embargo {self.embargo} after each of the {k} earlier blocks of {test_size} rows).",
                    hint="Use a longer train_size, a shorter embargo or larger test blocks.",
                )
            yield train, np.arange(start, start + test_size)


class PurgedKFold:
    """K contiguous folds (no shuffling) whose training sets are purged and embargoed around the test block.

    For the test block ``[s, e)``: training is every other row except the ``purge`` rows before it,
    ``[s - purge, s)``, and the ``embargo`` rows after it, ``[e, e + embargo)``. Training rows after the
    test block see the future of the test period: use it for estimates that do not depend on time order
    (hyperparameters of a model of stationary features), never to simulate a trading decision; use
    :class:`WalkForwardSplit` for that.

    Parameters
    ----------
    n_splits : int, default 5
    purge : int, default 0
    embargo : int, default 0

    References
    ----------
    M. Lopez de Prado (2018), Advances in Financial Machine Learning, Wiley, sections 7.4.1-7.4.3.
    """

    def __init__(self, n_splits: int = 5, *, purge: int = 0, embargo: int = 0) -> None:
        self.n_splits = _non_negative_int("n_splits", n_splits, least=2)
        self.purge = _non_negative_int("purge", purge)
        self.embargo = _non_negative_int("embargo", embargo)

    def __repr__(self) -> str:
        return f"PurgedKFold(n_splits={self.n_splits}, purge={self.purge}, embargo={self.embargo})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds (``n_splits``)."""
        return self.n_splits

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` positional indices; test blocks in time order, sizes differing by at most 1.

        Raises
        ------
        InsufficientDataError
            If a fold would have no test or no training row.
        """
        n = len(X)
        if n < self.n_splits:
            raise InsufficientDataError(f"{n} rows cannot make {self.n_splits} folds.", hint="Use fewer splits.")
        rows = np.arange(n)
        for test in np.array_split(rows, self.n_splits):
            start, end = int(test[0]), int(test[-1]) + 1
            train = rows[(rows < start - self.purge) | (rows >= end + self.embargo)]
            if train.size == 0:
                raise InsufficientDataError(
                    f"The fold [{start}, {end}) leaves no training row after a purge of {self.purge} and an "
                    f"embargo of {self.embargo}.",
                    hint="Use a shorter purge or embargo, or more rows.",
                )
            yield train, test
