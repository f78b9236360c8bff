"""NotifySlack: an SNS subscriber of the alerts topic that posts each alert to Slack, once per SNS message id.

* Each record's ``Sns.Message`` is the alert's JSON (what ``SnsNotifier`` publishes); it is posted as the Block
  Kit message ``slack_payload`` to the webhook read, on first use, from Secrets Manager
  (``SPE_SLACK_WEBHOOK_SECRET_ID``) or SSM (``SPE_SLACK_WEBHOOK_SSM_PARAMETER``).
* Idempotent per record on ``Sns.MessageId`` (powertools idempotency, DynamoDB persistence in
  ``SPE_IDEMPOTENCY_TABLE``, key ``spe-notify-slack#<md5 of the id>``, records kept 24 hours): SNS and Lambda's
  asynchronous retries may deliver a message twice; Slack sees it once.
* SNS puts one record in each invocation; should an event hold several, they are posted in order, each with
  its own key, and the first failure raises: the records before it are complete, so the retry posts only the
  rest.
* A failure raises (Slack refusing or unreachable: ``NotificationError``; the webhook unreadable:
  ``ConfigurationError``), the idempotency record is deleted, and Lambda retries the event (then its on-failure
  destination). A body that is not an alert also raises, as ``NotificationError``.
* Without ``SPE_IDEMPOTENCY_TABLE`` (a laptop, no DynamoDB) every delivery is posted: nothing is de-duplicated,
  and a warning says so at cold start.

Zip-sized: its imports reach neither numpy nor pandas (``tests/functions/test_notify_slack.py`` checks).
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SnsModel, SnsNotificationModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from portfolio_engine.adapters.alert_channels import SlackNotifier, alert_from_sns_message, slack_webhook_url
from portfolio_engine.adapters.idempotency import idempotency_persistence
from portfolio_engine.exceptions import NotificationError
from portfolio_engine.settings import Settings

SETTINGS = Settings()
logger = Logger(service="spe-notify-slack")
tracer = Tracer(service="spe-notify-slack")
# Keyed on each record's Sns.MessageId (the function is idempotent per record, not per event). Records live
# 24 hours: longer than Lambda keeps an asynchronous event for retries (6 hours at most).
IDEMPOTENCY = IdempotencyConfig(
    event_key_jmespath="MessageId", raise_on_no_idempotency_key=True, expires_after_seconds=24 * 3600
)
PERSISTENCE = idempotency_persistence(SETTINGS)
if PERSISTENCE is None:
    logger.warning("SPE_IDEMPOTENCY_TABLE is not set: every SNS delivery is posted to Slack, duplicates included")


@functools.cache
def slack() -> SlackNotifier:
    """The Slack channel, its webhook read once per container (again after a failure: it may have rotated)."""
    return SlackNotifier(
        slack_webhook_url(
            secret_id=SETTINGS.slack_webhook_secret_id,
            ssm_parameter=SETTINGS.slack_webhook_ssm_parameter,
            endpoint_url=SETTINGS.aws_endpoint_url,
            region=SETTINGS.aws_region,
        )
    )


def post(*, notification: SnsNotificationModel) -> dict[str, str]:
    """Post one SNS notification's alert to Slack."""
    alert = alert_from_sns_message(str(notification.Message))
    try:
        answer = slack().send(alert)
    except NotificationError:
        slack.cache_clear()
        raise
    logger.info("alert posted to Slack", extra={"message_id": notification.MessageId, "alert": alert.dedup_key})
    return {"message_id": notification.MessageId, "dedup_key": alert.dedup_key, "slack": answer}


POST = (
    idempotent_function(
        post,
        data_keyword_argument="notification",
        persistence_store=PERSISTENCE,
        config=IDEMPOTENCY,
        key_prefix="spe-notify-slack",
    )
    if PERSISTENCE is not None
    else post
)


@logger.inject_lambda_context(correlation_id_path="Records[0].Sns.MessageId")
@tracer.capture_lambda_handler
@event_parser(model=SnsModel)
def lambda_handler(event: SnsModel, context: LambdaContext) -> dict[str, Any]:
    IDEMPOTENCY.register_lambda_context(context)
    return {"posted": [POST(notification=record.Sns) for record in event.Records]}
