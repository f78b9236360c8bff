"""Exact UCITS 5/10/40 by branch and bound over convex relaxations.

The rule "each position at most ``big`` (10 %), and the positions above ``small`` (5 %) together at most
``total`` (40 %)" is not convex. With a binary ``z_i`` per asset (1: the position may exceed ``small`` and is
counted) it is the mixed-integer set, in disaggregated (convex-hull) form::

    |w_i| <= s_i + c_i,   0 <= s_i <= small (1 - z_i),   0 <= c_i <= big z_i,   sum(c) <= total.

It is exact: with ``z_i = 0`` the position is at most ``small`` and counts nothing; with ``z_i = 1`` it is at
most ``big`` and its whole size ``c_i >= |w_i|`` counts. Its continuous relaxation is the convex hull of each
asset's two cases, tighter than the big-M form. No installed solver takes a mixed-integer QP/SOCP through
cvxpy (HiGHS and SciPy do MILP only), so the binaries are relaxed to ``[z_lo, z_hi]`` and branched on; every
node is a re-solve of one problem (a DPP cvxpy problem, or the direct QP with new bounds).

Guarantee: the relaxation of a node bounds every integer solution below it from below; a node whose weights
already satisfy the rule is a feasible point worth the node's bound; a node is pruned only when its bound
cannot beat the incumbent by more than ``gap_tolerance``. The search is therefore exact to the solver's
tolerance and ``gap_tolerance``; it raises :class:`SolverFailedError` only if ``max_nodes`` pass without a
feasible portfolio, and otherwise reports an unfinished search in its note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cvxpy as cp
import numpy as np

from portfolio_engine.exceptions import SolverFailedError
from portfolio_engine.optimization._cvx_constraints import Branching
from portfolio_engine.optimization._resolved import ucits_satisfied
from portfolio_engine.optimization._solvers import SolveOutcome

__all__ = ["Node", "SearchResult", "branch_and_bound", "search_binaries", "ucits_satisfied"]


@dataclass(frozen=True)
class Node:
    """One relaxation solved: ``status`` (``optimal``/``infeasible``/``unbounded``), its value and solution."""

    status: str
    objective: float | None = None
    weights: np.ndarray | None = None
    z: np.ndarray | None = None
    iterations: int = 0
    payload: Any = None


@dataclass(frozen=True)
class SearchResult:
    """The best node (None if none is feasible), the root node, and how the search went."""

    best: Node | None
    root: Node
    nodes: int
    iterations: int
    note: str


def search_binaries(
    solve_node: Callable[[np.ndarray, np.ndarray], Node],
    n: int,
    limits: tuple[float, float, float],
    *,
    max_nodes: int = 5_000,
    gap_tolerance: float = 1e-9,
) -> SearchResult:
    """Minimise over binary ``z`` by depth-first branch and bound on the relaxations ``solve_node(z_lo, z_hi)``.

    Parameters
    ----------
    solve_node : callable
        Solves the relaxation with ``z_lo <= z <= z_hi`` (arrays of shape (n,)), a minimisation.
    n : int
        Number of binaries (assets).
    limits : (small, big, total)
    max_nodes : int, default 5000
    gap_tolerance : float, default 1e-9
        Relative gap under which a node cannot improve on the incumbent.

    Returns
    -------
    SearchResult

    Raises
    ------
    SolverFailedError
        ``max_nodes`` reached without a feasible portfolio.
    """
    stack: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(n), np.ones(n))]
    best: Node | None = None
    root: Node | None = None
    nodes = iterations = 0
    small = limits[0]
    while stack and nodes < max_nodes:
        z_lo, z_hi = stack.pop()
        node = solve_node(z_lo, z_hi)
        nodes += 1
        iterations += node.iterations
        root = root or node
        if node.status == "unbounded" and nodes == 1:
            break
        if node.status != "optimal" or node.objective is None or node.weights is None or node.z is None:
            continue
        incumbent = best.objective if best is not None and best.objective is not None else np.inf
        if node.objective >= incumbent - gap_tolerance * (1.0 + abs(incumbent)):
            continue  # the relaxation cannot beat the incumbent
        w, z = node.weights, node.z
        if ucits_satisfied(w, limits):
            best = node
            continue
        free = (z_lo < 0.5) & (z_hi > 0.5)
        # Branch on a position above `small` whose binary is not fixed: the rule fails through one of them.
        candidates = np.flatnonzero((np.abs(w) > small + 1e-9) & free)
        if candidates.size == 0:
            candidates = np.flatnonzero(free)
        if candidates.size == 0:
            continue
        score = np.minimum(z[candidates], 1.0 - z[candidates]) + 1e-3 * np.abs(w[candidates])
        j = int(candidates[np.argmax(score)])
        down_hi, up_lo = z_hi.copy(), z_lo.copy()
        down_hi[j], up_lo[j] = 0.0, 1.0
        children = [(z_lo, down_hi), (up_lo, z_hi)]
        if z[j] >= 0.5:  # depth first: the side the relaxation leans to is pushed last, explored first
            children.reverse()
        stack.extend(children)
    assert root is not None
    note = f"branch and bound: {nodes} nodes"
    if stack:
        note += f", node limit {max_nodes} reached (the result may not be optimal)"
        if best is None:
            raise SolverFailedError(f"UCITS branch and bound found no feasible portfolio in {max_nodes} nodes.")
    return SearchResult(best, root, nodes, iterations, note)


def branch_and_bound(
    problem: cp.Problem,
    branching: Branching,
    limits: tuple[float, float, float],
    solve: Callable[[], SolveOutcome],
    weights: Callable[[], np.ndarray],
    scale: Callable[[], float] = lambda: 1.0,
    *,
    max_nodes: int = 5_000,
    gap_tolerance: float = 1e-9,
) -> SolveOutcome:
    """Branch and bound on a cvxpy relaxation built by ``cvxpy_constraints``; leaves the variables at the optimum.

    Parameters
    ----------
    problem : cvxpy Problem
        The relaxation (``branching.z`` continuous within the Parameters ``z_lo``/``z_hi``), a minimisation.
    branching : Branching
    limits : (small, big, total)
    solve : callable
        Solves ``problem`` once (e.g. :func:`solve_with_fallback` bound to it).
    weights : callable
        The current weights (``y / k`` for a homogenised problem).
    scale : callable, default returns 1.0
        The current value of the homogenising variable ``k`` (the variable ``z`` is ``k`` times the binaries).
    max_nodes, gap_tolerance
        As in :func:`search_binaries`.

    Returns
    -------
    SolveOutcome
        Of the best node: ``status`` ``infeasible`` if no node is feasible (``unbounded`` if the root is);
        ``iterations`` summed over nodes; the node count in ``messages``.

    Raises
    ------
    SolverFailedError
        ``max_nodes`` reached without a feasible portfolio.
    """
    variables = problem.variables()
    n = branching.z.shape[0]

    def node(z_lo: np.ndarray, z_hi: np.ndarray) -> Node:
        branching.z_lo.value, branching.z_hi.value = z_lo, z_hi
        outcome = solve()
        if outcome.status != "optimal":
            return Node(outcome.status, iterations=outcome.iterations or 0, payload=(outcome, None))
        state = [None if v.value is None else np.array(v.value, copy=True) for v in variables]
        z = np.asarray(branching.z.value, dtype=float) / max(scale(), 1e-300)
        return Node("optimal", outcome.objective, weights(), z, outcome.iterations or 0, (outcome, state))

    search = search_binaries(node, n, limits, max_nodes=max_nodes, gap_tolerance=gap_tolerance)
    branching.z_lo.value, branching.z_hi.value = np.zeros(n), np.ones(n)
    if search.best is None:
        outcome = search.root.payload[0]
        status = "infeasible" if outcome.status == "optimal" else outcome.status
        return replace(outcome, status=status, iterations=search.iterations, messages=(search.note,))
    outcome, state = search.best.payload
    for variable, value in zip(variables, state, strict=True):
        if value is not None:
            variable.value = value
    return replace(outcome, iterations=search.iterations, messages=(*outcome.messages, search.note))
