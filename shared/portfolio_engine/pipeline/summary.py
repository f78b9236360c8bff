"""The summary of a finished rebalance run, as ``spe run`` prints and stores it."""

from __future__ import annotations

from typing import Any

from portfolio_engine.ports import Lake, describe


def summarize_run(output: dict[str, Any], lake: Lake, *, seconds: float) -> dict[str, Any]:
    """Combine the state machine's output (the commit's) with what the lake now holds for the run's universe."""
    ingest, validation, features = output["ingest"], output["validation"], output["features"]
    cleared = set(validation["symbols"])
    benchmarks = [s for s in ingest["symbols"] if s == ingest["index_symbol"] and s in cleared]
    coverage = [c for c in lake.inventory(validation["source"], interval=ingest["interval"]) if c.symbol in cleared]
    return {
        "run_id": output["run_id"],
        "status": output.get("status"),
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
        "commit": output.get("commit"),
        "steps": (output.get("commit") or {}).get("steps", []),
    }
