"""A Standard state machine deployed from ``state_machines/<file>.asl.json`` as written.

The same JSON runs locally (moto's interpreter) and on AWS: Lambda tasks name their function as
``"Resource": "${<Name>FunctionArn}"`` and the placeholder is replaced here by the function's ARN
(``ingest_prices`` -> ``${IngestPricesFunctionArn}``). ``${<Name>StateMachineArn}`` is the ARN of another
machine of the stack (``rebalance`` -> ``${RebalanceStateMachineArn}``), built from its physical name so a
machine that starts another makes no dependency cycle. ``${TrainingImageUri}`` and ``${SageMakerRoleArn}``
come from :class:`SageMakerTraining`, whose jobs the machine may then start. A placeholder without a
value fails synth.

The role may invoke only the functions the definition names, start only the machines it names (and, for
``startExecution.sync``/``.sync:2``, describe and stop their executions and manage the EventBridge rule Step
Functions uses to follow them), and, with a Distributed Map, start, describe and stop its own child
workflow executions.

The definition is inlined into the template (``DefinitionString``) with the ARNs substituted at
synth. ``DefinitionBody.from_file`` would instead upload the file as a CDK asset
(``DefinitionS3Location``), which only ``cdk deploy`` can publish (not ``sam deploy``) and which
leaves nothing in the template to review or test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from spe_infra.constructs.arns import execution_arn, state_machine_arn
from spe_infra.constructs.training_job import TRAINING_PLACEHOLDERS, SageMakerTraining
from spe_infra.nag import acknowledge, iam5_resource

PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
#: Task resources that start another state machine: request-response, ``.sync`` (output as a JSON string),
#: ``.sync:2`` (output as JSON), ``.waitForTaskToken``.
START_EXECUTION = re.compile(r"^arn:aws:states:::states:startExecution(?P<pattern>\.sync(:2)?|\.waitForTaskToken)?$")
#: The managed rule Step Functions uses to follow a ``.sync`` child execution.
SYNC_EVENTS_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"


def function_arn_placeholder(function: str) -> str:
    """``ingest_prices`` -> ``IngestPricesFunctionArn`` (the name inside ``${...}``)."""
    return "".join(part.capitalize() for part in function.split("_")) + "FunctionArn"


def state_machine_arn_placeholder(machine: str) -> str:
    """``rebalance`` / ``retrain-regime`` -> ``RebalanceStateMachineArn`` / ``RetrainRegimeStateMachineArn``."""
    return "".join(part.capitalize() for part in machine.replace("-", "_").split("_")) + "StateMachineArn"


def all_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state of a definition, those inside Map processors and Parallel branches included."""
    for name, state in definition["States"].items():
        yield name, state
        for inner in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if inner:
                yield from all_states(inner)


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
    """A traced Standard state machine, logging ALL events, allowed to invoke only its own functions and machines.

    Parameters
    ----------
    name : str
        The machine's name in ``spe.stateMachines``; its physical name is ``<prefix>-<name>``.
    functions : mapping of str to IFunction
        Every function of the stack by folder name; the machine may invoke those its definition names.
    machines : mapping of str to str
        Every state machine of the stack: name -> physical name. A definition naming
        ``${<Name>StateMachineArn}`` gets that machine's ARN and may start it.
    """

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
        machines: Mapping[str, str] | None = None,
        substitutions: Mapping[str, str] | None = None,
        training: SageMakerTraining | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.physical_name = f"{prefix}-{name}"
        text = load_definition(definition_file)
        used = placeholders(text)
        by_placeholder = {function_arn_placeholder(n): fn for n, fn in functions.items()}
        machine_names = {state_machine_arn_placeholder(m): physical for m, physical in (machines or {}).items()}
        # A machine that names the training image or role runs SageMaker training jobs.
        runs_training = training is not None and bool(used & set(TRAINING_PLACEHOLDERS))
        extra = {**(training.substitutions if training is not None and runs_training else {}), **(substitutions or {})}
        unknown = sorted(used - set(by_placeholder) - set(machine_names) - set(extra))
        if unknown:
            raise ValueError(
                f"{definition_file.name} uses {', '.join('${' + u + '}' for u in unknown)} but the stack defines "
                f"no such function or state machine; add its folder name to spe.functions (or its name to "
                f"spe.stateMachines) in infra/cdk/cdk.json (functions: {sorted(functions)}; state machines: "
                f"{sorted(machines or {})})"
            )
        self.invoked = {p: fn for p, fn in by_placeholder.items() if p in used}
        #: Physical names of the machines this one starts, by placeholder.
        self.started = {p: physical for p, physical in machine_names.items() if p in used}
        machine_arns = {p: state_machine_arn(self, physical) for p, physical in self.started.items()}

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # The vendedlogs prefix keeps CloudWatch's resource policy for Step Functions small.
            log_group_name=f"/aws/vendedlogs/states/{self.physical_name}",
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.physical_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                substitute(text, {**{p: fn.function_arn for p, fn in self.invoked.items()}, **machine_arns, **extra})
            ),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        role = self.state_machine.role
        if self.invoked:
            # Tasks use the unqualified ARN, so no "<arn>:*" grant (as grant_invoke would add) is needed.
            self.state_machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[fn.function_arn for fn in self.invoked.values()],
                )
            )
        document = json.loads(text)
        for placeholder, synchronous in self._started_executions(document, definition_file).items():
            self._grant_start(role, self.started[placeholder], synchronous=synchronous)
        if self._has_distributed_map(document):
            self._grant_child_workflows(role)
        if training is not None and runs_training:
            training.grant_start(role)
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "CloudWatch Logs delivery (logs:*LogDelivery*, DescribeResourcePolicies/LogGroups) and X-Ray "
            "(PutTraceSegments, GetSamplingRules) actions support no resource-level permissions.",
        )

    @staticmethod
    def _started_executions(document: Mapping[str, Any], path: Path) -> dict[str, bool]:
        """``${XxxStateMachineArn}`` -> whether any task starting it waits for it (``.sync``/``.sync:2``)."""
        started: dict[str, bool] = {}
        for state_name, state in all_states(document):
            match = START_EXECUTION.match(str(state.get("Resource", "")))
            if state.get("Type") != "Task" or not match:
                continue
            target = PLACEHOLDER.fullmatch(str(state.get("Parameters", {}).get("StateMachineArn", "")))
            if target is None:
                raise ValueError(
                    f"{path.name}: state {state_name!r} starts a state machine that is not named as "
                    "${<Name>StateMachineArn} in Parameters.StateMachineArn; its role could not be scoped to it"
                )
            synchronous = (match["pattern"] or "").startswith(".sync")
            started[target[1]] = started.get(target[1], False) or synchronous
        return started

    @staticmethod
    def _has_distributed_map(document: Mapping[str, Any]) -> bool:
        return any(
            state.get("Type") == "Map"
            and state.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
            for _, state in all_states(document)
        )

    def _grant_start(self, role: iam.IRole, physical_name: str, *, synchronous: bool) -> None:
        """Start ``physical_name``; for ``.sync``, also follow its executions (AWS's nested-workflow policy)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn(self, physical_name)])
        )
        if not synchronous:
            return
        executions = execution_arn(self, physical_name)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution", "states:StopExecution"], resources=[executions])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    cdk.Stack.of(self).format_arn(service="events", resource="rule", resource_name=SYNC_EVENTS_RULE)
                ],
            )
        )
        acknowledge(
            role,
            iam5_resource(self, executions),
            f"Waits for the {physical_name} executions it starts (startExecution.sync): describes and stops "
            "them; their names are chosen per execution, not known in advance.",
        )

    def _grant_child_workflows(self, role: iam.IRole) -> None:
        """A Distributed Map runs its items as child workflow executions of this machine, under this role."""
        own_executions = execution_arn(self, self.physical_name)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[state_machine_arn(self, self.physical_name)]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"], resources=[own_executions]
            )
        )
        acknowledge(
            role,
            iam5_resource(self, own_executions),
            "The Distributed Map starts, describes and stops its child workflow executions, named by Step "
            "Functions per map run; only this machine's executions.",
        )
