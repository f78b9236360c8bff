"""What a state machine needs to run SageMaker training jobs: the quant image's URI and an execution role.

A definition names both by placeholder: ``${TrainingImageUri}`` (the functions' container image: the
job overrides its entrypoint with ``python -m <module>``) and ``${SageMakerRoleArn}`` (the role the job
runs as). The role may read the training channels and write the models under ``<lake>/<prefix>/``, pull
the image, and write the job's logs and metrics, nothing else; a state machine granted
:meth:`SageMakerTraining.grant_start` may create and describe jobs named ``<job_prefix>*`` and pass
that role to SageMaker only.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from spe_infra.constructs.engine_function import QuantImage
from spe_infra.constructs.lake_bucket import LakeBucket
from spe_infra.nag import acknowledge, iam5_resource

#: Definition placeholders this construct fills.
TRAINING_PLACEHOLDERS = ("TrainingImageUri", "SageMakerRoleArn")
#: Where PrepareRegimeTraining writes channels and jobs write models, and how it names jobs: the library's
#: ``portfolio_engine.contracts.training`` constants (tests/infra checks they agree; infra never imports it).
REGIME_TRAINING_PREFIX = "training/regime"
REGIME_JOB_PREFIX = "regime-"
#: SageMaker writes a training job's logs here; the log streams are named per job.
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class SageMakerTraining(Construct):
    """The SageMaker execution role and image of the engine's training jobs.

    Parameters
    ----------
    image : QuantImage
        The functions' image; the same asset (one hash, one image) is named by URI.
    lake : LakeBucket
    prefix : str
        Lake prefix of the jobs' channels and outputs (``training/regime``: ``<prefix>/<run>/train/``,
        ``<prefix>/<run>/output/``).
    job_prefix : str
        Every job's name starts with it (``regime-``); state machines may start and describe only those.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: QuantImage,
        lake: LakeBucket,
        prefix: str,
        job_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.job_prefix = job_prefix
        asset = image.asset(self, "Image")
        self.image_uri = asset.image_uri
        self.role = iam.Role(
            self,
            "Role",
            # Only SageMaker jobs of this account may assume it (confused-deputy protection).
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description=f"Runs the engine's SageMaker training jobs ({job_prefix}*)",
        )
        asset.repository.grant_pull(self.role)
        lake.grant_training_job(self.role, prefix)
        logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{TRAINING_LOG_GROUP}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[logs],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": TRAINING_LOG_GROUP}},
            )
        )
        acknowledge(
            self.role,
            iam5_resource(self, logs),
            "SageMaker writes each training job's log stream (named after the job) to its own "
            f"{TRAINING_LOG_GROUP} log group; the job names are not known in advance.",
        )
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions "
            f"(the metrics are limited to the {TRAINING_LOG_GROUP} namespace by a condition).",
        )

    @property
    def substitutions(self) -> dict[str, str]:
        """Values of the definition placeholders ``${TrainingImageUri}`` and ``${SageMakerRoleArn}``."""
        return {"TrainingImageUri": self.image_uri, "SageMakerRoleArn": self.role.role_arn}

    def grant_start(self, role: iam.IRole) -> None:
        """Let ``role`` (a state machine's) create and describe the engine's jobs and pass them this role."""
        jobs = cdk.Stack.of(self).format_arn(
            service="sagemaker", resource="training-job", resource_name=f"{self.job_prefix}*"
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"], resources=[jobs]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        acknowledge(
            role,
            iam5_resource(self, jobs),
            f"Training jobs are named {self.job_prefix}<model>-<run id> per execution, so their ARNs are not "
            "known in advance; only that prefix in this account and region.",
        )
