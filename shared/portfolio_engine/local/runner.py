"""Run the real ``state_machines/*.asl.json`` on a laptop.

moto's Step Functions interpreter (a port of LocalStack's) executes the definition. Each Lambda task
is dispatched in-process to its handler in ``functions/<name>/app.py``: the interpreter invokes Lambda
through boto3's default session, and a ``before-call.lambda.Invoke`` hook on that session answers the
call with the handler's result, as Lambda would (errors come back as ``FunctionError`` with the
exception's class name as ``errorType``, so ``Retry``/``Catch`` match on error names as on AWS).

``aws-sdk:sagemaker:createTrainingJob`` / ``describeTrainingJob`` tasks go through the same session
(moto calls ``boto3.client("sagemaker")``), so ``before-call.sagemaker.*`` hooks answer them with
:class:`LocalSageMaker`, which runs the job's training module on this machine. A machine that starts
machines (``rebalance_all``: a Distributed Map of ``startExecution.sync:2`` tasks) is rendered for moto by
:mod:`portfolio_engine.local.nested` and its children run here to their end.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import unquote

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from portfolio_engine.exceptions import ConfigurationError, StateMachineError
from portfolio_engine.local.nested import NESTED_FUNCTION, failure, localize, machine_placeholder, sync_response
from portfolio_engine.local.sagemaker import LocalSageMaker

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS_DIR = REPO_ROOT / "functions"
STATE_MACHINES_DIR = REPO_ROOT / "state_machines"
ACCOUNT = "123456789012"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
# Only Step Functions, Lambda and SageMaker are simulated. Every other AWS call a handler makes (S3,
# Secrets Manager, ...) passes through to wherever it points (AWS, AWS_ENDPOINT_URL), with the caller's
# own credentials: moto must neither answer it nor replace the credentials with fakes.
MOTO_CONFIG: DefaultConfig = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "core": {
        "mock_credentials": False,
        "passthrough": {"urls": [r"^https?://(?!(states|lambda|api\.sagemaker)\.)"], "services": []},
    },
}
#: Values of the definitions' other placeholders when run locally (CDK substitutes the deployed ones):
#: the training image is never pulled (LocalSageMaker runs the container's module), the role never assumed.
LOCAL_SUBSTITUTIONS = {
    "TrainingImageUri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/spe-quant:local",
    "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/spe-local-sagemaker",
}

TaskListener = Callable[[str, str, dict[str, Any]], None]
"""Called as ``listener(event, function_name, detail)`` with event ``"start"``, ``"end"`` or ``"error"``."""


def placeholder_for(function_name: str) -> str:
    """The definition placeholder of a function folder: ``ingest_prices`` -> ``IngestPricesFunctionArn``."""
    return "".join(part.capitalize() for part in function_name.split("_")) + "FunctionArn"


def discover_functions(functions_dir: Path = FUNCTIONS_DIR) -> dict[str, Path]:
    """Map each function folder name to its handler file ``app.py``."""
    return {p.parent.name: p for p in sorted(functions_dir.glob("*/app.py"))}


def render_definition(path: Path, arns: dict[str, str], *, wait_scale: float = 1.0) -> str:
    """Substitute ``${XxxFunctionArn}`` (and any other ``${Name}`` in ``arns``) as CDK's substitutions do.

    ``wait_scale`` multiplies Wait states' seconds, so tests need not really sleep (Retry intervals,
    which must stay >= 1 in a definition, are scaled at run time by ``LocalStateMachineRunner``).

    Raises
    ------
    ConfigurationError
        If the definition names a placeholder with no function behind it, or is not valid JSON.
    """
    text = path.read_text()
    unknown = sorted({m for m in _PLACEHOLDER.findall(text) if m not in arns})
    if unknown:
        raise ConfigurationError(
            f"{path.name} refers to {unknown}, which no folder under functions/ (nor the runner) provides.",
            hint="Add functions/<name>/app.py, or fix the placeholder (ingest_prices -> ${IngestPricesFunctionArn}).",
        )
    text = _PLACEHOLDER.sub(lambda m: arns[m.group(1)], text)
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path.name} is not valid JSON: {exc}") from exc
    if wait_scale != 1.0:
        _scale_waits(definition, wait_scale)
    return json.dumps(definition)


def _scale_waits(node: Any, scale: float) -> None:
    if isinstance(node, dict):
        if node.get("Type") == "Wait" and "Seconds" in node:
            node["Seconds"] = round(node["Seconds"] * scale)
        for value in node.values():
            _scale_waits(value, scale)
    elif isinstance(node, list):
        for value in node:
            _scale_waits(value, scale)


@dataclass
class LambdaContext:
    """What the Lambda runtime hands a handler, for in-process calls (powertools reads these)."""

    function_name: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = 900.0
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


class InProcessLambda:
    """Invoke the handlers under ``functions/`` in this process, with Lambda's JSON semantics."""

    def __init__(self, functions_dir: Path = FUNCTIONS_DIR, listener: TaskListener | None = None) -> None:
        self.paths = discover_functions(functions_dir)
        if not self.paths:
            raise ConfigurationError(f"No functions/*/app.py under {functions_dir}.")
        self.listener = listener
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()

    def handler(self, name: str) -> Callable[[dict[str, Any], Any], Any]:
        """Import ``functions/<name>/app.py`` once (module scope runs, as on a cold start)."""
        with self._lock:
            if name not in self._modules:
                if name not in self.paths:
                    raise ConfigurationError(f"No function '{name}' under functions/; known: {sorted(self.paths)}.")
                spec = importlib.util.spec_from_file_location(f"spe_function_{name}", self.paths[name])
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                self._modules[name] = module
            return self._modules[name].lambda_handler

    def invoke(self, name: str, event: dict[str, Any]) -> tuple[bytes, str | None]:
        """Run one invocation; return the JSON payload and Lambda's ``FunctionError`` (None on success)."""
        try:
            # Inside the try: a listener that raises fails the invocation like the handler would (fault injection).
            if self.listener:
                self.listener("start", name, event)
            result = self.handler(name)(event, LambdaContext(function_name=name))
            payload = json.dumps(result).encode()
        except Exception as exc:
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            logger.warning("function %s failed: %s: %s", name, error["errorType"], error["errorMessage"])
            if self.listener:
                self.listener("error", name, error)
            return json.dumps(error).encode(), "Unhandled"
        if self.listener:
            self.listener("end", name, result if isinstance(result, dict) else {"result": result})
        return payload, None


