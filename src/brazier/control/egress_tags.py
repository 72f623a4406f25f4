"""The ``brazier:egress`` tag: validated when set (CreateFunction, TagResource), so a bad value
is refused with the function's previous policy untouched (grammar: model/egress.py)."""

from __future__ import annotations

from collections.abc import Mapping

from brazier.model.egress import EGRESS_TAG, parse_egress
from brazier.model.errors import InvalidParameterValueException


def check_egress_tag(tags: Mapping[str, str]) -> None:
    """Raise InvalidParameterValueException when ``tags`` sets a bad ``brazier:egress``."""
    value = tags.get(EGRESS_TAG)
    if value is None:
        return
    try:
        parse_egress(value)
    except ValueError as e:
        raise InvalidParameterValueException(f"Invalid tag value: {e}") from None
