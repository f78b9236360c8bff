"""The powertools idempotency persistence of the event-triggered functions (scheduled ingest, Slack notifier).

One DynamoDB table (``SPE_IDEMPOTENCY_TABLE``, key ``id``, TTL on ``expiration``) holds every function's
records, each function under its own ``key_prefix``. Light on purpose: the Slack notifier's zip imports it.
"""

from __future__ import annotations

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from portfolio_engine.settings import Settings

__all__ = ["idempotency_persistence"]


def idempotency_persistence(settings: Settings) -> DynamoDBPersistenceLayer | None:
    """The persistence layer the settings name, or None without a table (a laptop: every delivery acts).

    Build it once per function, at module scope: powertools keeps the first configuration a layer is given.
    """
    if not settings.idempotency_table:
        return None
    client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, key_attr="id", boto3_client=client)
