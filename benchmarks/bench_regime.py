"""Regime detection: HMMRegimeDetector fit times on the bundled S&P 500 index.

Feature: the daily log return of ``^GSPC`` (one column, 8,312 days, 1990-2022), the feature the
S&P 500 regime tests use. Every fit uses the detector's defaults (10 restarts screened by 30 EM
iterations, the best 3 run to convergence at tol 1e-4, max 1,000 iterations) with ``random_state=0``.

Prints one row per configuration: 2, 3 and 4 states x covariance types full/diag/spherical/tied,
plus a Gaussian-mixture HMM (2 states x 2 components, full), with the fit time (median of 3 runs;
a single run for fits over 2 s), the time per restart (fit time / n_restarts: most restarts stop
after the 30 screening iterations), the EM iterations of the retained run and its log-likelihood. Last line, exactly:
``RESULT fit_seconds_2state_full=<s> fit_seconds_3state_full=<s> fit_seconds_4state_full=<s>
fit_seconds_gmm2x2_full=<s> per_restart_seconds_2state_full=<s> total_seconds=<s>``.
Timings are not asserted anywhere.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from portfolio_engine.adapters.market_data.bundled import load_index_bars
from portfolio_engine.regime import HMMRegimeDetector

REPEATS = 3
SLOW_SECONDS = 2.0  # a fit slower than this is timed once
CONFIGS: list[tuple[int, str, int]] = [
    *[(k, cov, 1) for k in (2, 3, 4) for cov in ("full", "diag", "spherical", "tied")],
    (2, "full", 2),
]


def features() -> pd.DataFrame:
    close = load_index_bars().set_index("date")["adj_close"]
    return np.log(close).diff().dropna().to_frame("logret")


def time_fit(X: pd.DataFrame, n_states: int, covariance_type: str, n_mix: int) -> tuple[float, HMMRegimeDetector]:
    times: list[float] = []
    model = HMMRegimeDetector(n_states=n_states, covariance_type=covariance_type, n_mix=n_mix, random_state=0)
    while len(times) < REPEATS:
        t0 = time.perf_counter()
        model.fit(X)
        times.append(time.perf_counter() - t0)
        if times[0] > SLOW_SECONDS:
            break
    return statistics.median(times), model


def main() -> None:
    start = time.perf_counter()
    X = features()
    n_restarts = HMMRegimeDetector().n_restarts
    print(
        f"HMMRegimeDetector fits on ^GSPC daily log returns: n_obs={len(X):,}, n_features={X.shape[1]}, "
        f"n_restarts={n_restarts} (defaults)"
    )
    print(
        f"{'states':>6} {'covariance':<10} {'n_mix':>5} {'fit s':>8} {'per restart s':>14} {'EM iter':>8} "
        f"{'log-likelihood':>15}"
    )
    results: dict[str, float] = {}
    for n_states, covariance_type, n_mix in CONFIGS:
        seconds, model = time_fit(X, n_states, covariance_type, n_mix)
        print(
            f"{n_states:>6} {covariance_type:<10} {n_mix:>5} {seconds:>8.3f} {seconds / n_restarts:>14.4f} "
            f"{model.n_iter_:>8} {model.log_likelihood_:>15.2f}"
        )
        results[f"{n_states}_{covariance_type}_{n_mix}"] = seconds
    total = time.perf_counter() - start
    print(
        f"RESULT fit_seconds_2state_full={results['2_full_1']:.3f} fit_seconds_3state_full={results['3_full_1']:.3f} "
        f"fit_seconds_4state_full={results['4_full_1']:.3f} fit_seconds_gmm2x2_full={results['2_full_2']:.3f} "
        f"per_restart_seconds_2state_full={results['2_full_1'] / n_restarts:.4f} total_seconds={total:.1f}"
    )


if __name__ == "__main__":
    main()
