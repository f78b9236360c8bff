"""The data lake bucket: encrypted, versioned, TLS-only, private, with server access logs."""

from __future__ import annotations

from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from spe_infra.nag import acknowledge, iam5_resource

READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
LIST_ACTIONS = ("s3:ListBucket",)


class LakeBucket(Construct):
    """Parquet lake (``s3://<bucket>/<prefix>/...``) plus the bucket that receives its access logs.

    Objects are SSE-S3 encrypted (readers need no KMS grant), every request must use TLS 1.2+,
    public access is blocked, ACLs are disabled, and old object versions expire after
    ``noncurrent_version_days``. Both buckets are retained when the stack is deleted.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        noncurrent_version_days: int,
        access_log_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.prefix = prefix.strip("/")
        common: dict[str, Any] = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "enforce_ssl": True,
            "minimum_tls_version": 1.2,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            "removal_policy": cdk.RemovalPolicy.RETAIN,
        }
        # No access logs of its own: cdk-nag (S1) accepts a bucket that is another's log destination.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(access_log_days))],
            **common,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="lake/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=cdk.Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
            **common,
        )

    @property
    def uri(self) -> str:
        """``s3://<bucket>/<prefix>``: the value of ``SPE_LAKE_URI``."""
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"

    def grant(self, role: iam.IRole, access: Literal["read", "read_write"]) -> None:
        """Grant object access under the lake prefix, and listing of this bucket, nothing else.

        Listing is not narrowed with an ``s3:prefix`` condition: pyarrow's S3 filesystem issues
        ``HeadBucket``, which is authorised by ``s3:ListBucket`` and carries no prefix.
        """
        objects = self.bucket.arn_for_objects(f"{self.prefix}/*")
        actions = READ_ACTIONS + (WRITE_ACTIONS if access == "read_write" else ())
        for statement in (
            iam.PolicyStatement(actions=list(actions), resources=[objects]),
            iam.PolicyStatement(actions=list(LIST_ACTIONS), resources=[self.bucket.bucket_arn]),
        ):
            role.add_to_principal_policy(statement)
        acknowledge(
            role,
            iam5_resource(self, objects),
            f"Object-level access to every key under the lake prefix '{self.prefix}/' of the lake bucket only: "
            "datasets are partitioned by date, so keys are not known in advance.",
        )

    def grant_training_job(self, role: iam.IRole, prefix: str) -> None:
        """Grant a SageMaker execution role what a training job under ``<lake>/<prefix>/<run>/`` needs.

        It reads its ``train`` channel (``<run>/train/``, listing the prefix) and writes its model
        under ``<run>/output/``; nothing else in the lake.
        """
        base = f"{self.prefix}/{prefix.strip('/')}"
        channel = self.bucket.arn_for_objects(f"{base}/*/train/*")
        output = self.bucket.arn_for_objects(f"{base}/*/output/*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(READ_ACTIONS), resources=[channel]))
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[output])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(LIST_ACTIONS),
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{base}/*"]}},
            )
        )
        for objects, what in ((channel, "reads the run's training channel"), (output, "writes the run's model")):
            acknowledge(
                role,
                iam5_resource(self, objects),
                f"A training job {what} under '{base}/<run id>/' of the lake bucket: the run id is the "
                "execution's name, not known in advance.",
            )
