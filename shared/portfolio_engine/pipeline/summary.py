"""The summary of a finished rebalance run, as ``spe run`` prints and stores it."""

from __future__ import annotations

from typing import Any

from portfolio_engine.ports import Lake, describe


def summarize_run(output: dict[str, Any], lake: Lake, *, seconds: float, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the state machine's output with what the lake now holds for the run's universe."""
    ingest, validation, features = output["ingest"], output["validation"], output["features"]
    cleared = set(validation["symbols"])
    benchmarks = [s for s in ingest["symbols"] if s == ingest["index_symbol"] and s in cleared]
    coverage = [c for c in lake.inventory(validation["source"], interval=ingest["interval"]) if c.symbol in cleared]
    return {
        "run_id": output["run_id"],
        "seconds": round(seconds, 3),
        "lake": lake.uri,
        "source": validation["source"],
        "universe": describe([c for c in coverage if c.symbol not in benchmarks]),
        "curated": describe(coverage),
        "benchmarks": benchmarks,
        "ingest": ingest,
        "validation": validation,
        "features": features,
        "regime": output.get("regime"),
        "portfolio": output.get("portfolio"),
        **{key: output.get(key) for key in ("risk", "stress", "limits", "hedge", "alerts")},
        "steps": steps,
    }


def task_steps(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task states an execution went through, in order, with their outcome.

    A Map runs its iterations' tasks side by side: each Lambda outcome belongs to the oldest task still
    running, which keeps the order of the history.
    """
    steps: list[dict[str, Any]] = []
    running: list[dict[str, Any]] = []
    for event in history:
        if event["type"] == "TaskStateEntered":
            step = {"state": event.get("name"), "status": "running"}
            steps.append(step)
            running.append(step)
        elif event["type"] == "LambdaFunctionSucceeded" and running:
            running.pop(0)["status"] = "succeeded"
        elif event["type"] in ("LambdaFunctionFailed", "LambdaFunctionTimedOut") and running:
            running.pop(0).update(status="failed", error=event.get("error"))
    return steps
