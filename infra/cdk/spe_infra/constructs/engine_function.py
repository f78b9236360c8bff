"""One Lambda function of the engine: the shared quant image, or a zip with the light layer.

numpy + pandas + pyarrow (+ scipy, scikit-learn, xgboost) exceed Lambda's 250 MB limit for zip + layers,
so every quant/data function runs from one image (``layers/quant-image/Dockerfile``) and only its command
(the handler) differs. The image is staged at synth and built at deploy, so synth needs neither Docker
nor the network. A function whose imports stay light (``packaging: "zip"``) ships as its handler and the
library modules it imports, with the light layer (:mod:`spe_infra.constructs.zip_function`).

What a function may touch follows its settings, nothing by default: the lake prefix, the store of record
(read or write), the idempotency table, the alerts topic (publish, or a subscription), its secrets and the
execution histories of the state machines that invoke it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from spe_infra.config import REPO_ROOT, FunctionSettings
from spe_infra.constructs.arns import execution_arn
from spe_infra.constructs.lake_bucket import LakeBucket
from spe_infra.constructs.tables import IdempotencyTable, StoreTable
from spe_infra.constructs.zip_function import ARCHITECTURE, RUNTIME, zip_code
from spe_infra.nag import acknowledge, iam5_resource

DOCKERFILE = "layers/quant-image/Dockerfile"

# Docker-style patterns for the build context (the repo root): only what the Dockerfile copies.
# Keeping .venv, .git and cdk.out out also keeps synth fast: the context is copied into cdk.out.
IMAGE_CONTEXT = (
    "*",
    "!pyproject.toml",
    "!uv.lock",
    "!README.md",
    "!shared",
    "!functions",
    "!layers/quant-image",
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
)


def handler_for(name: str) -> str:
    """Return the image command of function ``name``: ``lambda_handler`` in ``functions/<name>/app.py``."""
    return f"functions.{name}.app.lambda_handler"


class QuantImage:
    """The container image shared by the quant functions (and the SageMaker training jobs)."""

    def __init__(self, *, directory: str | None = None) -> None:
        self.directory = directory or str(REPO_ROOT)

    def _options(self) -> dict[str, Any]:
        # Same directory, Dockerfile and options everywhere: one asset hash, one image.
        return {
            "file": DOCKERFILE,
            "exclude": list(IMAGE_CONTEXT),
            "ignore_mode": cdk.IgnoreMode.DOCKER,
            "platform": ecr_assets.Platform.LINUX_AMD64,
        }

    def code(self, name: str) -> lambda_.DockerImageCode:
        """The image as function ``name``'s code: its command is the handler."""
        return lambda_.DockerImageCode.from_image_asset(self.directory, cmd=[handler_for(name)], **self._options())

    def asset(self, scope: Construct, construct_id: str) -> ecr_assets.DockerImageAsset:
        """The same image as an asset of its own (a training job names it by URI and runs its own entrypoint)."""
        return ecr_assets.DockerImageAsset(scope, construct_id, directory=self.directory, **self._options())


@dataclass(frozen=True)
class FunctionResources:
    """What the stack's functions share and may be granted, each according to its settings."""

    lake: LakeBucket
    image: QuantImage
    light_layer: Callable[[], lambda_.ILayerVersion]
    """The zip functions' layer, made on first use (a stack without zip functions builds none)."""
    secrets: Mapping[str, tuple[str, secretsmanager.ISecret]]
    """Every secret of the stage by key: (name, secret)."""
    store: StoreTable
    idempotency: IdempotencyTable
    alerts: sns.ITopic
    environment: Mapping[str, str]
    log_retention: logs.RetentionDays


