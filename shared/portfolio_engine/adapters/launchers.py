"""Run launchers (:class:`~portfolio_engine.ports.RunLauncher`): Step Functions on AWS, a child process here.

Step Functions makes a start idempotent by the execution's name: the same name and input return the running
execution; another input (or a closed execution) is ``ExecutionAlreadyExists``, and the launcher reads the
closed execution's input to tell a repeated start (a no-op) from a conflicting one. The local launcher keeps the
same rule for the runs it started, and runs each in its own process (``python -m portfolio_engine.local.launch``)
so that the moto interpreter's patching of botocore never touches the API server's own threads.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portfolio_engine.exceptions import ConfigurationError, DuplicateError, StateMachineError
from portfolio_engine.ports import LaunchStatus

logger = logging.getLogger(__name__)

__all__ = ["LocalLauncher", "StepFunctionsLauncher"]


class StepFunctionsLauncher:
    """Start executions of the deployed state machines (``SPE_STATE_MACHINE_ARNS``: machine -> ARN)."""

    def __init__(
        self, arns: Mapping[str, str], *, region: str, endpoint_url: str | None = None, client: Any = None
    ) -> None:
        self.arns = dict(arns)
        if client is None:
            import boto3

            client = boto3.client("stepfunctions", region_name=region, endpoint_url=endpoint_url)
        self.client = client

    def _arn(self, machine: str) -> str:
        arn = self.arns.get(machine)
        if arn is None:
            raise ConfigurationError(
                f"No state machine ARN for {machine!r} (known: {sorted(self.arns)}).",
                hint="Set SPE_STATE_MACHINE_ARNS to a JSON object machine -> ARN (the CDK app sets it).",
            )
        return arn

    def start(self, machine: str, run_id: str, request: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.start_execution(stateMachineArn=self._arn(machine), name=run_id, input=json.dumps(request))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                # Step Functions refuses a closed execution's name even with the same input; the port makes the
                # same start a no-op whatever the execution's state, so compare the input it was started with.
                if self._started_with(machine, run_id) == json.loads(json.dumps(request)):
                    return
                raise DuplicateError(f"An execution named {run_id!r} exists with another input.") from exc
            raise StateMachineError(f"Cannot start {machine} run {run_id}: {exc}", error="LaunchFailed") from exc

    def _started_with(self, machine: str, run_id: str) -> Any:
        """The input execution ``run_id`` was started with (None if it cannot be read)."""
        from botocore.exceptions import ClientError

        try:
            described = self.client.describe_execution(executionArn=self._execution_arn(machine, run_id))
            return json.loads(described.get("input") or "null")
        except (ClientError, ValueError):
            return None

    def _execution_arn(self, machine: str, run_id: str) -> str:
        return self._arn(machine).replace(":stateMachine:", ":execution:") + f":{run_id}"

    def status(self, machine: str, run_id: str) -> tuple[LaunchStatus, str | None] | None:
        from botocore.exceptions import ClientError

        try:
            described = self.client.describe_execution(executionArn=self._execution_arn(machine, run_id))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise StateMachineError(f"Cannot read execution {run_id}: {exc}", error="LaunchFailed") from exc
        status = described["status"]
        if status == "SUCCEEDED":
            return "SUCCEEDED", None
        if status == "RUNNING" or status == "PENDING_REDRIVE":
            return "RUNNING", None
        return "FAILED", described.get("cause") or described.get("error") or status


@dataclass
class _Job:
    machine: str
    request: dict[str, Any]
    status: LaunchStatus = "QUEUED"
    cause: str | None = None


class LocalLauncher:
    """Run executions on this machine, one at a time, each in a child process running the local runner.

    Parameters
    ----------
    log_dir : Path
        Each run's output goes to ``<log_dir>/<run id>.log``.
    env : mapping, optional
        The child's environment (default: this process's, which carries ``SPE_DATA_DIR`` and the store URI).
    """

    def __init__(self, log_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env if env is not None else os.environ)
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spe-launch")

    def start(self, machine: str, run_id: str, request: dict[str, Any]) -> None:
        with self._lock:
            job = self._jobs.get(run_id)
            if job is not None:
                if (job.machine, job.request) != (machine, request):
                    raise DuplicateError(f"Run {run_id!r} was started with another input.")
                return
            self._jobs[run_id] = _Job(machine, request)
        self._pool.submit(self._run, run_id)

    def status(self, machine: str, run_id: str) -> tuple[LaunchStatus, str | None] | None:
        with self._lock:
            job = self._jobs.get(run_id)
            return None if job is None or job.machine != machine else (job.status, job.cause)

    def _run(self, run_id: str) -> None:
        job = self._jobs[run_id]
        job.status = "RUNNING"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{run_id}.log"
        command = [sys.executable, "-m", "portfolio_engine.local.launch", job.machine, run_id]
        try:
            with log.open("wb") as out:
                child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=out, env=self.env)
                child.communicate(json.dumps(job.request).encode())
        except OSError as exc:
            job.status, job.cause = "FAILED", f"Cannot start the local run: {exc}"
            return
        if child.returncode == 0:
            job.status = "SUCCEEDED"
        else:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            job.status, job.cause = "FAILED", " ".join(tail) or f"exit code {child.returncode}"
        logger.info("local run ended", extra={"run_id": run_id, "status": job.status, "log": str(log)})

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every run started so far to end (tests, and a clean shutdown of ``spe api``)."""
        self._pool.submit(lambda: None).result(timeout=timeout)

    def close(self) -> None:
        """Drop the runs still queued (never started, so never recorded).

        The one running finishes on its own and records itself: killing it would leave its record RUNNING.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for job in self._jobs.values():
                if job.status == "QUEUED":
                    job.status, job.cause = "FAILED", "Not started: the server stopped first."
