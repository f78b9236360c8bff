"""Shared set-up of the infrastructure tests: import path of the CDK app and jsii's node warning.

The ``slow`` marker these tests use is registered in pyproject.toml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = REPO_ROOT / "infra" / "cdk"

# jsii warns on every import under node 20; must be set before aws_cdk starts its node process.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))
