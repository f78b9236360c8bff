"""Who may call the HTTP API: a Cognito user pool (the default token issuer), or an external OIDC issuer.

The API function and its Lambda authorizer verify bearer tokens themselves (``portfolio_engine.api.auth``)
against the issuer's JWKS, so all they need is three settings: the JWKS URL, the issuer (``iss``) and the
audience (``aud``). With the stack's user pool those are its ``https://cognito-idp.<region>.amazonaws.com/
<pool id>`` URL and the app client's id: Cognito *ID* tokens carry ``aud``, access tokens do not, so clients
send the ID token. The caller's role is the Cognito group (``cognito:groups``): ``viewer``, ``manager`` or
``admin``; the API takes the most privileged one it knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from spe_infra.config import ApiSettings
from spe_infra.nag import acknowledge

#: Cognito groups, one per API role; a lower precedence wins when a user is in several (admin first).
ROLE_GROUPS = {"admin": 0, "manager": 1, "viewer": 2}


@dataclass(frozen=True)
class TokenIssuer:
    """What the token verifier needs: where the keys are, who issues, for whom."""

    jwks_url: str
    issuer: str
    audience: str

    def environment(self) -> dict[str, str]:
        """The settings ``portfolio_engine.settings.Settings`` reads (``SPE_API_*``)."""
        return {"SPE_API_JWKS": self.jwks_url, "SPE_API_ISSUER": self.issuer, "SPE_API_AUDIENCE": self.audience}


class ApiUserPool(Construct):
    """The API's users: a Cognito user pool with one app client and the three role groups.

    Users are created by an administrator (no self sign-up), sign in with their e-mail address, must use an
    authenticator app (TOTP MFA) and a strong password. The pool is retained when the stack is deleted: it
    holds people's identities, like the store holds the engine's records.
    """

    def __init__(self, scope: Construct, construct_id: str, *, prefix: str) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "Pool",
            user_pool_name=f"{prefix}-api-users",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=cdk.Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.ESSENTIALS,
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.user_pool,
            "COG8",
            "The Plus plan (threat protection) is billed per monthly active user; the pool is admin-provisioned "
            "(no self sign-up) with required TOTP MFA and strong passwords, which covers the risk it targets.",
        )
        self.client = self.user_pool.add_client(
            "Client",
            user_pool_client_name=f"{prefix}-api",
            generate_secret=False,  # a CLI or a browser holds no secret
            auth_flows=cognito.AuthFlow(user_srp=True),
            disable_o_auth=True,  # no hosted UI: clients sign in with SRP and send the ID token
            prevent_user_existence_errors=True,
            id_token_validity=cdk.Duration.hours(1),
            access_token_validity=cdk.Duration.hours(1),
            refresh_token_validity=cdk.Duration.days(30),
            enable_token_revocation=True,
        )
        self.groups = {
            role: cognito.CfnUserPoolGroup(
                self,
                f"{role.capitalize()}Group",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=role,
                precedence=precedence,
                description=f"API role {role}",
            )
            for role, precedence in ROLE_GROUPS.items()
        }

    @property
    def issuer(self) -> TokenIssuer:
        """ID tokens of this pool: ``iss`` is the pool's URL, ``aud`` the app client's id."""
        url = f"https://{self.user_pool.user_pool_provider_url}"
        return TokenIssuer(
            jwks_url=f"{url}/.well-known/jwks.json", issuer=url, audience=self.client.user_pool_client_id
        )


def token_issuer(scope: Construct, settings: ApiSettings, *, prefix: str) -> tuple[TokenIssuer, ApiUserPool | None]:
    """The configured external issuer, or a new user pool (returned too, for its outputs) as the issuer."""
    if settings.external_issuer:
        assert settings.jwks_url and settings.issuer and settings.audience  # ApiSettings checks all three
        return TokenIssuer(jwks_url=settings.jwks_url, issuer=settings.issuer, audience=settings.audience), None
    pool = ApiUserPool(scope, "ApiUsers", prefix=prefix)
    return pool.issuer, pool
