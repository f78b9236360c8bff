"""The HTTP API: API Gateway v2 in front of the ``api`` function, guarded by the ``api_authorizer`` function.

* **Routes.** ``$default`` (every method and path) goes to the API function (payload 2.0) behind the Lambda
  authorizer; ``GET /health``, ``/version``, ``/openapi.json`` and ``/docs`` go to the same function without
  it (API Gateway picks the most specific route, so those never reach the authorizer). The function checks
  credentials again and the route's role (``portfolio_engine.api``): the authorizer only keeps anonymous
  traffic off it.
* **The authorizer's identity source is empty, and its cache off.** A caller sends *either*
  ``Authorization: Bearer`` *or* ``X-API-Key``. API Gateway answers 401 without invoking a Lambda authorizer
  when any listed identity source is missing, so listing both would refuse every request that has only one,
  and listing one would refuse the other kind. Caching needs a non-empty identity source (it is the cache
  key), so no identity source means no cache: the authorizer runs on every protected request (warm, with the
  JWKS cached in memory, a few milliseconds), and a revoked API key stops at once instead of after a TTL.
* **Throttling** is stage-wide (``spe.api.throttleBurstLimit``/``throttleRateLimit``); the function also
  limits each caller (``SPE_API_RATE_PER_MINUTE``).
* **Access logs** go to ``/aws/apigateway/<prefix>-api`` as JSON, one line per request, authorizer errors
  included. **CORS** is off unless ``spe.api.corsOrigins`` lists origins.
* **Permissions.** The functions' own settings grant the store (the API writes portfolios and keys, the
  authorizer reads keys) and the lake (the API reads it); this construct adds only ``states:StartExecution``
  on the machines the API starts and ``states:DescribeExecution`` on their executions, and tells the function
  their ARNs (``SPE_STATE_MACHINE_ARNS``), built from their names (no dependency on the machines).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from spe_infra.config import ApiSettings
from spe_infra.constructs.arns import execution_arn, state_machine_arn
from spe_infra.constructs.engine_function import EngineFunction
from spe_infra.constructs.identity import TokenIssuer
from spe_infra.nag import acknowledge, iam5_resource

#: Routes that answer without credentials (``routing.PUBLIC`` in ``portfolio_engine.api``).
PUBLIC_ROUTES = ("/health", "/version", "/openapi.json", "/docs")

#: One JSON object per request: who, what, the outcome, and why the authorizer or the integration failed.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "subject": "$context.authorizer.subject",
    "role": "$context.authorizer.role",
    "via": "$context.authorizer.via",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """``IAccessLogSettings`` is a jsii interface, not a struct: Python implements it with a class."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, format: apigw.AccessLogFormat) -> None:
        self._destination, self._format = destination, format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class HttpApiEndpoint(Construct):
    """The API's HTTP API, its stage, access logs and the API function's extra permissions.

    Parameters
    ----------
    function, authorizer : EngineFunction
        The API function (every route) and the Lambda authorizer (protected routes).
    issuer : TokenIssuer
        Where the functions find the token keys, and the ``iss``/``aud`` they require.
    state_machines : mapping of str to str
        Machine name (``rebalance``) -> physical name (``spe-dev-rebalance``): the runs the API may start.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        settings: ApiSettings,
        function: EngineFunction,
        authorizer: EngineFunction,
        issuer: TokenIssuer,
        state_machines: Mapping[str, str],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self._grant_runs(function, state_machines)
        for fn in (function, authorizer):
            for key, value in issuer.environment().items():
                fn.function.add_environment(key, value)
        function.function.add_environment("SPE_API_RATE_PER_MINUTE", str(settings.rate_per_minute))
        function.function.add_environment("SPE_API_MAX_BODY_BYTES", str(settings.max_body_bytes))

        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "CallerAuthorizer",
            authorizer.function,
            authorizer_name=f"{prefix}-api-caller",
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            identity_source=[],  # either header may be absent: see the module docstring
            results_cache_ttl=cdk.Duration.seconds(0),
        )
        integration = integrations.HttpLambdaIntegration("Function", function.function)
        self.http_api = apigwv2.HttpApi(
            self,
            "Http",
            api_name=f"{prefix}-api",
            description="Stochastic Portfolio Engine HTTP API",
            create_default_stage=False,  # the stage below has throttling and access logs
            default_integration=integration,
            default_authorizer=self.authorizer,
            cors_preflight=(
                apigwv2.CorsPreflightOptions(
                    allow_origins=list(settings.cors_origins),
                    allow_methods=[apigwv2.CorsHttpMethod.ANY],
                    allow_headers=["Authorization", "Content-Type", "X-API-Key"],
                    max_age=cdk.Duration.hours(1),
                )
                if settings.cors_origins
                else None
            ),
        )
        self.public_routes: list[apigwv2.HttpRoute] = []
        for path in PUBLIC_ROUTES:
            self.public_routes += self.http_api.add_routes(
                path=path,
                methods=[apigwv2.HttpMethod.GET],
                integration=integration,
                authorizer=apigwv2.HttpNoneAuthorizer(),
            )
        for route in self.public_routes:
            acknowledge(
                route,
                "APIG4",
                "Public by design: health and version checks for monitors, and the OpenAPI document and its "
                "viewer; they read nothing but the contract and a store ping (routing.PUBLIC in the API).",
            )

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{prefix}-api",
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                burst_limit=settings.throttle_burst_limit, rate_limit=settings.throttle_rate_limit
            ),
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )

    @property
    def url(self) -> str:
        """The API's base URL (``https://<id>.execute-api.<region>.amazonaws.com/``)."""
        return self.stage.url

    def _grant_runs(self, function: EngineFunction, state_machines: Mapping[str, str]) -> None:
        """Start and describe runs of the named machines only; tell the function their ARNs."""
        stack = cdk.Stack.of(self)
        arns = {name: state_machine_arn(self, physical) for name, physical in state_machines.items()}
        executions = [execution_arn(self, physical) for physical in state_machines.values()]
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=list(arns.values()))
        )
        function.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=executions)
        )
        for (name, physical), arn in zip(state_machines.items(), executions, strict=True):
            acknowledge(
                function.role,
                iam5_resource(self, arn),
                f"Describes the {name} runs it started ({physical}); an execution's name is the run id the API "
                "makes per request, not known in advance.",
            )
        function.function.add_environment("SPE_STATE_MACHINE_ARNS", stack.to_json_string(arns))