@dataclass(frozen=True)
class ExecutionResult:
    """The end of one execution."""

    name: str
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    seconds: float
    history: list[dict[str, Any]]

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def raise_for_status(self) -> dict[str, Any]:
        """Return the output, or raise the failing step's error as a ``StateMachineError``."""
        if not self.succeeded or self.output is None:
            raise step_error(self.error or self.status, self.cause or "", f"Execution {self.name} ended {self.status}")
        return self.output


def step_error(error: str, cause: str, where: str) -> StateMachineError:
    """A ``StateMachineError`` carrying a failed step's error name, message and hint.

    ``cause`` is Lambda's error payload as JSON (``errorType``, ``errorMessage``), or plain text for
    errors raised by Step Functions itself; an engine error's message ends in ``Hint: ...``.
    """
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (json.JSONDecodeError, AttributeError):
        message = cause
    message, _, hint = message.partition(" Hint: ")
    # A training job's cause is SageMaker's FailureReason: "AlgorithmError: " + the script's failure file.
    failure = _training_failure(cause)
    if failure:
        message, hint = str(failure.get("errorMessage", message)), str(failure.get("hint") or hint)
    return StateMachineError(f"{where}: {error}: {message}", error=error, cause=cause, hint=hint or None)


def _training_failure(cause: str) -> dict[str, Any] | None:
    prefix = "AlgorithmError: "
    if not cause.startswith(prefix):
        return None
    try:
        document = json.loads(cause.removeprefix(prefix))
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


