"""Build the API's services from settings: on Lambda (Step Functions launcher) or here (local launcher, dev issuer)."""

from __future__ import annotations

from portfolio_engine.adapters.cache import cache_from_url
from portfolio_engine.adapters.store import build_store
from portfolio_engine.api.auth import TokenVerifier
from portfolio_engine.api.limits import RateLimiter
from portfolio_engine.api.routing import Services
from portfolio_engine.ports import Lake, RunLauncher
from portfolio_engine.settings import Settings

__all__ = ["build_services"]


def build_services(settings: Settings, *, local: bool, launcher: RunLauncher | None = None) -> Services:
    """The store, token verifier, rate limiter, cache and launcher the settings name.

    ``local`` makes the development issuer under the data directory (unless ``SPE_API_JWKS`` names another)
    and starts runs in child processes; otherwise runs start on Step Functions (``SPE_STATE_MACHINE_ARNS``).
    """
    if local and settings.api_jwks is None:
        from portfolio_engine.api.devkeys import ensure_dev_issuer

        ensure_dev_issuer(settings.data_dir)
    if launcher is None:
        if local:
            from portfolio_engine.adapters.launchers import LocalLauncher

            launcher = LocalLauncher(settings.data_dir / "api" / "runs")
        else:
            from portfolio_engine.adapters.launchers import StepFunctionsLauncher

            launcher = StepFunctionsLauncher(
                settings.state_machine_arns, region=settings.aws_region, endpoint_url=settings.aws_endpoint_url
            )

    def open_lake() -> Lake:
        from portfolio_engine.adapters.factory import build_lake

        return build_lake(settings)

    return Services(
        settings=settings,
        store=build_store(settings),
        launcher=launcher,
        verifier=TokenVerifier(
            settings.resolved_api_jwks(),
            issuer=settings.api_issuer,
            audience=settings.api_audience,
            role_claims=settings.api_role_claims,
        ),
        limiter=RateLimiter(settings.api_rate_per_minute, redis_url=settings.redis_url),
        open_lake=open_lake,
        cache=cache_from_url(settings.redis_url),
    )
