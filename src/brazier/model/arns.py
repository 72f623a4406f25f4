"""Function names, qualifiers and ARNs as Lambda spells them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from brazier.model.errors import InvalidParameterValueException, ResourceNotFoundException

LATEST = "$LATEST"

# Lambda's FunctionName grammar (the service model's pattern, with groups named).
_FUNCTION_REF = re.compile(
    r"(?:arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:)?"
    r"(?:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso(?:[a-z]?)))?-[a-z]+-\d{1}):)?"
    r"(?:(?P<account>\d{12}):)?"
    r"(?:function:)?"
    r"(?P<name>[a-zA-Z0-9-_\.]+)"
    r"(?::(?P<qualifier>\$LATEST(?:\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)


@dataclass(frozen=True, slots=True)
class FunctionRef:
    """What a ``FunctionName`` parameter names, once parsed."""

    name: str
    qualifier: str | None = None
    region: str | None = None
    account: str | None = None


def parse_function_ref(text: str) -> FunctionRef:
    """Parse a name, partial ARN or full ARN. The caller validated the pattern already."""
    m = _FUNCTION_REF.fullmatch(text)
    if m is None:
        raise InvalidParameterValueException(f"Invalid function name: {text}")
    return FunctionRef(
        name=m.group("name"),
        qualifier=m.group("qualifier"),
        region=m.group("region"),
        account=m.group("account"),
    )


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def resolve_ref(
    text: str, qualifier: str | None, *, region: str, account: str
) -> tuple[str, str | None]:
    """Resolve ``FunctionName`` + ``Qualifier`` parameters against the caller's region/account.

    Returns the bare name and the effective qualifier (None when neither names one). Applies
    Lambda's rules: a qualifier both in the ARN and the parameter must agree; an ARN of another
    region is "not reachable in this region"; an ARN of another account is not found here.
    """
    ref = parse_function_ref(text)
    if ref.region is not None and ref.region != region:
        raise ResourceNotFoundException(
            f"Functions from '{ref.region}' are not reachable in this region ('{region}')"
        )
    if ref.qualifier is not None and qualifier is not None and ref.qualifier != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    if ref.account is not None and ref.account != account:
        raise ResourceNotFoundException(
            "Function not found: "
            + function_arn(region, ref.account, ref.name, ref.qualifier or qualifier)
        )
    return ref.name, ref.qualifier if ref.qualifier is not None else qualifier
