#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` (in this folder) or ``python infra/cdk/app.py`` from anywhere.

Select a stage with ``-c stage=prod`` (CDK CLI) or ``SPE_STAGE=prod`` (plain Python). Synth builds the light
layer (uv downloads its locked wheels once); ``SPE_SKIP_BUNDLING=1`` (plain Python) or
``-c aws:cdk:bundling-stacks=[]`` (CDK CLI) skips that, for an offline synth whose template is the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spe_infra.app import build_app  # needs the path above


def main() -> None:
    context: dict[str, object] = {}
    if os.environ.get("SPE_STAGE"):
        context["stage"] = os.environ["SPE_STAGE"]
    if os.environ.get("SPE_SKIP_BUNDLING", "").lower() in ("1", "true", "yes"):
        context["aws:cdk:bundling-stacks"] = []
    app, _ = build_app(context=context)
    app.synth()


if __name__ == "__main__":
    main()
