"""Layer version permissions: statements as Lambda writes them, and who may read a version.

A layer version policy only ever grants ``lambda:GetLayerVersion`` (the model's pattern enforces
it), to ``*``, an account id or an account root ARN, optionally narrowed to an organisation.
"""

from __future__ import annotations

import json
import re

from brazier.model.errors import InvalidParameterValueException, PolicyLengthExceededException

MAX_POLICY_BYTES = 20_480
_ACCOUNT = re.compile(r"\d{12}")
_ROOT = re.compile(r"arn:aws[a-zA-Z-]*:iam::(\d{12}):root")

REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy API"
    " to retrieve the latest Revision Id"
)
NO_POLICY = "No policy is associated with the given resource."


def statement(
    sid: str, action: str, principal: str, resource: str, organization_id: str | None
) -> dict[str, object]:
    """The statement AddLayerVersionPermission stores and returns (keys in Lambda's order)."""
    if principal == "*":
        who: object = "*"
    elif _ACCOUNT.fullmatch(principal):
        who = {"AWS": f"arn:aws:iam::{principal}:root"}
    elif _ROOT.fullmatch(principal):
        who = {"AWS": principal}
    else:
        raise InvalidParameterValueException(
            "The provided principal was invalid. Please check the principal and try again."
        )
    out: dict[str, object] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": who,
        "Action": action,
        "Resource": resource,
    }
    if organization_id:
        out["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
    return out


def policy_document(statements: list[dict[str, object]]) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Id": "default", "Statement": statements}, separators=(",", ":")
    )


def check_length(statements: list[dict[str, object]]) -> None:
    size = len(policy_document(statements).encode())
    if size > MAX_POLICY_BYTES:
        raise PolicyLengthExceededException(
            f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES})."
        )


def grants_read(statements: list[dict[str, object]], account: str) -> bool:
    """True when a statement lets ``account`` read the version. Statements narrowed to an
    organisation grant nothing here: brazier has no organisations to check them against."""
    for s in statements:
        if s.get("Effect") != "Allow" or s.get("Condition"):
            continue
        who = s.get("Principal")
        if who == "*":
            return True
        if isinstance(who, dict) and who.get("AWS") in (
            account,
            f"arn:aws:iam::{account}:root",
        ):
            return True
    return False
