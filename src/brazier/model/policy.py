"""Resource-based policy evaluation, as far as brazier's callers can be described.

Pure functions over the statements ``AddPermission`` stores (IAM's JSON policy grammar). Brazier's
callers are whole accounts (a key belongs to an account, like its root user), so a principal is an
account id, ``arn:aws:iam::<account>:root``, or ``*``; IAM user, role and service principals never
match a brazier caller. Conditions are evaluated with IAM's semantics over the keys brazier knows
for a request (``aws:PrincipalAccount``, ``lambda:FunctionUrlAuthType``); a key brazier cannot know
(``aws:SourceAccount``, ``aws:SourceArn``: set only when a service calls on an account's behalf;
``aws:PrincipalOrgID``: brazier has no organisations) is absent, so a condition requiring it fails.

Evaluation is IAM's: an explicit ``Deny`` wins, else any matching ``Allow`` allows, else the
request is implicitly denied. A statement using an element or operator brazier does not evaluate
(``NotPrincipal``, ``NotAction``, ``NotResource``, numeric or date operators) fails closed: it
never allows, and a ``Deny`` of that kind always applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

_ROOT = re.compile(r"^arn:aws[a-zA-Z-]*:iam::(\d{12}):root$")
_ACCOUNT = re.compile(r"^\d{12}$")

# Condition keys a brazier request can carry (IAM compares key names case-insensitively).
PRINCIPAL_ACCOUNT = "aws:principalaccount"
FUNCTION_URL_AUTH_TYPE = "lambda:functionurlauthtype"


class Decision(Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "Deny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One request to check against a policy."""

    action: str  # "lambda:InvokeFunction"
    resource: str  # the ARN the caller named (qualified when it named a version or alias)
    principal_account: str | None  # None: an anonymous caller (a public function URL)
    context: Mapping[str, str] = field(default_factory=dict)  # lower-cased condition keys


def evaluate(statements: Sequence[Mapping[str, object]], request: AccessRequest) -> Decision:
    allowed = False
    for statement in statements:
        effect = statement.get("Effect")
        if effect == "Deny" and _applies(statement, request, fail_open=True):
            return Decision.EXPLICIT_DENY
        if effect == "Allow" and _applies(statement, request, fail_open=False):
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def allows(statements: Sequence[Mapping[str, object]], request: AccessRequest) -> bool:
    return evaluate(statements, request) is Decision.ALLOW


def _applies(statement: Mapping[str, object], request: AccessRequest, *, fail_open: bool) -> bool:
    """Whether the statement covers the request. ``fail_open``: what an element brazier cannot
    evaluate yields (True for a Deny, so it applies; False for an Allow, so it grants nothing)."""
    if any(k in statement for k in ("NotPrincipal", "NotAction", "NotResource")):
        return fail_open
    return (
        _principal_matches(statement.get("Principal"), request.principal_account)
        and _any_glob(statement.get("Action"), request.action, ignore_case=True)
        and _any_glob(statement.get("Resource"), request.resource, ignore_case=False)
        and _conditions_hold(statement.get("Condition"), request.context, fail_open=fail_open)
    )


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []


def _principal_matches(principal: object, account: str | None) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    for entry in _strings(principal.get("AWS")):
        if entry == "*":
            return True
        if account is None:
            continue
        root = _ROOT.match(entry)
        if (root and root.group(1) == account) or (_ACCOUNT.match(entry) and entry == account):
            return True
    return False


@lru_cache(maxsize=512)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character; nothing else special."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any_glob(patterns: object, value: str, *, ignore_case: bool) -> bool:
    return any(_glob(p, ignore_case).match(value) for p in _strings(patterns))


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _equals_ignore_case(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


def _like(pattern: str, value: str) -> bool:
    return _glob(pattern, False).match(value) is not None


# operator -> (comparison, negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "stringequals": (_equals, False),
    "stringnotequals": (_equals, True),
    "stringequalsignorecase": (_equals_ignore_case, False),
    "stringnotequalsignorecase": (_equals_ignore_case, True),
    "stringlike": (_like, False),
    "stringnotlike": (_like, True),
    "arnequals": (_equals, False),
    "arnnotequals": (_equals, True),
    "arnlike": (_like, False),
    "arnnotlike": (_like, True),
}


def _conditions_hold(conditions: object, context: Mapping[str, str], *, fail_open: bool) -> bool:
    if conditions is None:
        return True
    if not isinstance(conditions, Mapping):
        return fail_open
    for operator, tests in conditions.items():
        name = str(operator).lower()
        if_exists = name.endswith("ifexists")
        name = name.removesuffix("ifexists")
        if name not in _OPERATORS or not isinstance(tests, Mapping):
            return fail_open
        compare, negated = _OPERATORS[name]
        for key, wanted in tests.items():
            if not _condition_holds(
                compare, negated, if_exists, _strings(wanted), context.get(str(key).lower())
            ):
                return False
    return True


def _condition_holds(
    compare: Callable[[str, str], bool],
    negated: bool,
    if_exists: bool,
    wanted: Iterable[str],
    actual: str | None,
) -> bool:
    if actual is None:
        # IAM: a missing key fails a positive test and satisfies a negated one.
        return if_exists or negated
    matched = any(compare(w, actual) for w in wanted)
    return not matched if negated else matched
