"""cdk-nag (3.x) wiring: the AwsSolutions pack as a CDK validation plugin, and acknowledgements.

Acknowledgements sit next to the construct they concern, each with the reason the finding is
deliberate. cdk-nag 3 matches finding ids exactly (``AwsSolutions-IAM5[Resource::*]``), so an
acknowledgement never hides a different finding of the same rule.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def add_checks(app: cdk.App) -> None:
    """Run the AwsSolutions pack on every synth; findings that are not acknowledged fail it."""
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one finding (``"IAM5[Resource::*]"`` or ``"S1"``) on ``scope`` and its children."""
    if len(reason) < 20:
        raise ValueError(f"acknowledging {finding} needs a reason a reviewer can check, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{PACK}::{PACK}-{finding}", reason=reason))


def iam5_resource(scope: IConstruct, resource: str) -> str:
    """Return the IAM5 finding id cdk-nag reports for ``resource`` (tokens shown as ``<LogicalId.Attr>``).

    Raises
    ------
    ValueError
        If the resource does not resolve to a string or a single ``Fn::GetAtt``/``Ref`` join.
    """
    resolved = cdk.Stack.of(scope).resolve(resource)
    return f"IAM5[Resource::{_render(resolved)}]"


def _render(value: object) -> str:
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    raise ValueError(f"cannot render {value!r} the way cdk-nag names IAM5 findings")
