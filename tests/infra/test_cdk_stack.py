"""The CDK app as committed: synthesized once (offline, no Docker), then its template inspected.

Given the committed ``infra/cdk/cdk.json`` (stage ``dev``) and cdk-nag's AwsSolutions pack,
when the app is synthesized, then the template has the properties below and cdk-nag reports nothing
that is not acknowledged with a reason. Asset bundling (the light layer, built with uv from the network)
is skipped: the template is the same, only the layer's files are not built.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed: uv sync --extra cdk")
pytest.importorskip("cdk_nag", reason="cdk-nag is not installed: uv sync --extra cdk")

from aws_cdk.assertions import Match, Template

from spe_infra.app import build_app, stack_id
from spe_infra.config import ConfigError, EngineConfig
from spe_infra.constructs import (
    function_arn_placeholder,
    handler_for,
    placeholders,
    state_machine_arn_placeholder,
)
from spe_infra.constructs.engine_state_machine import load_definition
from spe_infra.constructs.tables import STORE_INDEXES
from spe_infra.constructs.training_job import REGIME_JOB_PREFIX, REGIME_TRAINING_PREFIX, TRAINING_PLACEHOLDERS
from spe_infra.constructs.zip_function import library_modules, stage_function_code
from spe_infra.stack import EngineStack

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_MACHINES = REPO_ROOT / "state_machines"
LAKE_ACTIONS = {
    "none": set(),
    "read": {"s3:GetObject"},
    "read_write": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
}
STORE_READ = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"}
STORE_WRITE = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}
IDEMPOTENCY = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
#: The machines that end in CommitRun / RecordFailure (and start with StartRun).
RUN_MACHINES = ("rebalance", "retrain-regime", "backtest")


@dataclass
class Synth:
    stack: EngineStack
    config: EngineConfig
    outdir: Path
    template: dict[str, Any]
    error: str | None

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == type_}

    def function_id(self, name: str) -> str:
        """Logical id of the Lambda function built from ``functions/<name>``."""
        wanted = f"{self.config.prefix}-{name.replace('_', '-')}"
        (logical_id,) = [
            k for k, v in self.of_type("AWS::Lambda::Function").items() if v["Properties"]["FunctionName"] == wanted
        ]
        return logical_id

    def single(self, type_: str, **properties: Any) -> tuple[str, dict[str, Any]]:
        matches = [
            (k, v)
            for k, v in self.of_type(type_).items()
            if all(v["Properties"].get(p) == value for p, value in properties.items())
        ]
        assert len(matches) == 1, f"expected one {type_} with {properties}, found {[k for k, _ in matches]}"
        return matches[0]

    def statements_of_role(self, role_id: str) -> list[dict[str, Any]]:
        statements = []
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"]["Roles"]:
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements

    def role_of(self, function: str) -> str:
        return self.resources[self.function_id(function)]["Properties"]["Role"]["Fn::GetAtt"][0]

    def grants_of_role(self, role_id: str, prefix: str) -> set[tuple[str, str]]:
        """(action, resource) pairs of a role's Allow statements whose actions start with ``prefix``."""
        grants = set()
        for statement in self.statements_of_role(role_id):
            for action in _as_list(statement["Action"]):
                if action.startswith(prefix):
                    assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
                    grants |= {(action, _flatten(r)) for r in _as_list(statement["Resource"])}
        return grants


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    # Skip bundling: building the light layer downloads wheels (uv); the template does not depend on it.
    app, stack = build_app(outdir=outdir, context={"aws:cdk:bundling-stacks": []})
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail synth after the templates are written
        error = str(exc)
    template = json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
    return Synth(stack=stack, config=stack.config, outdir=outdir, template=template, error=error)


