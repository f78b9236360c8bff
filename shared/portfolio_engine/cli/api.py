"""``spe api``, ``spe token``, ``spe openapi``, ``spe api-key``: serve the HTTP API here and get credentials for it.

``spe api`` serves the same routes as the Lambda function, over the local store, starting runs in child
processes; on first start it creates a development token issuer under the data directory, and ``spe token``
signs tokens with it. ``spe openapi`` writes (or checks) the committed OpenAPI document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from portfolio_engine.cli._common import DataDirOpt, JsonOpt, emit, err, errors_to_exit, out, setup

if TYPE_CHECKING:
    from portfolio_engine.ports import Store

api_key_app = typer.Typer(help="API keys for machine clients: create (shown once), list, revoke.", no_args_is_help=True)
#: The committed contract (``spe openapi`` regenerates it; a test fails when it drifts).
OPENAPI_PATH = Path(__file__).resolve().parents[1] / "api" / "openapi.json"
RoleOpt = Annotated[str, typer.Option(help="viewer (reads), manager (edits, runs), admin (everything).")]


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.command("token")(token)
    app.command("openapi")(openapi)
    app.add_typer(api_key_app, name="api-key")


def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    data_dir: DataDirOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the HTTP API (the Lambda function's routes) on HOST:PORT over the local store.

    Get a token with `spe token --role viewer`; the routes are at /docs and /openapi.json.
    """
    setup(data_dir, verbose)
    from portfolio_engine.api.asgi import build_local_app
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.settings import Settings

    with errors_to_exit(False):
        try:
            import uvicorn
        except ImportError as exc:
            raise ConfigurationError(
                "`spe api` needs uvicorn.", hint="Install the 'local' extra (`make setup`)."
            ) from exc
        settings = Settings()
        app = build_local_app(settings)
    err.print(
        f"Serving the API on http://{host}:{port} (store {settings.resolved_store_uri()}); docs at /docs. "
        f'Try: curl -H "Authorization: Bearer $(spe token --role viewer)" http://{host}:{port}/portfolios'
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning", lifespan="off")
    finally:
        app.close()


def token(
    role: RoleOpt = "viewer",
    subject: Annotated[Optional[str], typer.Option(help="The token's `sub` (default local-<role>).")] = None,
    ttl: Annotated[int, typer.Option(min=60, max=7 * 86400, help="Seconds the token is valid.")] = 3600,
    data_dir: DataDirOpt = None,
) -> None:
    """Print a bearer token of the local development issuer (created under the data directory if needed)."""
    setup(data_dir)
    from portfolio_engine.api.auth import ROLES
    from portfolio_engine.api.devkeys import ensure_dev_issuer
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.settings import Settings

    with errors_to_exit(False):
        if role not in ROLES:
            raise ConfigurationError(f"Unknown role {role!r}.", hint=f"Use one of {', '.join(ROLES)}.")
        settings = Settings()
        if settings.api_jwks is not None:
            raise ConfigurationError(
                f"SPE_API_JWKS names another issuer ({settings.api_jwks}); its tokens come from it.",
                hint="Unset SPE_API_JWKS to use the local development issuer.",
            )
        issuer = ensure_dev_issuer(settings.data_dir)
        signed = issuer.mint(
            role=role, issuer=settings.api_issuer, audience=settings.api_audience, subject=subject, ttl_seconds=ttl
        )
    print(signed)


def openapi(
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the committed document differs.")] = False,
    output: Annotated[Path, typer.Option(help="Where to write it.")] = OPENAPI_PATH,
) -> None:
    """Write the API's OpenAPI 3.1 document (the committed contract), or check it has not drifted."""
    from portfolio_engine.api.app import build_app, openapi_document

    text = json.dumps(openapi_document(build_app(None)), indent=2, sort_keys=True) + "\n"
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            err.print(f"[red]{output} is out of date[/]: run `spe openapi` and commit it.")
            raise typer.Exit(1)
        out.print(f"{output} is up to date.")
        return
    output.write_text(text)
    out.print(f"Wrote {output} ({len(text):,} bytes).")


def _store() -> Store:
    from portfolio_engine.adapters.store import build_store
    from portfolio_engine.settings import Settings

    return build_store(Settings())


@api_key_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="Who uses it, e.g. risk-dashboard.")],
    role: RoleOpt = "viewer",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key; it is printed once (only its digest is stored)."""
    setup(data_dir)
    from portfolio_engine.api.auth import ROLES
    from portfolio_engine.exceptions import ConfigurationError
    from portfolio_engine.pipeline.api_keys import create_api_key

    with errors_to_exit(as_json):
        if role not in ROLES:
            raise ConfigurationError(f"Unknown role {role!r}.", hint=f"Use one of {', '.join(ROLES)}.")
        key, record = create_api_key(_store(), name=name, role=role, created_by="cli")
    if as_json:
        emit({**record, "key": key}, True)
    else:
        out.print(f"Key {record['id']} ({name}, {role}); send it as `X-API-Key`. It is shown this once:")
        print(key)


@api_key_app.command("list")
def list_keys(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """The keys (never a key or its digest), newest first."""
    setup(data_dir)
    from portfolio_engine.pipeline.api_keys import list_api_keys

    with errors_to_exit(as_json):
        items, _ = list_api_keys(_store(), limit=200)
    if as_json:
        emit(items, True)
        return
    table = Table(title="API keys")
    for column in ("id", "name", "role", "created", "revoked"):
        table.add_column(column)
    for k in items:
        table.add_row(k["id"], k["name"], k["role"], k["created_at"][:19], (k.get("revoked_at") or "")[:19])
    out.print(table if items else "No API keys: `spe api-key create NAME --role viewer`.")


@api_key_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (`spe api-key list`).")],
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: it stops authenticating at once."""
    setup(data_dir)
    from portfolio_engine.pipeline.api_keys import revoke_api_key

    with errors_to_exit(as_json):
        record = revoke_api_key(_store(), key_id, by="cli")
    emit(record, True) if as_json else out.print(f"Key {key_id} revoked.")
