"""One Lambda function of the engine, run from the shared quant container image.

numpy + pandas + pyarrow (+ scipy, scikit-learn, xgboost later) exceed Lambda's 250 MB limit for
zip + layers, so every quant/data function runs from one image (``layers/quant-image/Dockerfile``)
and only its command (the handler) differs. The image is staged at synth and built at deploy, so
synth needs neither Docker nor the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from spe_infra.config import REPO_ROOT, FunctionSettings
from spe_infra.constructs.lake_bucket import LakeBucket
from spe_infra.nag import acknowledge

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


class EngineFunction(Construct):
    """A traced, logged Lambda function with least-privilege access to the lake.

    Parameters
    ----------
    name : str
        Folder under ``functions/``; the handler is ``functions.<name>.app.lambda_handler``.
    settings : FunctionSettings
        Memory, timeout, ephemeral storage, lake access and the secrets it may read.
    secrets : mapping of str to (name, ISecret)
        Every secret of the stage by key; the function is granted (and told about) only its own.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        prefix: str,
        settings: FunctionSettings,
        image: QuantImage,
        lake: LakeBucket,
        environment: Mapping[str, str],
        secrets: Mapping[str, tuple[str, secretsmanager.ISecret]],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        function_name = f"{prefix}-{name.replace('_', '-')}"
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
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
            **environment,
            "POWERTOOLS_SERVICE_NAME": f"spe-{name.replace('_', '-')}",
            "SPE_LAKE_URI": lake.uri,
            "SPE_DATA_DIR": "/tmp/spe",  # the only writable place in Lambda
        }
        for key in settings.secrets:
            secret_name, secret = secrets[key]
            secret.grant_read(self.role)
            env[f"SPE_{key.upper()}_SECRET_ID"] = secret_name

        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            function_name=function_name,
            description=f"Stochastic Portfolio Engine: {name}",
            code=image.code(name),
            architecture=lambda_.Architecture.X86_64,
            memory_size=settings.memory_mb,
            timeout=cdk.Duration.seconds(settings.timeout_seconds),
            ephemeral_storage_size=cdk.Size.mebibytes(settings.ephemeral_storage_mb),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            role=self.role,
            environment=env,
        )
        lake.grant(self.role, settings.lake_access)
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions.",
        )