class LocalStateMachineRunner:
    """Execute a state machine definition with moto, dispatching Lambda tasks in-process.

    Parameters
    ----------
    functions_dir, state_machines_dir : Path
        Where ``functions/<name>/app.py`` and ``<machine>.asl.json`` are.
    listener : callable, optional
        Told when each task starts, ends or fails (progress bars, tests).
    wait_scale : float
        Multiplies Retry intervals and Wait seconds (tests use 0; a definition keeps its real values).
    region : str
        Region of the in-memory Step Functions service.
    timeout_seconds : float
        How long ``run`` waits for an execution to finish.
    sagemaker : LocalSageMaker, optional
        Runs the definitions' SageMaker training jobs; default: one reading and writing the lake's
        storage as the settings say (``AWS_ENDPOINT_URL``), training in this process.
    """

    def __init__(
        self,
        functions_dir: Path = FUNCTIONS_DIR,
        state_machines_dir: Path = STATE_MACHINES_DIR,
        *,
        listener: TaskListener | None = None,
        wait_scale: float = 1.0,
        region: str = "us-east-1",
        timeout_seconds: float = 3600.0,
        sagemaker: LocalSageMaker | None = None,
        already_ran: Callable[[str], bool] | None = None,
    ) -> None:
        self.lambdas = InProcessLambda(functions_dir, listener)
        self.state_machines_dir = state_machines_dir
        self.wait_scale = wait_scale
        self.region = region
        self.timeout_seconds = timeout_seconds
        machines = sorted(p.name.removesuffix(".asl.json") for p in state_machines_dir.glob("*.asl.json"))
        self.arns = (
            {placeholder_for(name): self._function_arn(name) for name in self.lambdas.paths}
            | {machine_placeholder(m): f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{m}" for m in machines}
            | LOCAL_SUBSTITUTIONS
        )
        self._machines: dict[str, str] = {}  # machine -> ARN in the current run's in-memory service
        self._machines_lock = threading.Lock()
        self.already_ran = already_ran or _store_has_run
        if sagemaker is None:
            from portfolio_engine.settings import Settings

            settings = Settings()
            sagemaker = LocalSageMaker(
                endpoint_url=settings.aws_endpoint_url, region=settings.aws_region, account=ACCOUNT, listener=listener
            )
        self.sagemaker = sagemaker

    def _function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"

    def definition(self, machine: str) -> str:
        path = self.state_machines_dir / f"{machine}.asl.json"
        if not path.exists():
            known = sorted(p.name.removesuffix(".asl.json") for p in self.state_machines_dir.glob("*.asl.json"))
            raise ConfigurationError(f"No state machine '{machine}'; known: {known}.")
        rendered = json.loads(render_definition(path, self.arns, wait_scale=self.wait_scale))
        return json.dumps(localize(rendered, self._function_arn(NESTED_FUNCTION)))

    def _on_invoke(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        target = unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
        name = target.rsplit(":", 1)[-1]
        event = json.loads(params.get("body") or b"{}")
        if name == NESTED_FUNCTION:
            payload, function_error = self._run_nested(event)
        else:
            payload, function_error = self.lambdas.invoke(name, event)
        parsed: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(payload), "ExecutedVersion": "$LATEST"}
        if function_error:
            parsed["FunctionError"] = function_error
        return AWSResponse(params.get("url", "local://lambda"), 200, HTTPHeaders(), None), parsed

    def run(self, machine: str, payload: dict[str, Any], *, name: str) -> ExecutionResult:
        """Start one execution named ``name`` (the run id) and wait for it to end."""
        try:
            from moto import mock_aws  # imported here: moto is only needed for local runs
        except ImportError as exc:
            raise ConfigurationError(
                "The local runner needs moto, which is not installed.",
                hint="Install the 'local' extra (`make setup`, or `uv sync --extra local`).",
            ) from exc

        definition = self.definition(machine)
        # moto logs every failed state at ERROR; the result carries the error and cause instead.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        with mock_aws(config=MOTO_CONFIG), _scaled_retry_sleep(self.wait_scale), _local_states_endpoint():
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            session = boto3.DEFAULT_SESSION
            assert session is not None
            # A before-call handler that returns (http, parsed) answers the call instead of the endpoint.
            hooks = {
                "before-call.lambda.Invoke": self._on_invoke,
                "before-call.sagemaker.CreateTrainingJob": self.sagemaker.on_create,
                "before-call.sagemaker.DescribeTrainingJob": self.sagemaker.on_describe,
            }
            for event, hook in hooks.items():
                session.events.register(event, hook, unique_id=f"spe-local-{event}")  # type: ignore[arg-type]
            self._machines = {}  # each run has its own in-memory service
            try:
                return self._execute(machine, definition, payload, name)
            finally:
                for event in hooks:
                    session.events.unregister(event, unique_id=f"spe-local-{event}")

    def _run_nested(self, event: dict[str, Any]) -> tuple[bytes, str | None]:
        """A ``startExecution.sync`` task: run the named machine to its end (see ``local.nested``)."""
        machine, name = str(event["StateMachineArn"]).rsplit(":", 1)[-1], str(event["Name"])
        payload = event.get("Input") or {}
        payload = json.loads(payload) if isinstance(payload, str) else payload
        if self.already_ran(name):
            cause = f"Execution {name} of {machine} already exists (a run of that id is recorded)."
            return json.dumps(failure("StepFunctions.ExecutionAlreadyExistsException", cause)).encode(), "Unhandled"
        started = datetime.now(UTC)
        result = self._execute(machine, self.definition(machine), payload, name)
        arn = f"arn:aws:states:{self.region}:{ACCOUNT}:execution:{machine}:{name}"
        response = sync_response(arn, name, result.status, result.output, started)
        if not result.succeeded:
            # Step Functions names this States.TaskFailed, a name a Lambda error may not carry: the child's own.
            described = {**response, "Error": result.error, "Cause": result.cause}
            return json.dumps(failure(result.error or "ExecutionFailed", described)).encode(), "Unhandled"
        return json.dumps(response, default=str).encode(), None

    def _machine_arn(self, sfn: Any, machine: str, definition: str) -> str:
        """The machine's ARN in this run's in-memory service, created once (children share their machine)."""
        with self._machines_lock:
            if machine not in self._machines:
                self._machines[machine] = sfn.create_state_machine(
                    name=machine, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/spe-local"
                )["stateMachineArn"]
            return self._machines[machine]

    def _execute(self, machine: str, definition: str, payload: dict[str, Any], name: str) -> ExecutionResult:
        # The in-memory service answers AWS's own endpoint; AWS_ENDPOINT_URL (a moto server or
        # LocalStack the handlers may use for S3) must not take this client elsewhere.
        sfn = boto3.client(
            "stepfunctions",
            region_name=self.region,
            endpoint_url=f"https://states.{self.region}.amazonaws.com",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        arn = self._machine_arn(sfn, machine, definition)
        started = time.monotonic()
        execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            if time.monotonic() - started > self.timeout_seconds:
                sfn.stop_execution(executionArn=execution, error="LocalTimeout", cause="run() gave up waiting")
                raise StateMachineError(f"Execution {name} ran over {self.timeout_seconds} s.", error="LocalTimeout")
            time.sleep(0.01)
        history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        output = described.get("output")
        return ExecutionResult(
            name=name,
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            seconds=time.monotonic() - started,
            history=[_event_summary(e) for e in history],
        )


def _store_has_run(run_id: str) -> bool:
    """Whether the store the settings name has recorded ``run_id`` (a child run that already happened)."""
    from portfolio_engine.adapters.store import build_store
    from portfolio_engine.settings import Settings

    return build_store(Settings()).view("run", run_id) is not None


@contextlib.contextmanager
def _local_states_endpoint() -> Iterator[None]:
    # Handlers that read their own execution's history (CommitRun, RecordFailure) must reach this process's
    # interpreter, not AWS_ENDPOINT_URL (a moto server or LocalStack the lake may live on).
    from portfolio_engine.adapters.executions import LOCAL_STATES

    before = os.environ.get("SPE_STATES_ENDPOINT_URL")
    os.environ["SPE_STATES_ENDPOINT_URL"] = LOCAL_STATES
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SPE_STATES_ENDPOINT_URL", None)
        else:
            os.environ["SPE_STATES_ENDPOINT_URL"] = before


class _ScaledClock:
    """Stands in for the ``time`` module inside moto's retrier: sleeps ``scale`` times as long."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def _scaled_retry_sleep(scale: float) -> Iterator[None]:
    # moto's retrier sleeps for the real IntervalSeconds (>= 1 by the ASL spec); tests pass 0.
    if scale == 1.0:
        yield
        return
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    with mock.patch.object(retrier_decl, "time", _ScaledClock(scale)):
        yield


def _event_summary(event: Mapping[str, Any]) -> dict[str, Any]:
    summary = {"id": event["id"], "type": event["type"]}
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            summary.update({k: v for k, v in value.items() if k in ("name", "error", "cause")})
    return summary
