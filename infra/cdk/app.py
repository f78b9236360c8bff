#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` (in this folder) or ``python infra/cdk/app.py`` from anywhere.

Select a stage with ``-c stage=prod`` (CDK CLI) or ``SPE_STAGE=prod`` (plain Python).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spe_infra.app import build_app  # needs the path above


def main() -> None:
    stage = os.environ.get("SPE_STAGE")
    app, _ = build_app(context={"stage": stage} if stage else None)
    app.synth()


if __name__ == "__main__":
    main()
