"""The engine's stack: lake, store, functions, state machines, training, schedules, secrets, alerts, HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from spe_infra.config import REPO_ROOT, EngineConfig, ScheduleSettings
from spe_infra.constructs import (
    ApiUserPool,
    EngineFunction,
    EngineStateMachine,
    FunctionResources,
    HttpApiEndpoint,
    IdempotencyTable,
    LakeBucket,
    LightLayer,
    QuantImage,
    SageMakerTraining,
    StoreTable,
    function_arn_placeholder,
    token_issuer,
)
from spe_infra.constructs.engine_state_machine import load_definition, placeholders
from spe_infra.constructs.training_job import REGIME_JOB_PREFIX, REGIME_TRAINING_PREFIX, TRAINING_PLACEHOLDERS
from spe_infra.nag import acknowledge

# CloudWatch Logs accepts only these retention periods (days).
_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def retention(days: int) -> logs.RetentionDays:
    """Return the CloudWatch retention enum for ``days``.

    Raises
    ------
    ValueError
        If CloudWatch Logs does not offer that period; the message lists the ones it does.
    """
    if days not in _RETENTION:
        raise ValueError(f"logRetentionDays={days} is not a CloudWatch Logs period; use one of {sorted(_RETENTION)}")
    return logs.RetentionDays[_RETENTION[days]]


#: Added to a state machine's scheduled input, as the local scheduler adds them: who started it, and when.
SCHEDULED_RUN_FIELDS = {"trigger": "schedule", "scheduled_for": "$.time"}


def _construct_id(name: str) -> str:
    """``ingest_prices`` / ``retrain-regime`` -> ``IngestPrices`` / ``RetrainRegime``."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _event_input(value: Any) -> Any:
    """Replace ``"$.path"`` strings by EventBridge event fields, recursively."""
    if isinstance(value, str) and value.startswith("$."):
        return events.EventField.from_path(value)
    if isinstance(value, Mapping):
        return {key: _event_input(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_event_input(item) for item in value]
    return value


class EngineStack(cdk.Stack):
    """Everything one stage of the engine needs on AWS, built from one ``EngineConfig``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EngineConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        # CDK makes each function and state machine depend on its role *and* the role's policy; the
        # role half is redundant (a GetAtt implies it) and cfn-lint (so `sam validate --lint`) warns.
        self.template_options.metadata = {"cfn-lint": {"config": {"ignore_checks": ["W3005"]}}}
        log_retention = retention(config.log_retention_days)

        self.lake = LakeBucket(
            self,
            "Lake",
            prefix=config.lake_prefix,
            noncurrent_version_days=config.noncurrent_version_days,
            access_log_days=config.access_log_days,
        )

        self.secrets: dict[str, tuple[str, secretsmanager.ISecret]] = {}
        for key in config.secrets:
            secret = secretsmanager.Secret(
                self,
                f"{_construct_id(key)}Secret",
                secret_name=config.secret_name(key),
                description=f"{key} for the engine ({config.stage}): put its value (put-secret-value) after deploy.",
            )
            acknowledge(
                secret,
                "SMG4",
                "A third-party credential (a market-data API key, the Slack webhook URL): it is issued and rotated "
                "at the vendor's website, so no rotation Lambda could do it; operators put the new value.",
            )
            self.secrets[key] = (config.secret_name(key), secret)

        self.store = StoreTable(self, "Store", table_name=f"{config.prefix}-store")
        self.idempotency = IdempotencyTable(self, "Idempotency", table_name=f"{config.prefix}-idempotency")
        self.alerts = self._alerts_topic()

        definitions = {name: REPO_ROOT / "state_machines" / file for name, file in config.state_machines.items()}
        texts = {name: load_definition(path) for name, path in definitions.items()}
        # Physical names of the machines whose definitions invoke each function (its execution histories).
        invokers = {
            function: [
                config.state_machine_name(machine)
                for machine, text in texts.items()
                if function_arn_placeholder(function) in placeholders(text)
            ]
            for function in config.functions
        }
        image = QuantImage(directory=str(REPO_ROOT))
        self.light_layer: LightLayer | None = None
        resources = FunctionResources(
            lake=self.lake,
            image=image,
            light_layer=self._light_layer,
            secrets=self.secrets,
            store=self.store,
            idempotency=self.idempotency,
            alerts=self.alerts,
            environment={
                "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": config.log_level,
                "SPE_VALIDATION_POLICY": config.validation_policy,
            },
            log_retention=log_retention,
        )
        self.functions: dict[str, EngineFunction] = {
            name: EngineFunction(
                self,
                _construct_id(name),
                name=name,
                prefix=config.prefix,
                settings=settings,
                resources=resources,
                invoking_machines=invokers[name],
            )
            for name, settings in config.functions.items()
        }

        # The SageMaker role and image exist only if a deployed definition runs training jobs.
        self.training: SageMakerTraining | None = None
        if any(set(TRAINING_PLACEHOLDERS) & placeholders(text) for text in texts.values()):
            self.training = SageMakerTraining(
                self,
                "RegimeTraining",
                image=image,
                lake=self.lake,
                prefix=REGIME_TRAINING_PREFIX,
                job_prefix=REGIME_JOB_PREFIX,
            )
        machines = {name: config.state_machine_name(name) for name in config.state_machines}
        self.state_machines: dict[str, EngineStateMachine] = {
            name: EngineStateMachine(
                self,
                f"{_construct_id(name)}StateMachine",
                name=name,
                definition_file=path,
                prefix=config.prefix,
                functions={n: f.function for n, f in self.functions.items()},
                machines=machines,
                log_retention=log_retention,
                training=self.training,
            )
            for name, path in definitions.items()
        }
        # A machine that starts another references it by an ARN built from its name (no Ref, so no cycle);
        # deploy the started one first all the same.
        by_physical_name = {m.physical_name: m for m in self.state_machines.values()}
        for machine in self.state_machines.values():
            for started in machine.started.values():
                machine.state_machine.node.add_dependency(by_physical_name[started].state_machine)

        self.schedules = {s.name: self._schedule(s) for s in config.schedules}

        self.api: HttpApiEndpoint | None = None
        self.api_users: ApiUserPool | None = None
        if config.api is not None:
            issuer, self.api_users = token_issuer(self, config.api, prefix=config.prefix)
            self.api = HttpApiEndpoint(
                self,
                "HttpApi",
                prefix=config.prefix,
                settings=config.api,
                function=self.functions[config.api.function],
                authorizer=self.functions[config.api.authorizer],
                issuer=issuer,
                state_machines={name: config.state_machine_name(name) for name in config.api.state_machines},
                log_retention=log_retention,
            )

        cdk.CfnOutput(self, "LakeUri", value=self.lake.uri)
        cdk.CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic_arn)
        cdk.CfnOutput(
            self,
            "StoreTableName",
            value=self.store.table.table_name,
            description="The store of record (SPE_STORE_URI=dynamodb://<this>)",
        )
        cdk.CfnOutput(
            self,
            "IdempotencyTableName",
            value=self.idempotency.table.table_name,
            description="Powertools idempotency records (SPE_IDEMPOTENCY_TABLE)",
        )
        if self.training is not None:
            cdk.CfnOutput(self, "TrainingRoleArn", value=self.training.role.role_arn)
        for name, machine in self.state_machines.items():
            cdk.CfnOutput(self, f"{_construct_id(name)}StateMachineArn", value=machine.state_machine.state_machine_arn)
        if self.api is not None:
            cdk.CfnOutput(self, "ApiUrl", value=self.api.url, description="The HTTP API's base URL")
        if self.api_users is not None:
            cdk.CfnOutput(self, "ApiUserPoolId", value=self.api_users.user_pool.user_pool_id)
            cdk.CfnOutput(
                self,
                "ApiUserPoolClientId",
                value=self.api_users.client.user_pool_client_id,
                description="The app client: the audience (aud) of the ID tokens the API accepts",
            )

    def _light_layer(self) -> lambda_.ILayerVersion:
        """The zip functions' layer, made when the first one asks for it."""
        if self.light_layer is None:
            self.light_layer = LightLayer(self, "LightLayer")
        return self.light_layer.layer

    def _schedule(self, schedule: ScheduleSettings) -> events.Rule:
        body = dict(schedule.input)
        if schedule.state_machine:
            # What `spe schedule` adds locally (portfolio_engine.local.scheduler): every machine's request takes them.
            body.update(SCHEDULED_RUN_FIELDS)
        payload = events.RuleTargetInput.from_object(_event_input(body))
        if schedule.function:
            target: events.IRuleTarget = targets.LambdaFunction(
                self.functions[schedule.function].function,
                event=payload,
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(2),
            )
        else:
            assert schedule.state_machine is not None  # ScheduleSettings guarantees exactly one target
            target = targets.SfnStateMachine(
                self.state_machines[schedule.state_machine].state_machine,
                input=payload,
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(2),
            )
        return events.Rule(
            self,
            f"{_construct_id(schedule.name)}Schedule",
            rule_name=f"{self.config.prefix}-{schedule.name}",
            description=f"{schedule.expression} (UTC)",
            schedule=events.Schedule.expression(schedule.expression),
            enabled=schedule.enabled,
            targets=[target],
        )

    def _alerts_topic(self) -> sns.Topic:
        # A customer managed key, not aws/sns: CloudWatch alarms and EventBridge can only publish to
        # a topic whose key policy lets them use the key, which AWS managed keys never allow.
        key = kms.Key(
            self,
            "AlertsKey",
            description="Encrypts the engine's alerts topic",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        return sns.Topic(
            self,
            "Alerts",
            topic_name=f"{self.config.prefix}-alerts",
            display_name="Stochastic Portfolio Engine alerts",
            master_key=key,
            enforce_ssl=True,
        )
