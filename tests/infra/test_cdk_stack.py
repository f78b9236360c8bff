"""The CDK app as committed: synthesized once (offline, no Docker), then its template inspected.

Given the committed ``infra/cdk/cdk.json`` (stage ``dev``) and cdk-nag's AwsSolutions pack,
when the app is synthesized, then the template has the properties below and cdk-nag reports nothing
that is not acknowledged with a reason.
"""

from __future__ import annotations

import ast
import json
import re
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
from spe_infra.constructs import function_arn_placeholder, handler_for, placeholders
from spe_infra.constructs.engine_state_machine import load_definition
from spe_infra.constructs.training_job import REGIME_JOB_PREFIX, REGIME_TRAINING_PREFIX, TRAINING_PLACEHOLDERS
from spe_infra.stack import EngineStack

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_MACHINES = REPO_ROOT / "state_machines"
LAKE_ACTIONS = {
    "read": {"s3:GetObject"},
    "read_write": {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
}


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


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build_app(outdir=outdir)
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
    for path in files:
        text = load_definition(path)  # raises on invalid JSON or a document without StartAt/States
        used = placeholders(text)
        # The only other placeholders are the training image and role, filled by the stack's SageMakerTraining.
        assert synth.stack.training is not None or not used & set(TRAINING_PLACEHOLDERS)
        unknown = sorted(p for p in used if p not in defined and p not in TRAINING_PLACEHOLDERS)
        assert not unknown, f"{path.name} uses ${{{unknown}}}; add the function folder to spe.functions in cdk.json"
        for placeholder in used - set(TRAINING_PLACEHOLDERS):
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


@pytest.mark.parametrize("machine", ["rebalance", "retrain-regime", "backtest"])
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


def _rebalance_functions() -> list[str]:
    """The function folders the rebalance definition invokes (its ``${XxxFunctionArn}`` placeholders)."""
    text = (REPO_ROOT / "state_machines" / "rebalance.asl.json").read_text()
    camel = set(re.findall(r"\$\{(\w+)FunctionArn\}", text))
    return sorted(re.sub(r"(?<!^)(?=[A-Z])", "_", c).lower() for c in camel)


def test_rebalance_role_may_invoke_exactly_the_functions_of_its_definition(synth: Synth) -> None:
    names = _rebalance_functions()
    assert names == [
        "aggregate_risk",
        "build_features",
        "check_limits",
        "detect_regime",
        "ingest_prices",
        "optimize_portfolio",
        "plan_risk",
        "propose_hedge",
        "send_alerts",
        "simulate_risk_shard",
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


def test_backtest_role_may_invoke_exactly_its_three_functions(synth: Synth) -> None:
    text = (REPO_ROOT / "state_machines" / "backtest.asl.json").read_text()
    camel = set(re.findall(r"\$\{(\w+)FunctionArn\}", text))
    names = sorted(re.sub(r"(?<!^)(?=[A-Z])", "_", c).lower() for c in camel)
    assert names == ["aggregate_backtest", "plan_backtest", "run_backtest_window"]
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
    assert sorted(_flatten(r) for r in _as_list(by_action["lambda:InvokeFunction"]["Resource"])) == sorted(
        f"<{synth.function_id(n)}.Arn>" for n in ("prepare_regime_training", "register_regime_model")
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


def test_training_prefixes_agree_with_the_library() -> None:
    # infra never imports the library; the library's PrepareRegimeTraining writes and names what IAM allows.
    training = pytest.importorskip("portfolio_engine.contracts.training")
    assert (REGIME_TRAINING_PREFIX, REGIME_JOB_PREFIX) == (training.TRAINING_PREFIX, training.TRAINING_JOB_PREFIX)
    assert training.training_job_name("market", "x").startswith(REGIME_JOB_PREFIX)


# --- functions ------------------------------------------------------------------------------------


def test_each_function_runs_its_handler_from_the_shared_image_traced_and_sized_by_config(synth: Synth) -> None:
    template = Template.from_json(synth.template)
    for name, settings in synth.config.functions.items():
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "FunctionName": f"spe-dev-{name.replace('_', '-')}",
                "PackageType": "Image",
                "ImageConfig": {"Command": [handler_for(name)]},
                "TracingConfig": {"Mode": "Active"},
                "MemorySize": settings.memory_mb,
                "Timeout": settings.timeout_seconds,
                "Environment": {
                    "Variables": Match.object_like(
                        {
                            "SPE_LAKE_URI": {"Fn::Join": ["", ["s3://", {"Ref": Match.any_value()}, "/lake"]]},
                            "SPE_VALIDATION_POLICY": synth.config.validation_policy,
                            "SPE_DATA_DIR": "/tmp/spe",
                            "POWERTOOLS_SERVICE_NAME": f"spe-{name.replace('_', '-')}",
                            "POWERTOOLS_METRICS_NAMESPACE": synth.config.metrics_namespace,
                        }
                    )
                },
            },
        )
    assert synth.config.functions["ingest_prices"].timeout_seconds == 600  # cdk.json override reached the template
    images = {json.dumps(f["Properties"]["Code"]) for f in synth.of_type("AWS::Lambda::Function").values()}
    assert len(images) == 1, "all quant functions share one image"


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
        assert grants == {
            f"<{bucket}.Arn>/{synth.config.lake_prefix}/*": LAKE_ACTIONS[settings.lake_access],
            f"<{bucket}.Arn>": {"s3:ListBucket"},
        }, name
        assert all(s["Effect"] == "Allow" and "Condition" not in s for s in s3)


def test_no_policy_grants_s3_on_any_other_resource(synth: Synth) -> None:
    bucket = _lake_bucket_id(synth)
    for policy_id, policy in synth.of_type("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if any(a.startswith("s3:") or a == "*" for a in _as_list(statement["Action"])):
                for resource in _as_list(statement["Resource"]):
                    assert _flatten(resource).startswith(f"<{bucket}.Arn>"), (policy_id, resource)


def test_only_ingest_reads_the_api_key_secrets(synth: Synth) -> None:
    secrets = synth.of_type("AWS::SecretsManager::Secret")
    names = {v["Properties"]["Name"]: k for k, v in secrets.items()}
    assert set(names) == {"spe/dev/alpha-vantage-api-key", "spe/dev/nasdaq-data-link-api-key"}
    for name in synth.config.functions:
        function = synth.resources[synth.function_id(name)]["Properties"]
        role_id = function["Role"]["Fn::GetAtt"][0]
        readable = {
            _flatten(r)
            for s in synth.statements_of_role(role_id)
            if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
            for r in _as_list(s["Resource"])
        }
        env = function["Environment"]["Variables"]
        if name == "ingest_prices":
            assert readable == {f"<{logical_id}>" for logical_id in secrets}
            assert names[env["SPE_ALPHA_VANTAGE_SECRET_ID"]] and names[env["SPE_NASDAQ_DATA_LINK_SECRET_ID"]]
        else:
            assert readable == set(), name
            assert not [k for k in env if k.endswith("_SECRET_ID")], name


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


def test_rebalance_starts_after_ingest_with_a_valid_run_request(synth: Synth) -> None:
    rule = _rule(synth, "rebalance-after-close")
    assert rule["ScheduleExpression"] == "cron(0 22 ? * MON-FRI *)"
    (target,) = rule["Targets"]
    machine_id, _ = synth.single("AWS::StepFunctions::StateMachine", StateMachineName="spe-dev-rebalance")
    assert target["Arn"] == {"Ref": machine_id}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert synth.statements_of_role(role_id) == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine_id}}
    ]
    contracts = pytest.importorskip("portfolio_engine.contracts")
    contracts.RunRequest.model_validate_json(target["Input"])


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
    request = training.RetrainRegimeRequest.model_validate_json(target["Input"])
    assert request.feature_key is None  # the latest feature set holding the model's symbol


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
    assert {"PrepareRegimeTraining", "RegisterRegimeModel"} <= functions
    region, training = synth.config.region, f"lake/{REGIME_TRAINING_PREFIX}"
    assert suppressed == {
        ("AwsSolutions-SMG4", "AlphaVantageSecret"),
        ("AwsSolutions-SMG4", "NasdaqDataLinkSecret"),
        *{("AwsSolutions-IAM5[Resource::*]", f) for f in functions},
        ("AwsSolutions-IAM5[Resource::*]", "RebalanceStateMachine"),
        # the backtest machine: log delivery and X-Ray, as the rebalance machine
        ("AwsSolutions-IAM5[Resource::*]", "BacktestStateMachine"),
        *{(f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/lake/*]", f) for f in functions},
        # the Alert step publishes to the alerts topic, encrypted with its own key
        ("AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", "SendAlerts"),
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


def test_the_alert_function_publishes_to_the_alerts_topic_only(synth: Synth) -> None:
    template = Template.from_json(synth.template)
    topic_id = next(k for k, v in synth.template["Resources"].items() if v["Type"] == "AWS::SNS::Topic")
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "spe-dev-send-alerts",
            "Environment": {"Variables": Match.object_like({"SPE_ALERTS_TOPIC_ARN": {"Ref": topic_id}})},
        },
    )
    function = synth.template["Resources"][synth.function_id("send_alerts")]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    publish = [s for s in synth.statements_of_role(role_id) if "sns:Publish" in _as_list(s["Action"])]
    assert len(publish) == 1 and publish[0]["Resource"] == {"Ref": topic_id}