class EngineFunction(Construct):
    """A traced, logged Lambda function with least-privilege access to what its settings name.

    Parameters
    ----------
    name : str
        Folder under ``functions/``; the handler is ``functions.<name>.app.lambda_handler``.
    settings : FunctionSettings
        Memory, timeout, ephemeral storage, packaging, and what it may touch.
    resources : FunctionResources
        The stack's shared resources; the function is granted (and told about) only what its settings ask.
    invoking_machines : sequence of str
        Physical names of the state machines whose definitions invoke it: with ``executionHistory``, it may
        read their executions' histories (its own execution's timings), nothing else.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        prefix: str,
        settings: FunctionSettings,
        resources: FunctionResources,
        invoking_machines: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.settings = settings
        function_name = f"{prefix}-{name.replace('_', '-')}"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=resources.log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        # Our own role instead of AWSLambdaBasicExecutionRole: it may write to this log group only.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the {name} Lambda function",
        )
        self.log_group.grant_write(self.role)

        env = {
            **resources.environment,
            "POWERTOOLS_SERVICE_NAME": f"spe-{name.replace('_', '-')}",
            "SPE_DATA_DIR": "/tmp/spe",  # the only writable place in Lambda
        }
        if settings.lake_access != "none":
            env["SPE_LAKE_URI"] = resources.lake.uri
            resources.lake.grant(self.role, settings.lake_access)
        if settings.store != "none":
            env["SPE_STORE_URI"] = resources.store.uri
            resources.store.grant(self.role, settings.store)
        if settings.idempotency:
            env["SPE_IDEMPOTENCY_TABLE"] = resources.idempotency.table.table_name
            resources.idempotency.grant(self.role)
        if settings.alerts == "publish":
            env["SPE_ALERTS_TOPIC_ARN"] = resources.alerts.topic_arn
            resources.alerts.grant_publish(self.role)
            acknowledge(
                self.role,
                "IAM5[Action::kms:GenerateDataKey*]",
                "Publishing to the encrypted alerts topic needs kms:GenerateDataKey* (CDK's grant_publish), on the "
                "topic's own key only.",
            )
        for key in settings.secrets:
            secret_name, secret = resources.secrets[key]
            secret.grant_read(self.role)
            env[f"SPE_{key.upper()}_SECRET_ID"] = secret_name
        if settings.execution_history:
            self._grant_execution_history(invoking_machines)

        common: dict[str, Any] = {
            "function_name": function_name,
            "description": f"Stochastic Portfolio Engine: {name}",
            "architecture": ARCHITECTURE,  # the image is built for linux/amd64, the light layer's wheels too
            "memory_size": settings.memory_mb,
            "timeout": cdk.Duration.seconds(settings.timeout_seconds),
            "ephemeral_storage_size": cdk.Size.mebibytes(settings.ephemeral_storage_mb),
            "tracing": lambda_.Tracing.ACTIVE,
            "log_group": self.log_group,
            "role": self.role,
            "environment": env,
        }
        if settings.alerts == "subscribe":
            common.update(self._asynchronous_invocations(function_name))
        self.function: lambda_.Function
        if settings.packaging == "zip":
            self.function = lambda_.Function(
                self,
                "Function",
                runtime=RUNTIME,
                handler=handler_for(name),
                code=zip_code(name),
                layers=[resources.light_layer()],
                **common,
            )
            acknowledge(
                self.function,
                "L1",
                "The zip runtime is python3.11, the Python of uv.lock, the quant image and the tests: the light "
                "layer's compiled wheels (pydantic-core) are built for it. It moves with the lock's Python.",
            )
        else:
            self.function = lambda_.DockerImageFunction(self, "Function", code=resources.image.code(name), **common)
        if settings.alerts == "subscribe":
            resources.alerts.add_subscription(subscriptions.LambdaSubscription(self.function))
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions.",
        )

    def _asynchronous_invocations(self, function_name: str) -> dict[str, Any]:
        """SNS invokes asynchronously: two retries, then the event goes to a dead-letter queue to replay."""
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=f"{function_name}-dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        return {"retry_attempts": 2, "max_event_age": cdk.Duration.hours(6), "dead_letter_queue": self.dead_letters}

    def _grant_execution_history(self, machines: Sequence[str]) -> None:
        if not machines:
            raise ValueError(
                f"spe.functions.{self.name} sets executionHistory, but no state machine invokes it: "
                "remove the setting or add the machine that does to spe.stateMachines"
            )
        arns = [execution_arn(self, machine) for machine in machines]
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=["states:GetExecutionHistory"], resources=arns))
        for machine, arn in zip(machines, arns, strict=True):
            acknowledge(
                self.role,
                iam5_resource(self, arn),
                f"Reads the history of its own execution of {machine} (per-state timings of the run it records); "
                "the execution name is the run id, not known in advance.",
            )
