"""``python -m portfolio_engine.local.launch MACHINE RUN_ID < input.json``: one local execution, for ``spe api``.

The API's local launcher starts runs this way, in a process of their own. The run records itself in the store
(StartRun, CommitRun or RecordFailure); the exit code only says whether the execution succeeded.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Run the execution; 0 if it succeeded, 1 if it failed, 2 on a usage error."""
    if len(argv) != 2:
        print("usage: python -m portfolio_engine.local.launch MACHINE RUN_ID < input.json", file=sys.stderr)
        return 2
    from portfolio_engine.local.runner import LocalStateMachineRunner

    machine, run_id = argv
    payload = json.loads(sys.stdin.read() or "{}")
    result = LocalStateMachineRunner().run(machine, payload, name=run_id)
    if not result.succeeded:
        print(f"{run_id} {result.status}: {result.error}: {result.cause}", file=sys.stderr)
        return 1
    print(f"{run_id} {result.status} in {result.seconds:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