def _flatten(value: Any) -> str:
    """Render a CloudFormation string expression with ``<LogicalId.Attr>`` / ``<Ref>`` for references."""
    if isinstance(value, str):
        return value
    if "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${", "<").replace("}", ">")
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_flatten(p) for p in parts)
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    raise AssertionError(f"unexpected expression {value}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _construct_id(name: str) -> str:
    """``ingest_prices`` / ``retrain-regime`` -> ``IngestPrices`` / ``RetrainRegime`` (as the stack names them)."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _machine_role(synth: Synth, machine: str) -> str:
    _, resource = synth.single("AWS::StepFunctions::StateMachine", StateMachineName=f"spe-dev-{machine}")
    return resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]


def _training_role(synth: Synth) -> str:
    (role_id,) = [
        k
        for k, v in synth.of_type("AWS::IAM::Role").items()
        if v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "sagemaker.amazonaws.com"}
    ]
    return role_id


# --- state machines -------------------------------------------------------------------------------


def test_every_state_machine_file_is_valid_and_its_function_placeholders_are_functions_of_the_stack(
    synth: Synth,
) -> None:
    files = sorted(STATE_MACHINES.glob("*.json"))
    assert files, "no state machine definitions under state_machines/"
    defined = {function_arn_placeholder(name): name for name in synth.config.functions}
    machines = {state_machine_arn_placeholder(name) for name in synth.config.state_machines}
    for path in files:
        text = load_definition(path)  # raises on invalid JSON or a document without StartAt/States
        used = placeholders(text)
        # The other placeholders: the training image and role (the stack's SageMakerTraining) and other machines.
        assert synth.stack.training is not None or not used & set(TRAINING_PLACEHOLDERS)
        unknown = sorted(p for p in used if p not in defined and p not in TRAINING_PLACEHOLDERS and p not in machines)
        assert not unknown, f"{path.name} uses ${{{unknown}}}; add the function folder to spe.functions in cdk.json"
        for placeholder in used - set(TRAINING_PLACEHOLDERS) - machines:
            synth.function_id(defined[placeholder])  # the function really is in the template


def test_every_state_machine_file_is_deployed(synth: Synth) -> None:
    deployed = set(synth.config.state_machines.values())
    files = {p.name for p in STATE_MACHINES.glob("*.json")}
    assert files <= deployed, f"not deployed: {sorted(files - deployed)}; add each to spe.stateMachines in cdk.json"


def _all_states(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every state of a definition, those inside Map iterators and Parallel branches included."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, state in definition["States"].items():
        found.append((name, state))
        for inner in (state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])):
            if inner:
                found.extend(_all_states(inner))
    return found


def _machine_arn(synth: Synth, machine: str) -> str:
    """A machine's ARN as a definition or a policy renders it: built from its physical name, not a Ref."""
    return f"arn:aws:states:{synth.config.region}:<AWS::AccountId>:stateMachine:spe-dev-{machine}"


def _executions(synth: Synth, machine: str) -> str:
    return f"arn:aws:states:{synth.config.region}:<AWS::AccountId>:execution:spe-dev-{machine}:*"


@pytest.mark.parametrize("machine", ["rebalance", "retrain-regime", "backtest", "rebalance-all"])
def test_state_machine_definition_is_the_file_with_function_arns_substituted(synth: Synth, machine: str) -> None:
    _, resource = synth.single("AWS::StepFunctions::StateMachine", StateMachineName=f"spe-dev-{machine}")
    expression = resource["Properties"]["DefinitionString"]
    literal_parts = [p for p in expression["Fn::Join"][1] if isinstance(p, str)]
    assert not any("${" in part for part in literal_parts), "a ${...} placeholder was left unsubstituted"

    deployed = json.loads(_flatten(expression))
    original = json.loads((STATE_MACHINES / synth.config.state_machines[machine]).read_text())
    expected_resources = {}
    for state_name, state in _all_states(original):
        match = re.fullmatch(r"\$\{(\w+)FunctionArn\}", state.get("Resource", ""))
        if match:
            function = next(
                n for n in synth.config.functions if function_arn_placeholder(n) == f"{match[1]}FunctionArn"
            )
            expected_resources[state_name] = f"<{synth.function_id(function)}.Arn>"
            state["Resource"] = expected_resources[state_name]
    assert expected_resources, f"{machine} has no Lambda task"
    deployed_states = dict(_all_states(deployed))
    assert {s: deployed_states[s]["Resource"] for s in expected_resources} == expected_resources
    for state in original["States"].values():  # the training job's image and execution role
        spec = state.get("Parameters", {}).get("AlgorithmSpecification")
        if spec:
            spec["TrainingImage"] = _image_uri(synth)
            state["Parameters"]["RoleArn"] = f"<{_training_role(synth)}.Arn>"
    for _, state in _all_states(original):  # machines it starts: by ARN, built from the started machine's name
        match = re.fullmatch(r"\$\{(\w+)StateMachineArn\}", state.get("Parameters", {}).get("StateMachineArn", ""))
        if match:
            (started,) = [m for m in synth.config.state_machines if state_machine_arn_placeholder(m) == match[0][2:-1]]
            state["Parameters"]["StateMachineArn"] = _machine_arn(synth, started)
    assert deployed == original  # everything else is the file, verbatim


def _image_uri(synth: Synth) -> str:
    """The quant image asset's URI, as the template renders it (the functions' image, by its hash)."""
    assets = json.loads((synth.outdir / f"{synth.stack.artifact_id}.assets.json").read_text())
    (image_hash,) = assets["dockerImages"]
    return (
        f"<AWS::AccountId>.dkr.ecr.{synth.config.region}.<AWS::URLSuffix>/"
        f"cdk-hnb659fds-container-assets-<AWS::AccountId>-{synth.config.region}:{image_hash}"
    )


def test_rebalance_is_a_traced_standard_machine_logging_all_events(synth: Synth) -> None:
    _, resource = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance")
    props = resource["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    (log_group_id,) = [
        d["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        for d in props["LoggingConfiguration"]["Destinations"]
    ]
    log_group = synth.resources[log_group_id]["Properties"]
    assert log_group["LogGroupName"].startswith("/aws/vendedlogs/states/")
    assert log_group["RetentionInDays"] == synth.config.log_retention_days


def _functions_of(definition: str) -> list[str]:
    """The function folders a definition invokes (its ``${XxxFunctionArn}`` placeholders)."""
    text = (REPO_ROOT / "state_machines" / definition).read_text()
    camel = set(re.findall(r"\$\{(\w+)FunctionArn\}", text))
    return sorted(re.sub(r"(?<!^)(?=[A-Z])", "_", c).lower() for c in camel)


def test_rebalance_role_may_invoke_exactly_the_functions_of_its_definition(synth: Synth) -> None:
    names = _functions_of("rebalance.asl.json")
    assert names == [
        "aggregate_risk",
        "build_features",
        "check_limits",
        "commit_run",
        "detect_regime",
        "ingest_prices",
        "optimize_portfolio",
        "plan_risk",
        "propose_hedge",
        "record_failure",
        "send_alerts",
        "simulate_risk_shard",
        "start_run",
        "stress_test",
        "validate_prices",
    ]
    _, resource = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance")
    role_id = resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    invoke = [s for s in synth.statements_of_role(role_id) if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert len(invoke) == 1
    assert sorted(_flatten(r) for r in _as_list(invoke[0]["Resource"])) == sorted(
        f"<{synth.function_id(n)}.Arn>" for n in names
    )


def test_backtest_role_may_invoke_exactly_its_six_functions(synth: Synth) -> None:
    names = _functions_of("backtest.asl.json")
    assert names == [
        "aggregate_backtest",
        "commit_run",
        "plan_backtest",
        "record_failure",
        "run_backtest_window",
        "start_run",
    ]
    role_id = _machine_role(synth, "backtest")
    invoke = [s for s in synth.statements_of_role(role_id) if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert len(invoke) == 1
    assert sorted(_flatten(r) for r in _as_list(invoke[0]["Resource"])) == sorted(
        f"<{synth.function_id(n)}.Arn>" for n in names
    )
    assert synth.config.functions["run_backtest_window"].memory_mb == 3008
    assert synth.config.functions["run_backtest_window"].timeout_seconds == 900


def test_retrain_role_invokes_its_functions_and_starts_only_regime_jobs_as_the_training_role(synth: Synth) -> None:
    role_id = _machine_role(synth, "retrain-regime")
    statements = synth.statements_of_role(role_id)
    by_action = {a: s for s in statements for a in _as_list(s["Action"])}
    names = ("commit_run", "prepare_regime_training", "record_failure", "register_regime_model", "start_run")
    assert _functions_of("retrain_regime.asl.json") == list(names)
    assert sorted(_flatten(r) for r in _as_list(by_action["lambda:InvokeFunction"]["Resource"])) == sorted(
        f"<{synth.function_id(n)}.Arn>" for n in names
    )
    jobs = by_action["sagemaker:CreateTrainingJob"]
    assert jobs is by_action["sagemaker:DescribeTrainingJob"] and set(_as_list(jobs["Action"])) == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
    }
    region = synth.config.region
    assert _flatten(jobs["Resource"]) == f"arn:aws:sagemaker:{region}:<AWS::AccountId>:training-job/regime-*"
    assert by_action["iam:PassRole"] == {
        "Action": "iam:PassRole",
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [_training_role(synth), "Arn"]},
    }
    sagemaker_or_iam = {a for a in by_action if a.startswith(("sagemaker:", "iam:"))}
    assert sagemaker_or_iam == {"sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "iam:PassRole"}
    # the rebalance machine starts no training job
    assert not [
        a for s in synth.statements_of_role(_machine_role(synth, "rebalance")) for a in _as_list(s["Action"])
        if a.startswith(("sagemaker:", "iam:"))
    ]  # fmt: skip


def test_training_role_reads_channels_writes_models_pulls_the_image_and_logs_nothing_more(synth: Synth) -> None:
    role_id = _training_role(synth)
    role = synth.resources[role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    bucket, region, base = _lake_bucket_id(synth), synth.config.region, f"lake/{REGIME_TRAINING_PREFIX}"
    grants = {
        (frozenset(_as_list(s["Action"])), _flatten(s["Resource"]), json.dumps(s.get("Condition"), sort_keys=True))
        for s in synth.statements_of_role(role_id)
    }
    repository = (
        f"arn:aws:ecr:{region}:<AWS::AccountId>:repository/cdk-hnb659fds-container-assets-<AWS::AccountId>-{region}"
    )
    pull = {"ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
    logs = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"}
    assert grants == {
        (frozenset({"s3:GetObject"}), f"<{bucket}.Arn>/{base}/*/train/*", "null"),
        (frozenset({"s3:PutObject", "s3:AbortMultipartUpload"}), f"<{bucket}.Arn>/{base}/*/output/*", "null"),
        (frozenset({"s3:ListBucket"}), f"<{bucket}.Arn>", json.dumps({"StringLike": {"s3:prefix": [f"{base}/*"]}})),
        (frozenset(pull), repository, "null"),
        (frozenset({"ecr:GetAuthorizationToken"}), "*", "null"),
        (frozenset(logs), f"arn:aws:logs:{region}:<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs:*", "null"),
        (
            frozenset({"cloudwatch:PutMetricData"}),
            "*",
            json.dumps({"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}}),
        ),
    }


def test_rebalance_all_starts_and_follows_rebalance_runs_from_a_distributed_map_and_may_do_nothing_else(
    synth: Synth,
) -> None:
    definition = json.loads((STATE_MACHINES / "rebalance_all.asl.json").read_text())
    states = dict(_all_states(definition))
    assert states["RebalanceEach"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert states["Rebalance"]["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    _, machine = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance-all")
    rebalance_id, _ = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance")
    assert rebalance_id in machine["DependsOn"]  # the machine it starts is deployed first
    role_id = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    grants = {(a, r) for a, r in synth.grants_of_role(role_id, "") if r != "*"}  # "*": log delivery and X-Ray
    region = synth.config.region
    # AWS's policies for startExecution.sync:2 (the rebalance runs) and for a Distributed Map (its child workflows)
    assert grants == {
        ("lambda:InvokeFunction", f"<{synth.function_id('list_portfolios')}.Arn>"),
        ("states:StartExecution", _machine_arn(synth, "rebalance")),
        ("states:DescribeExecution", _executions(synth, "rebalance")),
        ("states:StopExecution", _executions(synth, "rebalance")),
        *{
            (
                action,
                f"arn:aws:events:{region}:<AWS::AccountId>:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
            )
            for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")
        },
        ("states:StartExecution", _machine_arn(synth, "rebalance-all")),
        ("states:DescribeExecution", _executions(synth, "rebalance-all")),
        ("states:StopExecution", _executions(synth, "rebalance-all")),
    }
    assert {a for a, r in synth.grants_of_role(role_id, "") if r == "*"} <= {
        "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:UpdateLogDelivery",
        "xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments",
    }  # fmt: skip


def test_only_rebalance_all_may_start_executions(synth: Synth) -> None:
    for name in synth.config.state_machines:
        starts = {
            r for a, r in synth.grants_of_role(_machine_role(synth, name), "states:") if a == "states:StartExecution"
        }
        assert bool(starts) == (name == "rebalance-all"), name


def test_training_prefixes_agree_with_the_library() -> None:
    # infra never imports the library; the library's PrepareRegimeTraining writes and names what IAM allows.
    training = pytest.importorskip("portfolio_engine.contracts.training")
    assert (REGIME_TRAINING_PREFIX, REGIME_JOB_PREFIX) == (training.TRAINING_PREFIX, training.TRAINING_JOB_PREFIX)
    assert training.training_job_name("market", "x").startswith(REGIME_JOB_PREFIX)


# --- functions ------------------------------------------------------------------------------------


def _zip_functions(synth: Synth) -> set[str]:
    return {name for name, settings in synth.config.functions.items() if settings.packaging == "zip"}


def test_each_function_runs_its_handler_traced_and_sized_by_config(synth: Synth) -> None:
    template = Template.from_json(synth.template)
    assert _zip_functions(synth) == {"notify_slack", "api_authorizer"}
    for name, settings in synth.config.functions.items():
        variables = {
            "SPE_VALIDATION_POLICY": synth.config.validation_policy,
            "SPE_DATA_DIR": "/tmp/spe",
            "POWERTOOLS_SERVICE_NAME": f"spe-{name.replace('_', '-')}",
            "POWERTOOLS_METRICS_NAMESPACE": synth.config.metrics_namespace,
        }
        if settings.lake_access != "none":
            variables["SPE_LAKE_URI"] = {"Fn::Join": ["", ["s3://", {"Ref": Match.any_value()}, "/lake"]]}
        packaging = (
            {"PackageType": "Image", "ImageConfig": {"Command": [handler_for(name)]}}
            if settings.packaging == "image"
            else {"Runtime": "python3.11", "Handler": handler_for(name), "Layers": [{"Ref": Match.any_value()}]}
        )
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "FunctionName": f"spe-dev-{name.replace('_', '-')}",
                **packaging,
                "TracingConfig": {"Mode": "Active"},
                "MemorySize": settings.memory_mb,
                "Timeout": settings.timeout_seconds,
                "Environment": {"Variables": Match.object_like(variables)},
            },
        )
        env = synth.resources[synth.function_id(name)]["Properties"]["Environment"]["Variables"]
        assert ("SPE_LAKE_URI" in env) == (settings.lake_access != "none"), name
    assert synth.config.functions["ingest_prices"].timeout_seconds == 600  # cdk.json override reached the template
    images = {
        json.dumps(synth.resources[synth.function_id(name)]["Properties"]["Code"])
        for name in synth.config.functions
        if name not in _zip_functions(synth)
    }
    assert len(images) == 1, "all quant functions share one image"


def test_the_run_lifecycle_functions_are_sized_as_configured(synth: Synth) -> None:
    sizes = {
        name: (synth.config.functions[name].memory_mb, synth.config.functions[name].timeout_seconds)
        for name in ("start_run", "commit_run", "record_failure", "list_portfolios", "notify_slack")
    }
    assert sizes == {
        "start_run": (1024, 60),
        "commit_run": (1024, 120),
        "record_failure": (1024, 60),
        "list_portfolios": (1024, 60),
        "notify_slack": (256, 30),
    }


def test_functions_log_to_their_own_log_group_with_the_configured_retention(synth: Synth) -> None:
    for name in synth.config.functions:
        function = synth.resources[synth.function_id(name)]["Properties"]
        log_group = synth.resources[function["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert log_group["LogGroupName"] == f"/aws/lambda/{function['FunctionName']}"
        assert log_group["RetentionInDays"] == synth.config.log_retention_days


def test_handler_of_every_function_exists(synth: Synth) -> None:
    for name in synth.config.functions:
        app = REPO_ROOT / "functions" / name / "app.py"
        assert app.is_file(), f"{app} is missing; the image command is {handler_for(name)}"
        names = {n.name for n in ast.parse(app.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert "lambda_handler" in names, f"{app} defines no lambda_handler"


def test_image_asset_stages_only_what_the_dockerfile_needs(synth: Synth) -> None:
    assets = json.loads((synth.outdir / f"{synth.stack.artifact_id}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["dockerFile"] == "layers/quant-image/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    staged = synth.outdir / image["source"]["directory"]
    top = {p.name for p in staged.iterdir()}
    assert {"pyproject.toml", "uv.lock", "README.md", "shared", "layers"} <= top
    assert not top & {".venv", ".git", "infra", "tests", ".tools", "benchmarks"}, top
    assert (staged / "layers" / "quant-image" / "Dockerfile").is_file()
    assert not list(staged.rglob("__pycache__"))


# --- lake bucket ----------------------------------------------------------------------------------


def _lake_bucket_id(synth: Synth) -> str:
    (bucket_id,) = [k for k, v in synth.of_type("AWS::S3::Bucket").items() if "LoggingConfiguration" in v["Properties"]]
    return bucket_id


def test_lake_bucket_is_encrypted_versioned_private_and_access_logged(synth: Synth) -> None:
    bucket_id = _lake_bucket_id(synth)
    props = synth.resources[bucket_id]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    logs_bucket = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert logs_bucket != bucket_id and logs_bucket in synth.of_type("AWS::S3::Bucket")
    assert synth.resources[bucket_id]["DeletionPolicy"] == "Retain"


@pytest.mark.parametrize("which", ["lake", "access logs"])
def test_bucket_policy_denies_every_request_without_tls(synth: Synth, which: str) -> None:
    lake = _lake_bucket_id(synth)
    bucket_id = (
        lake
        if which == "lake"
        else synth.resources[lake]["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    )
    (policy,) = [
        p for p in synth.of_type("AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    deny = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(deny) == 1
    assert deny[0]["Action"] == "s3:*" and deny[0]["Principal"] == {"AWS": "*"}
    assert sorted(_flatten(r) for r in deny[0]["Resource"]) == [f"<{bucket_id}.Arn>", f"<{bucket_id}.Arn>/*"]


# --- IAM ------------------------------------------------------------------------------------------


def test_functions_reach_only_the_lake_prefix_of_the_lake_bucket(synth: Synth) -> None:
    bucket = _lake_bucket_id(synth)
    for name, settings in synth.config.functions.items():
        role_id = synth.resources[synth.function_id(name)]["Properties"]["Role"]["Fn::GetAtt"][0]
        assert "ManagedPolicyArns" not in synth.resources[role_id]["Properties"], f"{name}: no AWS managed policies"
        s3 = [s for s in synth.statements_of_role(role_id) if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
        grants = {_flatten(r): set(_as_list(s["Action"])) for s in s3 for r in _as_list(s["Resource"])}
        expected = {
            f"<{bucket}.Arn>/{synth.config.lake_prefix}/*": LAKE_ACTIONS[settings.lake_access],
            f"<{bucket}.Arn>": {"s3:ListBucket"},
        }
        assert grants == (expected if settings.lake_access != "none" else {}), name
        assert all(s["Effect"] == "Allow" and "Condition" not in s for s in s3)


def test_functions_outside_the_data_pipeline_do_not_touch_the_lake(synth: Synth) -> None:
    no_lake = {n for n, settings in synth.config.functions.items() if settings.lake_access == "none"}
    assert no_lake == {"start_run", "record_failure", "list_portfolios", "notify_slack", "api_authorizer"}
    assert synth.config.functions["commit_run"].lake_access == "read"  # it reads the run's artefacts
    assert synth.config.functions["api"].lake_access == "read"  # results and holdings routes


def test_no_policy_grants_s3_on_any_other_resource(synth: Synth) -> None:
    bucket = _lake_bucket_id(synth)
    for policy_id, policy in synth.of_type("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("s3:") or a == "*" for a in _as_list(statement["Action"])):
                for resource in _as_list(statement["Resource"]):
                    assert _flatten(resource).startswith(f"<{bucket}.Arn>"), (policy_id, resource)


def test_each_secret_is_read_only_by_the_functions_that_list_it(synth: Synth) -> None:
    secrets = synth.of_type("AWS::SecretsManager::Secret")
    names = {v["Properties"]["Name"]: k for k, v in secrets.items()}
    assert set(names) == {
        "spe/dev/alpha-vantage-api-key",
        "spe/dev/nasdaq-data-link-api-key",
        "spe/dev/slack-webhook-url",
    }
    readers = {
        "ingest_prices": {
            "SPE_ALPHA_VANTAGE_SECRET_ID": "spe/dev/alpha-vantage-api-key",
            "SPE_NASDAQ_DATA_LINK_SECRET_ID": "spe/dev/nasdaq-data-link-api-key",
        },
        # the Slack webhook URL, which operators put after deploy (settings.slack_webhook_secret_id)
        "notify_slack": {"SPE_SLACK_WEBHOOK_SECRET_ID": "spe/dev/slack-webhook-url"},
    }
    for name in synth.config.functions:
        function = synth.resources[synth.function_id(name)]["Properties"]
        readable = {
            _flatten(r)
            for s in synth.statements_of_role(function["Role"]["Fn::GetAtt"][0])
            if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
            for r in _as_list(s["Resource"])
        }
        env = {k: v for k, v in function["Environment"]["Variables"].items() if k.endswith("_SECRET_ID")}
        assert env == readers.get(name, {}), name
        assert readable == {f"<{names[secret]}>" for secret in env.values()}, name


# --- schedules ------------------------------------------------------------------------------------


def _rule(synth: Synth, name: str) -> dict[str, Any]:
    return synth.single("AWS::Events::Rule", Name=f"spe-dev-{name}")[1]["Properties"]


def test_ingest_runs_on_weekdays_after_the_us_close(synth: Synth) -> None:
    rule = _rule(synth, "ingest-after-close")
    assert rule["ScheduleExpression"] == "cron(30 21 ? * MON-FRI *)"
    minute, hour, day_of_month, month, day_of_week, year = rule["ScheduleExpression"][5:-1].split()
    # 16:00 New York is 21:00 UTC in winter and 20:00 UTC in summer: 21:30 UTC is after the close all year.
    assert int(hour) * 60 + int(minute) > 21 * 60
    assert (day_of_month, month, day_of_week, year) == ("?", "*", "MON-FRI", "*")
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synth.function_id("ingest_prices"), "Arn"]}
    assert target["InputTransformer"]["InputPathsMap"] == {"id": "$.id"}
    Template.from_json(synth.template).has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [synth.function_id("ingest_prices"), "Arn"]},
            "Principal": "events.amazonaws.com",
        },
    )


def test_scheduled_ingest_event_is_a_valid_ingest_input(synth: Synth) -> None:
    contracts = pytest.importorskip("portfolio_engine.contracts")
    template = _rule(synth, "ingest-after-close")["Targets"][0]["InputTransformer"]["InputTemplate"]
    event = json.loads(template.replace("<id>", json.dumps(str(uuid.uuid4()))))
    contracts.IngestInput.model_validate(event)


def _scheduled_input(target: dict[str, Any], fire_time: str) -> str:
    """The input EventBridge sends a target at ``fire_time``: its input template with the event's fields."""
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"time": "$.time"}
    return transformer["InputTemplate"].replace("<time>", json.dumps(fire_time))


def test_rebalance_all_starts_after_ingest_with_a_valid_batch_request(synth: Synth) -> None:
    rule = _rule(synth, "rebalance-after-close")
    assert rule["ScheduleExpression"] == "cron(0 22 ? * MON-FRI *)"
    ingest_minute, ingest_hour = _rule(synth, "ingest-after-close")["ScheduleExpression"][5:-1].split()[:2]
    assert int(ingest_hour) * 60 + int(ingest_minute) < 22 * 60
    (target,) = rule["Targets"]
    machine_id, _ = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance-all")
    assert target["Arn"] == {"Ref": machine_id}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert synth.statements_of_role(role_id) == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine_id}}
    ]
    body = json.loads(_scheduled_input(target, "2024-01-09T22:00:00Z"))
    assert body == {"trigger": "schedule", "scheduled_for": "2024-01-09T22:00:00Z"}
    runs = pytest.importorskip("portfolio_engine.contracts.runs")
    request = runs.RebalanceAllRequest.model_validate(body)  # extra fields are forbidden
    assert request.trigger == "schedule" and request.scheduled_for is not None


def test_the_regime_model_is_retrained_weekly_on_the_latest_features(synth: Synth) -> None:
    rule = _rule(synth, "retrain-regime-weekly")
    assert rule["ScheduleExpression"] == "cron(0 6 ? * SAT *)" and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    machine_id, _ = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-retrain-regime")
    assert target["Arn"] == {"Ref": machine_id}
    assert synth.statements_of_role(target["RoleArn"]["Fn::GetAtt"][0]) == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine_id}}
    ]
    training = pytest.importorskip("portfolio_engine.contracts.training")
    request = training.RetrainRegimeRequest.model_validate_json(_scheduled_input(target, "2024-01-06T06:00:00Z"))
    assert request.feature_key is None  # the latest feature set holding the model's symbol
    assert request.trigger == "schedule"


def test_every_machine_schedule_says_it_was_scheduled_and_when_as_the_local_scheduler_does(synth: Synth) -> None:
    for schedule in synth.config.schedules:
        if schedule.state_machine:
            body = json.loads(_scheduled_input(_rule(synth, schedule.name)["Targets"][0], "2024-01-08T22:00:00Z"))
            assert body["trigger"] == "schedule" and body["scheduled_for"] == "2024-01-08T22:00:00Z", schedule.name


# --- alerts ---------------------------------------------------------------------------------------


def test_alerts_topic_is_encrypted_with_a_rotating_key_and_requires_tls(synth: Synth) -> None:
    topic_id, topic = synth.single("AWS::SNS::Topic", TopicName="spe-dev-alerts")
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert synth.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    Template.from_json(synth.template).has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "sns:Publish",
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


# --- cdk-nag --------------------------------------------------------------------------------------


def _nag_report(synth: Synth) -> dict[str, Any]:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    return nag


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(synth: Synth) -> None:
    nag = _nag_report(synth)
    findings = [
        f"{v['severity']} {v['ruleName']}: {v['description']} at {c['constructPath']}"
        for v in nag["violations"]
        for c in v["violatingConstructs"]
    ]
    assert findings == [], "\n".join(findings)
    assert nag["conclusion"] == "success"
    assert synth.error is None


def test_cdk_nag_acknowledgements_are_exactly_the_deliberate_ones_and_all_are_used(synth: Synth) -> None:
    nag = _nag_report(synth)
    suppressed = {
        (v["acknowledgedId"].removeprefix("AwsSolutions::"), c["constructPath"].split("/")[1])
        for v in nag["suppressedViolations"]
        for c in v["violatingConstructs"]
    }
    bucket = _lake_bucket_id(synth)
    functions = {_construct_id(name) for name in synth.config.functions}
    assert {"PrepareRegimeTraining", "RegisterRegimeModel", "CommitRun", "NotifySlack"} <= functions
    in_lake = {_construct_id(n) for n, settings in synth.config.functions.items() if settings.lake_access != "none"}
    region, training = synth.config.region, f"lake/{REGIME_TRAINING_PREFIX}"
    executions = {m: f"AwsSolutions-IAM5[Resource::{_executions(synth, m)}]" for m in synth.config.state_machines}
    assert suppressed == {
        ("AwsSolutions-SMG4", "AlphaVantageSecret"),
        ("AwsSolutions-SMG4", "NasdaqDataLinkSecret"),
        # the Slack webhook URL, issued (and rotated) by Slack
        ("AwsSolutions-SMG4", "SlackWebhookSecret"),
        # idempotency records expire within days: nothing for point-in-time recovery to protect
        ("AwsSolutions-DDB3", "Idempotency"),
        # the zip functions run the lock's Python (3.11), which their layer's wheels are built for
        ("AwsSolutions-L1", "NotifySlack"),
        ("AwsSolutions-L1", "ApiAuthorizer"),
        # the API's public routes (health, version, the OpenAPI document and its viewer)
        ("AwsSolutions-APIG4", "HttpApi"),
        # the API's user pool: the Plus plan is billed per user; required TOTP MFA and admin-only sign-up instead
        ("AwsSolutions-COG8", "ApiUsers"),
        # the API describes the rebalance and backtest runs it starts (named by run id)
        *{(executions[m], "Api") for m in ("rebalance", "backtest")},
        *{("AwsSolutions-IAM5[Resource::*]", f) for f in functions},
        ("AwsSolutions-IAM5[Resource::*]", "RebalanceStateMachine"),
        # the backtest and rebalance-all machines: log delivery and X-Ray, as the rebalance machine
        ("AwsSolutions-IAM5[Resource::*]", "BacktestStateMachine"),
        ("AwsSolutions-IAM5[Resource::*]", "RebalanceAllStateMachine"),
        *{(f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/lake/*]", f) for f in in_lake},
        # the Alert step and RecordFailure publish to the alerts topic, encrypted with its own key
        ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", "SendAlerts"),
        ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", "RecordFailure"),
        # CommitRun and RecordFailure read their own execution's history (named by the run id)
        *{(executions[m], f) for m in RUN_MACHINES for f in ("CommitRun", "RecordFailure")},
        # rebalance-all follows the rebalance runs it starts, and its Distributed Map's child workflows
        (executions["rebalance"], "RebalanceAllStateMachine"),
        (executions["rebalance-all"], "RebalanceAllStateMachine"),
        # the retrain machine: log delivery and X-Ray as above, and jobs named regime-<model>-<run id>
        ("AwsSolutions-IAM5[Resource::*]", "RetrainRegimeStateMachine"),
        (
            f"AwsSolutions-IAM5[Resource::arn:aws:sagemaker:{region}:<AWS::AccountId>:training-job/regime-*]",
            "RetrainRegimeStateMachine",
        ),
        # the SageMaker execution role: ECR token and metrics (no resource-level permissions), the run's
        # channel and model under the training prefix, and the training jobs' log group
        ("AwsSolutions-IAM5[Resource::*]", "RegimeTraining"),
        (f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{training}/*/train/*]", "RegimeTraining"),
        (f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{training}/*/output/*]", "RegimeTraining"),
        (
            f"AwsSolutions-IAM5[Resource::arn:aws:logs:{region}:<AWS::AccountId>:log-group:"
            "/aws/sagemaker/TrainingJobs:*]",
            "RegimeTraining",
        ),
    }
    assert all(len(v["reason"]) >= 20 for v in nag["suppressedViolations"])

    metadata = json.loads((synth.outdir / f"{synth.stack.artifact_id}.metadata.json").read_text())
    declared = {
        (rule, path)
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
    }
    used = {(v["acknowledgedId"], "/" + v["acknowledgedAt"]) for v in nag["suppressedViolations"]}
    assert declared - used == set(), "acknowledgements that no finding needs any more"


# --- template-wide checks -------------------------------------------------------------------------


def test_cfn_lint_finds_no_error(synth: Synth) -> None:
    api = pytest.importorskip("cfnlint.api", reason="cfn-lint comes with moto[server] in the test extra")
    matches = api.lint(json.dumps(synth.template), config=api.ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_samconfig_points_at_the_synthesized_template() -> None:
    samconfig = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    for env, stage in (("default", "dev"), ("prod", "prod")):
        expected = f"infra/cdk/cdk.out/{stack_id(stage)}.template.json"
        assert samconfig[env]["build"]["parameters"]["template_file"] == expected
        assert samconfig[env]["validate"]["parameters"]["template_file"] == expected
        deploy = samconfig[env]["deploy"]["parameters"]
        assert deploy["stack_name"] == f"spe-{stage}" and deploy["region"] == "us-east-1"
        assert deploy["resolve_s3"] is True and deploy["resolve_image_repos"] is True


# --- configuration --------------------------------------------------------------------------------


def test_placeholder_names_follow_the_function_folder() -> None:
    assert function_arn_placeholder("ingest_prices") == "IngestPricesFunctionArn"
    assert function_arn_placeholder("simulate_risk_shard") == "SimulateRiskShardFunctionArn"


def test_stage_overrides_merge_over_the_defaults() -> None:
    raw = {
        "logRetentionDays": 30,
        "functions": {"ingest_prices": {}},
        "stages": {"prod": {"logRetentionDays": 365, "functions": {"ingest_prices": {"memoryMb": 4096}}}},
    }
    assert EngineConfig.from_context(raw, stage="dev").log_retention_days == 30
    prod = EngineConfig.from_context(raw, stage="prod")
    assert prod.log_retention_days == 365
    assert prod.functions["ingest_prices"].memory_mb == 4096
    assert prod.prefix == "spe-prod"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"functions": {"ingest_prices": {"memory": 512}}}, "unknown keys"),
        ({"functions": {"ingest_prices": {"memoryMb": 64}}}, "128..10240"),
        ({"functions": {"ingest_prices": {"secrets": ["alpha_vantage"]}}}, "does not define"),
        ({"schedules": {"x": {"expression": "cron(30 21 * * MON-FRI)", "function": "ingest_prices"}}}, "not an Event"),
        ({"schedules": {"x": {"expression": "rate(1 day)", "stateMachine": "backtest"}}}, "unknown state machine"),
        ({"functions": {"ingest_prices": {"packaging": "wheel"}}}, "packaging='wheel'"),
        ({"functions": {"ingest_prices": {"store": "read_write"}}}, "store='read_write'"),
        ({"functions": {"ingest_prices": {"alerts": True}}}, "alerts=True"),
        ({"functions": {"ingest_prices": {"lakeAccess": "write"}}}, "lakeAccess='write'"),
        ({"functions": {"ingest_prices": {"idempotency": "yes"}}}, "idempotency='yes'"),
        ({"functions": {"ingest_prices": {"executionHistory": 1}}}, "executionHistory=1"),
    ],
)
def test_bad_configuration_fails_with_a_message_naming_the_key(raw: dict[str, Any], message: str) -> None:
    raw = {"functions": {"ingest_prices": {}}, **raw}
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_context(raw, stage="dev")


def test_a_placeholder_without_a_function_fails_synth_with_a_hint(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs

    from spe_infra.constructs import EngineStateMachine

    definition = tmp_path / "backtest.asl.json"
    definition.write_text(
        json.dumps(
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${RunWindowFunctionArn}", "End": True}}}
        )
    )
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "S")
    fn = lambda_.Function.from_function_arn(stack, "F", "arn:aws:lambda:us-east-1:123456789012:function:f")
    with pytest.raises(ValueError, match=r"\$\{RunWindowFunctionArn\}.*spe\.functions"):
        EngineStateMachine(
            stack,
            "M",
            name="backtest",
            definition_file=definition,
            prefix="spe-test",
            functions={"ingest_prices": fn},
            log_retention=logs.RetentionDays.ONE_WEEK,
        )


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"StateMachineArn": "${NightlyStateMachineArn}"}, r"\$\{NightlyStateMachineArn\}.*spe\.stateMachines"),
        ({"StateMachineArn.$": "$.machine"}, r"'Child' starts a state machine that is not named"),
    ],
)
def test_a_machine_may_start_only_a_machine_of_the_stack_named_by_placeholder(
    tmp_path: Path, parameters: dict[str, str], message: str
) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_logs as logs

    from spe_infra.constructs import EngineStateMachine

    definition = tmp_path / "batch.asl.json"
    child = {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2", "End": True}
    definition.write_text(json.dumps({"StartAt": "Child", "States": {"Child": {**child, "Parameters": parameters}}}))
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "S", env=cdk.Environment(region="us-east-1"))
    with pytest.raises(ValueError, match=message):
        EngineStateMachine(
            stack,
            "M",
            name="batch",
            definition_file=definition,
            prefix="spe-test",
            functions={},
            machines={"batch": "spe-test-batch", "rebalance": "spe-test-rebalance"},
            log_retention=logs.RetentionDays.ONE_WEEK,
        )


def test_the_alert_and_failure_functions_publish_to_the_alerts_topic_only(synth: Synth) -> None:
    topic_id, _ = synth.single("AWS::SNS::Topic", TopicName="spe-dev-alerts")
    key_id = synth.resources[topic_id]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    publishers = {n for n, settings in synth.config.functions.items() if settings.alerts == "publish"}
    assert publishers == {"send_alerts", "record_failure"}
    for name in synth.config.functions:
        env = synth.resources[synth.function_id(name)]["Properties"]["Environment"]["Variables"]
        grants = synth.grants_of_role(synth.role_of(name), "sns:") | synth.grants_of_role(synth.role_of(name), "kms:")
        if name in publishers:
            assert env["SPE_ALERTS_TOPIC_ARN"] == {"Ref": topic_id}
            assert grants == {
                ("sns:Publish", f"<{topic_id}>"),
                ("kms:Decrypt", f"<{key_id}.Arn>"),
                ("kms:GenerateDataKey*", f"<{key_id}.Arn>"),
            }, name
        else:
            assert "SPE_ALERTS_TOPIC_ARN" not in env and grants == set(), name


# --- store of record and idempotency tables ------------------------------------------------------------


def _table(synth: Synth, name: str) -> tuple[str, dict[str, Any]]:
    return synth.single("AWS::DynamoDB::Table", TableName=name)


def test_the_store_of_record_is_the_table_the_library_uses_recoverable_and_retained(synth: Synth) -> None:
    _, table = _table(synth, "spe-dev-store")
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert indexes == {
        name: {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": partition_key, "KeyType": "HASH"},
                {"AttributeName": "g_sort", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for name, partition_key in {"by_kind": "g_kind", "by_owner": "g_owner"}.items()
    }
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "g_kind": "S",
        "g_owner": "S",
        "g_sort": "S",
    }
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["DeletionProtectionEnabled"] is True
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert "SSESpecification" not in props  # DynamoDB's AWS owned key (see StoreTable for why)


def test_the_deployed_store_table_is_the_one_the_library_creates_for_moto(
    synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given ``DynamoStore.create_table()`` in moto (what the README says to run for moto or LocalStack), the
    table it creates has the keys, indexes and billing mode of the table CDK deploys."""
    moto = pytest.importorskip("moto")
    store_module = pytest.importorskip("portfolio_engine.adapters.store.dynamodb")
    import boto3

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with moto.mock_aws():
        store_module.DynamoStore("spe-dev-store", region="us-east-1").create_table()
        created = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName="spe-dev-store")["Table"]
    deployed = _table(synth, "spe-dev-store")[1]["Properties"]

    def keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(k["AttributeName"], k["KeyType"]) for k in schema]

    assert keys(created["KeySchema"]) == keys(deployed["KeySchema"])
    assert {a["AttributeName"]: a["AttributeType"] for a in created["AttributeDefinitions"]} == {
        a["AttributeName"]: a["AttributeType"] for a in deployed["AttributeDefinitions"]
    }
    assert {
        i["IndexName"]: (keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in created["GlobalSecondaryIndexes"]
    } == {
        i["IndexName"]: (keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in deployed["GlobalSecondaryIndexes"]
    }
    assert set(STORE_INDEXES) == {i["IndexName"] for i in deployed["GlobalSecondaryIndexes"]}
    assert created["BillingModeSummary"]["BillingMode"] == deployed["BillingMode"]


def test_the_idempotency_table_has_powertools_key_and_expiry(synth: Synth) -> None:
    _, table = _table(synth, "spe-dev-idempotency")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionPolicy"] == "Delete"  # records of hours or days: nothing to keep


def test_each_function_that_uses_the_store_is_told_where_it_is_and_may_do_exactly_what_it_needs(synth: Synth) -> None:
    table_id, _ = _table(synth, "spe-dev-store")
    table, indexes = f"<{table_id}.Arn>", {f"<{table_id}.Arn>/index/{i}" for i in ("by_kind", "by_owner")}
    access = {n: settings.store for n, settings in synth.config.functions.items() if settings.store != "none"}
    assert access == {
        "optimize_portfolio": "read",  # the portfolio's book
        "detect_regime": "read",  # the model registry's champion
        "plan_risk": "read",
        "register_regime_model": "read",
        "list_portfolios": "read",
        "start_run": "write",
        "commit_run": "write",
        "record_failure": "write",
        "send_alerts": "write",  # alert cool-down state
        "api": "write",  # portfolios and API keys
        "api_authorizer": "read",  # API keys
    }
    for name in synth.config.functions:
        env = synth.resources[synth.function_id(name)]["Properties"]["Environment"]["Variables"]
        grants = {(a, r) for a, r in synth.grants_of_role(synth.role_of(name), "dynamodb:") if r.startswith(table)}
        if name not in access:
            assert "SPE_STORE_URI" not in env and grants == set(), name
            continue
        assert env["SPE_STORE_URI"] == {"Fn::Join": ["", ["dynamodb://", {"Ref": table_id}]]}, name
        expected = {(a, r) for a in STORE_READ for r in {table, *indexes}}
        if access[name] == "write":  # items only: DynamoDB maintains the indexes
            expected |= {(a, table) for a in STORE_WRITE}
        assert grants == expected, name
    # No dynamodb:* nor a wildcard anywhere: TransactWriteItems is authorised by its items' actions.
    everything = {a for n in synth.config.functions for a, _ in synth.grants_of_role(synth.role_of(n), "dynamodb:")}
    assert everything == STORE_READ | STORE_WRITE | IDEMPOTENCY


def test_only_event_triggered_functions_keep_idempotency_records(synth: Synth) -> None:
    table_id, _ = _table(synth, "spe-dev-idempotency")
    users = {n for n, settings in synth.config.functions.items() if settings.idempotency}
    assert users == {"ingest_prices", "notify_slack"}
    for name in synth.config.functions:
        env = synth.resources[synth.function_id(name)]["Properties"]["Environment"]["Variables"]
        grants = {g for g in synth.grants_of_role(synth.role_of(name), "dynamodb:") if g[1] == f"<{table_id}.Arn>"}
        if name in users:
            assert env["SPE_IDEMPOTENCY_TABLE"] == {"Ref": table_id}
            assert grants == {(a, f"<{table_id}.Arn>") for a in IDEMPOTENCY}, name
        else:
            assert "SPE_IDEMPOTENCY_TABLE" not in env and grants == set(), name


def test_commit_and_failure_read_only_the_execution_histories_of_the_machines_that_invoke_them(synth: Synth) -> None:
    readers = {n for n, settings in synth.config.functions.items() if settings.execution_history}
    assert readers == {"commit_run", "record_failure"}
    for name in synth.config.functions:
        history = synth.grants_of_role(synth.role_of(name), "states:")
        if name in readers:
            invoking = [m for m in synth.config.state_machines if name in _functions_of(synth.config.state_machines[m])]
            assert sorted(invoking) == sorted(RUN_MACHINES)  # not rebalance-all, which records no run itself
            assert history == {("states:GetExecutionHistory", _executions(synth, m)) for m in RUN_MACHINES}, name
        elif name != synth.config.api.function:  # the API starts runs: see its own test
            assert history == set(), name


def test_the_stack_outputs_the_table_names(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    store_id, _ = _table(synth, "spe-dev-store")
    idempotency_id, _ = _table(synth, "spe-dev-idempotency")
    assert outputs["StoreTableName"]["Value"] == {"Ref": store_id}
    assert outputs["IdempotencyTableName"]["Value"] == {"Ref": idempotency_id}


# --- the Slack notifier: a zip with the light layer, subscribed to the alerts topic -----------------


def test_notify_slack_is_a_zip_with_the_light_layer(synth: Synth) -> None:
    function = synth.resources[synth.function_id("notify_slack")]
    props = function["Properties"]
    assert "PackageType" not in props and "ImageConfig" not in props
    assert (props["Runtime"], props["Handler"]) == ("python3.11", "functions.notify_slack.app.lambda_handler")
    assert props["Architectures"] == ["x86_64"]
    ((layer_ref,),) = [[layer["Ref"] for layer in props["Layers"]]]
    layer = synth.resources[layer_ref]
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert layer["Metadata"]["aws:asset:path"].endswith("layers/light")  # built from layers/light/requirements.txt
    # Only the zip functions use the layer; the others run the image
    users = {k for k, v in synth.of_type("AWS::Lambda::Function").items() if "Layers" in v["Properties"]}
    assert users == {synth.function_id(name) for name in ("notify_slack", "api_authorizer")}


def test_notify_slack_zip_holds_its_handler_and_exactly_the_library_modules_it_imports() -> None:
    modules = {
        str(p.relative_to(REPO_ROOT / "shared"))
        for p in library_modules(REPO_ROOT / "functions" / "notify_slack" / "app.py")
    }
    assert modules == {
        f"portfolio_engine/{m}.py"
        for m in (
            "__init__", "_lazy", "settings", "exceptions", "risk/__init__", "risk/alerts", "risk/limits",
            "adapters/__init__", "adapters/alert_channels", "adapters/idempotency",
        )
    }  # fmt: skip
    staged = stage_function_code("notify_slack")
    files = {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()}
    assert files == {"functions/notify_slack/app.py", *modules}


def test_notify_slack_imports_from_its_zip_alone_without_numpy() -> None:
    """Given the staged zip first on sys.path (it shadows the installed library), the handler imports."""
    staged = stage_function_code("notify_slack")
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(staged)!r})\n"
        "import functions.notify_slack.app\n"
        "library = {m: sys.modules[m].__file__ for m in sys.modules if m.split('.')[0] == 'portfolio_engine'}\n"
        "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'pyarrow', 'sklearn') if m in sys.modules]\n"
        "print(json.dumps({'library': library, 'heavy': heavy}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPE_", "AWS_"))}
    env |= {"AWS_REGION": "us-east-1", "SPE_DATA_DIR": str(staged / "data")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=staged, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    assert found["library"] and all(path.startswith(str(staged)) for path in found["library"].values()), found


def test_notify_slack_is_subscribed_to_the_alerts_topic_with_retries_and_a_dead_letter_queue(synth: Synth) -> None:
    function_id = synth.function_id("notify_slack")
    topic_id, _ = synth.single("AWS::SNS::Topic", TopicName="spe-dev-alerts")
    template = Template.from_json(synth.template)
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "lambda", "TopicArn": {"Ref": topic_id}, "Endpoint": {"Fn::GetAtt": [function_id, "Arn"]}},
    )
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "sns.amazonaws.com",
            "SourceArn": {"Ref": topic_id},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"FunctionName": {"Ref": function_id}, "MaximumRetryAttempts": 2},
    )
    queue_id = synth.resources[function_id]["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
    queue = synth.resources[queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    # It posts to Slack and records idempotency keys: no store, no lake, no topic publishing
    grants = synth.grants_of_role(synth.role_of("notify_slack"), "")
    assert {a.split(":")[0] for a, _ in grants} == {"logs", "dynamodb", "secretsmanager", "sqs", "xray"}
    assert {a for a, _ in grants if a.startswith("sqs:")} == {"sqs:SendMessage"}
    subscriptions = {
        v["Properties"]["Endpoint"]["Fn::GetAtt"][0] for v in synth.of_type("AWS::SNS::Subscription").values()
    }
    assert subscriptions == {function_id}


# --- the HTTP API: Cognito issuer, Lambda authorizer, throttled and logged stage --------------------

PUBLIC_ROUTES = {"GET /health", "GET /version", "GET /openapi.json", "GET /docs"}


def _routes(synth: Synth) -> dict[str, dict[str, Any]]:
    """Route key -> properties of every route of the HTTP API."""
    return {v["Properties"]["RouteKey"]: v["Properties"] for v in synth.of_type("AWS::ApiGatewayV2::Route").values()}


def _env(synth: Synth, function: str) -> dict[str, Any]:
    return synth.resources[synth.function_id(function)]["Properties"]["Environment"]["Variables"]


def test_every_route_of_the_http_api_goes_to_the_api_function_with_payload_2(synth: Synth) -> None:
    # Given the committed configuration, the template has one HTTP API whose one integration is the API function
    template = Template.from_json(synth.template)
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"Name": "spe-dev-api", "ProtocolType": "HTTP"})
    assert "CorsConfiguration" not in synth.single("AWS::ApiGatewayV2::Api", Name="spe-dev-api")[1]["Properties"]
    integration_id, integration = synth.single("AWS::ApiGatewayV2::Integration")
    assert integration["Properties"]["IntegrationType"] == "AWS_PROXY"
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    assert integration["Properties"]["IntegrationUri"] == {"Fn::GetAtt": [synth.function_id("api"), "Arn"]}
    # Then $default and the public routes all target it
    routes = _routes(synth)
    assert set(routes) == {"$default", *PUBLIC_ROUTES}
    for key, route in routes.items():
        assert _flatten(route["Target"]) == f"integrations/<{integration_id}>", key


def test_the_authorizer_guards_the_default_route_and_not_the_public_ones(synth: Synth) -> None:
    authorizer_id, authorizer = synth.single("AWS::ApiGatewayV2::Authorizer")
    props = authorizer["Properties"]
    # A REQUEST authorizer with simple responses ({"isAuthorized": ...}), running the authorizer function
    assert (props["AuthorizerType"], props["AuthorizerPayloadFormatVersion"]) == ("REQUEST", "2.0")
    assert props["EnableSimpleResponses"] is True
    assert f"<{synth.function_id('api_authorizer')}.Arn>" in _flatten(props["AuthorizerUri"])
    # No identity source and no cache: a request with either Authorization or X-API-Key reaches the authorizer
    # (API Gateway refuses, without calling it, a request that lacks any listed source)
    assert props.get("IdentitySource", []) == []
    assert props["AuthorizerResultTtlInSeconds"] == 0
    routes = _routes(synth)
    assert routes["$default"]["AuthorizationType"] == "CUSTOM"
    assert routes["$default"]["AuthorizerId"] == {"Ref": authorizer_id}
    for key in PUBLIC_ROUTES:
        assert routes[key]["AuthorizationType"] == "NONE" and "AuthorizerId" not in routes[key], key
    # API Gateway may invoke the authorizer (and only this API's authorizer)
    Template.from_json(synth.template).has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [synth.function_id("api_authorizer"), "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": Match.any_value(),
        },
    )


def test_the_stage_is_throttled_as_configured_and_logs_every_request_as_json(synth: Synth) -> None:
    api = synth.config.api
    assert api is not None and (api.throttle_burst_limit, api.throttle_rate_limit) == (100, 50)
    _, stage = synth.single("AWS::ApiGatewayV2::Stage", StageName="$default")
    props = stage["Properties"]
    assert props["AutoDeploy"] is True
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == api.throttle_burst_limit
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == api.throttle_rate_limit
    log_group_id, log_group = synth.single("AWS::Logs::LogGroup", LogGroupName="/aws/apigateway/spe-dev-api")
    assert log_group["Properties"]["RetentionInDays"] == synth.config.log_retention_days
    assert props["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    fields = json.loads(props["AccessLogSettings"]["Format"])
    assert fields["status"] == "$context.status" and fields["authorizerError"] == "$context.authorizer.error"


def test_the_api_may_start_and_describe_runs_of_rebalance_and_backtest_only(synth: Synth) -> None:
    region = synth.config.region
    grants = synth.grants_of_role(synth.role_of("api"), "states:")
    assert grants == {
        *{
            ("states:StartExecution", f"arn:aws:states:{region}:<AWS::AccountId>:stateMachine:spe-dev-{m}")
            for m in ("rebalance", "backtest")
        },
        *{("states:DescribeExecution", _executions(synth, m)) for m in ("rebalance", "backtest")},
    }
    assert synth.grants_of_role(synth.role_of("api_authorizer"), "states:") == set()


def test_the_api_function_is_told_the_machines_and_both_functions_the_token_issuer(synth: Synth) -> None:
    region = synth.config.region
    env = _env(synth, "api")
    machines = json.loads(_flatten(env["SPE_STATE_MACHINE_ARNS"]))
    assert machines == {
        m: f"arn:aws:states:{region}:<AWS::AccountId>:stateMachine:spe-dev-{m}" for m in ("rebalance", "backtest")
    }
    pool_id, _ = synth.single("AWS::Cognito::UserPool", UserPoolName="spe-dev-api-users")
    client_id, _ = synth.single("AWS::Cognito::UserPoolClient", ClientName="spe-dev-api")
    issuer = f"https://<{pool_id}.ProviderURL>"  # https://cognito-idp.<region>.amazonaws.com/<pool id>
    for name in ("api", "api_authorizer"):
        variables = _env(synth, name)
        assert _flatten(variables["SPE_API_JWKS"]) == f"{issuer}/.well-known/jwks.json", name
        assert _flatten(variables["SPE_API_ISSUER"]) == issuer, name
        assert variables["SPE_API_AUDIENCE"] == {"Ref": client_id}, name  # ID tokens: aud is the app client
    assert (env["SPE_API_RATE_PER_MINUTE"], env["SPE_API_MAX_BODY_BYTES"]) == ("600", "262144")
    assert "SPE_STATE_MACHINE_ARNS" not in _env(synth, "api_authorizer")
    assert synth.config.functions["api_authorizer"].packaging == "zip"  # light imports: jwt, pynamodb


def test_the_user_pool_is_admin_provisioned_with_required_mfa_and_the_three_role_groups(synth: Synth) -> None:
    pool_id, pool = synth.single("AWS::Cognito::UserPool", UserPoolName="spe-dev-api-users")
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert (props["MfaConfiguration"], props["EnabledMfas"]) == ("ON", ["SOFTWARE_TOKEN_MFA"])
    assert props["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    assert pool["DeletionPolicy"] == "Retain"
    groups = {
        v["Properties"]["GroupName"]: v["Properties"]["Precedence"]
        for v in synth.of_type("AWS::Cognito::UserPoolGroup").values()
        if v["Properties"]["UserPoolId"] == {"Ref": pool_id}
    }
    assert groups == {"admin": 0, "manager": 1, "viewer": 2}  # the API's roles; the lowest precedence wins
    _, client = synth.single("AWS::Cognito::UserPoolClient", ClientName="spe-dev-api")
    assert client["Properties"]["GenerateSecret"] is False
    assert client["Properties"]["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


def test_the_stack_outputs_the_api_url_and_the_user_pool(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    (api_id,) = synth.of_type("AWS::ApiGatewayV2::Api")
    assert (
        _flatten(outputs["ApiUrl"]["Value"])
        == f"https://<{api_id}>.execute-api.{synth.config.region}.<AWS::URLSuffix>/"
    )
    assert outputs["ApiUserPoolId"]["Value"] == {"Ref": synth.single("AWS::Cognito::UserPool")[0]}
    assert outputs["ApiUserPoolClientId"]["Value"] == {"Ref": synth.single("AWS::Cognito::UserPoolClient")[0]}


def test_an_external_issuer_replaces_the_user_pool() -> None:
    # Given an api section naming an external OIDC issuer
    import aws_cdk as cdk

    from spe_infra.config import ApiSettings
    from spe_infra.constructs import token_issuer

    jwks = "https://login.example.com/.well-known/jwks.json"
    settings = ApiSettings(issuer="https://login.example.com/", audience="spe-api", jwks_url=jwks)
    stack = cdk.Stack(cdk.App(), "Issuer")
    # When the issuer is chosen
    issuer, pool = token_issuer(stack, settings, prefix="spe-dev")
    # Then the functions are told the configured values and no user pool is made
    assert pool is None
    assert issuer.environment() == {
        "SPE_API_JWKS": jwks,
        "SPE_API_ISSUER": "https://login.example.com/",
        "SPE_API_AUDIENCE": "spe-api",
    }
    assert Template.from_stack(stack).find_resources("AWS::Cognito::UserPool") == {}


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({"issuer": "https://login.example.com/"}, "set all three"),
        ({"issuer": "https://a/", "audience": "x", "jwksUrl": "http://a/jwks"}, "must be an https URL"),
        ({"function": "api_v2"}, "api.function='api_v2' is not an entry"),
        ({"stateMachines": ["nightly"]}, "does not define"),
        ({"throttleBurstLimit": -1}, "0..5000"),
        ({"cors": ["*"]}, "unknown keys"),
    ],
)
def test_bad_api_configuration_fails_with_a_message_naming_the_key(api: dict[str, Any], message: str) -> None:
    raw = {"functions": {"api": {}, "api_authorizer": {}}, "stateMachines": {"rebalance": "rebalance.asl.json"}}
    raw["api"] = {"stateMachines": ["rebalance"], **api}
    with pytest.raises(ConfigError, match=message):
        EngineConfig.from_context(raw, stage="dev")


def test_api_authorizer_imports_from_its_zip_alone_without_numpy() -> None:
    """Given the staged zip first on sys.path and the settings the stack gives it, the authorizer imports."""
    staged = stage_function_code("api_authorizer")
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(staged)!r})\n"
        "import functions.api_authorizer.app\n"
        "library = {m: sys.modules[m].__file__ for m in sys.modules if m.split('.')[0] == 'portfolio_engine'}\n"
        "heavy = [m for m in ('numpy', 'pandas', 'scipy', 'pyarrow', 'sklearn', 'cvxpy') if m in sys.modules]\n"
        "print(json.dumps({'library': library, 'heavy': heavy}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPE_", "AWS_"))}
    env |= {
        "AWS_REGION": "us-east-1",
        "SPE_DATA_DIR": str(staged / "data"),
        "SPE_STORE_URI": "dynamodb://spe-dev-store",
        "SPE_API_JWKS": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example/.well-known/jwks.json",
        "SPE_API_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example",
        "SPE_API_AUDIENCE": "client-id",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=staged, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # Then every library module came from the zip, and no numerical package was loaded
    assert found["library"] and all(path.startswith(str(staged)) for path in found["library"].values())
    assert found["heavy"] == []
