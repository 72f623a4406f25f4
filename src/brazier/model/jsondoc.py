"""JSON from clients and functions, decoded within bounds.

Python's decoder recurses once per nesting level and raises ``RecursionError`` (not a
``ValueError``) past about 1,000 levels, and it accepts ``NaN`` and ``Infinity``, which are not
JSON. Lambda's front end (Jackson) refuses both: nesting beyond 1,000 levels
(``StreamReadConstraints``' default) and non-standard tokens. :func:`loads` makes both a
``ValueError``, which every caller already turns into Lambda's 400 answers. The nesting bound is
Python's recursion limit minus the caller's stack, so slightly under 1,000 levels; documented in
decision 0016.
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_NESTING: Final = 1000


class JsonTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"Document nesting depth exceeds the maximum allowed ({MAX_NESTING})")


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"Non-standard token '{token}'")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(data: bytes | bytearray | str) -> Any:
    """``json.loads`` that raises only ``ValueError`` for any input (UnicodeDecodeError is one)."""
    text = (
        data
        if isinstance(data, str)
        else bytes(data).decode(json.detect_encoding(data), "surrogatepass")
    )
    try:
        return _DECODER.decode(text)
    except RecursionError as exc:
        raise JsonTooDeep from exc
