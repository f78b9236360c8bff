"""A Standard state machine deployed from ``state_machines/<file>.asl.json`` as written.

The same JSON runs locally (moto's interpreter) and on AWS: Lambda tasks name their function as
``"Resource": "${<Name>FunctionArn}"`` and the placeholder is replaced here by the function's ARN
(``ingest_prices`` -> ``${IngestPricesFunctionArn}``). ``${TrainingImageUri}`` and ``${SageMakerRoleArn}``
come from :class:`SageMakerTraining`, whose jobs the machine may then start. A placeholder without a
value fails synth.

The definition is inlined into the template (``DefinitionString``) with the ARNs substituted at
synth. ``DefinitionBody.from_file`` would instead upload the file as a CDK asset
(``DefinitionS3Location``), which only ``cdk deploy`` can publish (not ``sam deploy``) and which
leaves nothing in the template to review or test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from spe_infra.constructs.training_job import TRAINING_PLACEHOLDERS, SageMakerTraining
from spe_infra.nag import acknowledge

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def function_arn_placeholder(function: str) -> str:
    """``ingest_prices`` -> ``IngestPricesFunctionArn`` (the name inside ``${...}``)."""
    return "".join(part.capitalize() for part in function.split("_")) + "FunctionArn"


def placeholders(definition: str) -> set[str]:
    """Names of every ``${...}`` placeholder in a definition's text."""
    return set(PLACEHOLDER.findall(definition))


def substitute(definition: str, values: Mapping[str, str]) -> str:
    """Replace each ``${name}`` by ``values[name]`` (CDK tokens become ``Fn::Join`` parts at synth)."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), definition)


def load_definition(path: Path) -> str:
    """Read and check a state machine definition.

    Raises
    ------
    ValueError
        If the file is not JSON or is not an Amazon States Language document (no StartAt/States).
    """
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or "StartAt" not in document or "States" not in document:
        raise ValueError(f"{path} is not a state machine definition: it needs 'StartAt' and 'States'")
    if document["StartAt"] not in document["States"]:
        raise ValueError(f"{path}: StartAt names {document['StartAt']!r}, which is not in States")
    return text


class EngineStateMachine(Construct):
    """A traced Standard state machine, logging ALL events, allowed to invoke only its own functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        definition_file: Path,
        prefix: str,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
        substitutions: Mapping[str, str] | None = None,
        training: SageMakerTraining | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        text = load_definition(definition_file)
        by_placeholder = {function_arn_placeholder(n): fn for n, fn in functions.items()}
        # A machine that names the training image or role runs SageMaker training jobs.
        runs_training = training is not None and bool(placeholders(text) & set(TRAINING_PLACEHOLDERS))
        extra = {**(training.substitutions if training is not None and runs_training else {}), **(substitutions or {})}
        unknown = sorted(placeholders(text) - set(by_placeholder) - set(extra))
        if unknown:
            raise ValueError(
                f"{definition_file.name} uses {', '.join('${' + u + '}' for u in unknown)} but the stack defines "
                f"no such function; add its folder name to spe.functions in infra/cdk/cdk.json "
                f"(defined: {sorted(functions)})"
            )
        self.invoked = {p: fn for p, fn in by_placeholder.items() if p in placeholders(text)}

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # The vendedlogs prefix keeps CloudWatch's resource policy for Step Functions small.
            log_group_name=f"/aws/vendedlogs/states/{prefix}-{name}",
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{prefix}-{name}",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                substitute(text, {**{p: fn.function_arn for p, fn in self.invoked.items()}, **extra})
            ),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        if self.invoked:
            # Tasks use the unqualified ARN, so no "<arn>:*" grant (as grant_invoke would add) is needed.
            self.state_machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[fn.function_arn for fn in self.invoked.values()],
                )
            )
        if training is not None and runs_training:
            training.grant_start(self.state_machine.role)
        acknowledge(
            self.state_machine.role,
            "IAM5[Resource::*]",
            "CloudWatch Logs delivery (logs:*LogDelivery*, DescribeResourcePolicies/LogGroups) and X-Ray "
            "(PutTraceSegments, GetSamplingRules) actions support no resource-level permissions.",
        )
