"""The resource-policy evaluator: IAM's rules over the statements AddPermission stores."""

from __future__ import annotations

from typing import Any

import pytest

from brazier.model.policy import (
    FUNCTION_URL_AUTH_TYPE,
    PRINCIPAL_ACCOUNT,
    AccessRequest,
    Decision,
    allows,
    evaluate,
)

A, B = "111111111111", "222222222222"
FN = f"arn:aws:lambda:us-east-1:{A}:function:f"


def stmt(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
        "Action": "lambda:InvokeFunction",
        "Resource": FN,
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def req(
    action: str = "lambda:InvokeFunction",
    resource: str = FN,
    account: str | None = B,
    **context: str,
) -> AccessRequest:
    ctx = {PRINCIPAL_ACCOUNT: account} if account else {}
    ctx.update({k.lower(): v for k, v in context.items()})
    return AccessRequest(action, resource, account, ctx)


@pytest.mark.parametrize(
    ("principal", "account", "expected"),
    [
        ({"AWS": f"arn:aws:iam::{B}:root"}, B, True),
        ({"AWS": B}, B, True),
        ({"AWS": [A, f"arn:aws:iam::{B}:root"]}, B, True),
        ("*", B, True),
        ({"AWS": "*"}, B, True),
        ("*", None, True),
        ({"AWS": f"arn:aws:iam::{B}:root"}, A, False),
        ({"AWS": f"arn:aws:iam::{B}:root"}, None, False),
        # brazier callers are accounts: a user or role of B is not B.
        ({"AWS": f"arn:aws:iam::{B}:role/r"}, B, False),
        ({"Service": "s3.amazonaws.com"}, B, False),
        (None, B, False),
        ({"AWS": f"arn:aws:iam::{B}:root-x"}, B, False),
    ],
)
def test_principals(principal: Any, account: str | None, expected: bool) -> None:
    assert allows([stmt(Principal=principal)], req(account=account)) is expected


@pytest.mark.parametrize(
    ("action", "asked", "expected"),
    [
        ("lambda:InvokeFunction", "lambda:InvokeFunction", True),
        ("lambda:invokefunction", "lambda:InvokeFunction", True),  # actions ignore case
        ("lambda:*", "lambda:GetFunction", True),
        ("*", "lambda:GetFunction", True),
        ("lambda:Get*", "lambda:GetFunctionConfiguration", True),
        ("lambda:Get*", "lambda:InvokeFunction", False),
        ("lambda:InvokeFunction", "lambda:InvokeFunctionUrl", False),
        (["lambda:GetFunction", "lambda:InvokeFunction"], "lambda:InvokeFunction", True),
        ("lambda:Invoke?unction", "lambda:InvokeFunction", True),
        ("lambda:Invoke.unction", "lambda:InvokeFunction", False),  # no regex leaks through
    ],
)
def test_actions(action: Any, asked: str, expected: bool) -> None:
    assert allows([stmt(Action=action)], req(action=asked)) is expected


def test_resource_is_exact_per_qualifier() -> None:
    assert allows([stmt()], req(resource=FN))
    assert not allows([stmt()], req(resource=f"{FN}:live"))
    assert allows([stmt(Resource=f"{FN}:*")], req(resource=f"{FN}:live"))
    assert not allows([stmt(Resource=FN.upper())], req(resource=FN))  # ARNs are case-sensitive
    assert not allows([stmt(Resource=None)], req())


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
         {FUNCTION_URL_AUTH_TYPE: "AWS_IAM"}, True),
        ({"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
         {FUNCTION_URL_AUTH_TYPE: "AWS_IAM"}, False),
        # keys ignore case
        ({"StringEquals": {"LAMBDA:functionurlauthtype": "NONE"}},
         {FUNCTION_URL_AUTH_TYPE: "NONE"}, True),
        # keys brazier cannot know are absent: a positive test fails, a negated one holds
        ({"StringEquals": {"AWS:SourceAccount": B}}, {}, False),
        ({"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"}}, {}, False),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}, {}, False),
        ({"StringNotEquals": {"aws:PrincipalOrgID": "o-abc"}}, {}, True),
        ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}}, {}, True),
        ({"StringLike": {"aws:PrincipalAccount": "2222*"}}, {}, True),
        ({"StringEquals": {"aws:PrincipalAccount": [A, B]}}, {}, True),
        ({"StringNotLike": {"aws:PrincipalAccount": "2222*"}}, {}, False),
        # operators brazier does not evaluate never allow
        ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, {}, False),
        ({"Bool": {"aws:SecureTransport": "true"}}, {}, False),
        ("not a mapping", {}, False),
    ],
)  # fmt: skip
def test_conditions(condition: Any, context: dict[str, str], expected: bool) -> None:
    request = req()
    request = AccessRequest(request.action, request.resource, B, {**request.context, **context})
    assert allows([stmt(Condition=condition)], request) is expected


def test_explicit_deny_wins_and_unknown_deny_applies() -> None:
    deny = stmt(Effect="Deny", Sid="d")
    assert evaluate([stmt(), deny], req()) is Decision.EXPLICIT_DENY
    assert evaluate([stmt()], req()) is Decision.ALLOW
    assert evaluate([], req()) is Decision.IMPLICIT_DENY
    # a Deny brazier cannot fully evaluate applies; an Allow of that kind grants nothing
    odd_deny = stmt(Effect="Deny", Condition={"DateLessThan": {"aws:CurrentTime": "2030"}})
    assert evaluate([stmt(), odd_deny], req()) is Decision.EXPLICIT_DENY
    assert not allows([stmt(NotAction="lambda:DeleteFunction")], req())
    assert evaluate([stmt(), stmt(Effect="Deny", NotPrincipal={"AWS": A})], req()) is (
        Decision.EXPLICIT_DENY
    )
    assert evaluate([stmt(Effect="Maybe")], req()) is Decision.IMPLICIT_DENY
