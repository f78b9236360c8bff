"""ARNs built from physical names: known before the resource exists, so referencing one adds no dependency.

A function that reads the executions of the machine invoking it, or a machine that starts another, would
otherwise need that machine's ``Ref`` (a dependency cycle, or an order the template cannot express).
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def state_machine_arn(scope: IConstruct, name: str) -> str:
    """``arn:aws:states:<region>:<account>:stateMachine:<name>``."""
    return cdk.Stack.of(scope).format_arn(
        service="states", resource="stateMachine", resource_name=name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )


def execution_arn(scope: IConstruct, name: str) -> str:
    """``arn:aws:states:<region>:<account>:execution:<name>:*``: every execution of machine ``name``."""
    return cdk.Stack.of(scope).format_arn(
        service="states", resource="execution", resource_name=f"{name}:*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )
