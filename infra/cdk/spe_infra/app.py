"""Build the CDK app: read ``cdk.json`` context, pick the stage, add the stack and cdk-nag.

``infra/cdk/app.py`` (what ``cdk synth`` runs) and the tests both call :func:`build_app`, so the
tests check the app that is deployed, with the configuration that is committed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from spe_infra import nag
from spe_infra.config import CONTEXT_KEY, EngineConfig
from spe_infra.stack import EngineStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
DEFAULT_OUTDIR = CDK_JSON.parent / "cdk.out"


def stack_id(stage: str) -> str:
    """Return the construct id (also the template file name) of a stage's stack."""
    return f"SpeEngine-{stage}"


def committed_context() -> dict[str, Any]:
    """Return the ``context`` object of ``infra/cdk/cdk.json``."""
    return json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})


def build_app(
    *,
    outdir: str | os.PathLike[str] | None = None,
    context: Mapping[str, Any] | None = None,
    with_nag: bool = True,
) -> tuple[cdk.App, EngineStack]:
    """Create the app and the stack of the selected stage.

    Parameters
    ----------
    outdir : path, optional
        Cloud assembly directory. Default: ``CDK_OUTDIR`` when the CDK CLI runs us, else
        ``infra/cdk/cdk.out``.
    context : mapping, optional
        Context entries layered over ``cdk.json`` (as ``-c key=value`` would be).
    with_nag : bool
        Register cdk-nag's AwsSolutions pack; unacknowledged findings then fail ``synth``.
    """
    # Context passed here is the lowest layer: the CDK CLI's own (cdk.json, -c) overrides it.
    app = cdk.App(
        # Asset metadata (set by the CDK CLI, not by a plain `python app.py`) lets `sam build` find the image.
        context={"aws:cdk:enable-asset-metadata": True, **committed_context(), **(context or {})},
        outdir=str(outdir) if outdir else (None if os.environ.get("CDK_OUTDIR") else str(DEFAULT_OUTDIR)),
    )
    raw = app.node.try_get_context(CONTEXT_KEY) or {}
    if isinstance(raw, str):  # `-c spe=...` from the command line arrives as a JSON string
        raw = json.loads(raw)
    config = EngineConfig.from_context(raw, stage=app.node.try_get_context("stage"))
    env = cdk.Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )
    stack = EngineStack(
        app,
        stack_id(config.stage),
        config=config,
        env=env,
        description=f"Stochastic Portfolio Engine ({config.stage}): lake, quant functions, state machines",
    )
    cdk.Tags.of(stack).add("project", "stochastic-portfolio-engine")
    cdk.Tags.of(stack).add("stage", config.stage)
    if with_nag:
        nag.add_checks(app)
    return app, stack
