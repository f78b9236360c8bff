"""The engine's DynamoDB tables: the store of record, and the powertools idempotency records.

The store of record (``portfolio_engine.adapters.store.dynamodb``) is one table: key ``pk``/``sk``
(strings), global secondary indexes ``by_kind`` (``g_kind``, ``g_sort``) and ``by_owner`` (``g_owner``,
``g_sort``), both projecting every attribute. It holds stream heads, the append-only events, the read models
and alert cool-down state: everything the engine decided. So it keeps point-in-time recovery (35 days),
deletion protection, and is retained when the stack is deleted. Its items are encrypted with the AWS owned
key (see :class:`StoreTable`).

The idempotency table holds powertools' records (key ``id``, expiry ``expiration``), which live hours to
days: losing them means at worst that a duplicate delivery acts once more, so it is destroyed with the stack
and has no point-in-time recovery.
"""

from __future__ import annotations

from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from spe_infra.nag import acknowledge

#: Both GSIs of the store table (``store_item_model`` in the library): name -> partition key.
STORE_INDEXES = {"by_kind": "g_kind", "by_owner": "g_owner"}
STORE_INDEX_SORT_KEY = "g_sort"

READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable")
#: A ``TransactWriteItems`` is authorised by the actions of the items it contains (Put/Update/Delete ->
#: PutItem/UpdateItem/DeleteItem, ConditionCheck -> ConditionCheckItem); it has no IAM action of its own.
WRITE_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem")
#: What powertools' ``DynamoDBPersistenceLayer`` calls.
IDEMPOTENCY_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


class StoreTable(Construct):
    """The store of record: one on-demand table with two GSIs, point-in-time recovery, retained.

    Encryption is DynamoDB's default, the AWS owned key: items are encrypted at rest either way, the
    access boundary is each function's IAM policy (read or write, on this table only), and a customer
    managed key would add a KMS grant to every function role, a cost per request and a way to lose the
    system of record (a disabled or deleted key makes the table and its backups unreadable). Use
    ``TableEncryption.CUSTOMER_MANAGED`` instead if an auditor needs key-level control.
    """

    def __init__(self, scope: Construct, construct_id: str, *, table_name: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=_string("pk"),
            sort_key=_string("sk"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for index, partition_key in STORE_INDEXES.items():
            self.table.add_global_secondary_index(
                index_name=index,
                partition_key=_string(partition_key),
                sort_key=_string(STORE_INDEX_SORT_KEY),
                projection_type=dynamodb.ProjectionType.ALL,
            )

    @property
    def uri(self) -> str:
        """``dynamodb://<table name>``: the value of ``SPE_STORE_URI``."""
        return f"dynamodb://{self.table.table_name}"

    def index_arns(self) -> list[str]:
        """The ARNs of the two indexes, by name (no ``index/*`` wildcard)."""
        return [f"{self.table.table_arn}/index/{index}" for index in STORE_INDEXES]

    def grant(self, role: iam.IRole, access: Literal["read", "write"]) -> None:
        """Let ``role`` read (items and both indexes) or also write (items) the store, nothing else."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(READ_ACTIONS), resources=[self.table.table_arn, *self.index_arns()])
        )
        if access == "write":
            # Indexes are written by DynamoDB itself: item writes need the table only.
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(WRITE_ACTIONS), resources=[self.table.table_arn])
            )


class IdempotencyTable(Construct):
    """Powertools idempotency records: key ``id``, TTL on ``expiration``, on demand, destroyed with the stack."""

    def __init__(self, scope: Construct, construct_id: str, *, table_name: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=_string("id"),
            time_to_live_attribute="expiration",
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.table,
            "DDB3",
            "Idempotency records expire within days (TTL) and only stop a duplicate delivery from acting twice; "
            "a restore would bring back expired records, so point-in-time recovery protects nothing here.",
        )

    def grant(self, role: iam.IRole) -> None:
        """Let ``role`` keep its idempotency records (get, put, update, delete items), nothing else."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(IDEMPOTENCY_ACTIONS), resources=[self.table.table_arn])
        )
