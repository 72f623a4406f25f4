"""Request headers for the API's hot path: Starlette's ``Headers`` semantics, dict lookups.

Starlette's ``Headers`` finds a name by lower-casing it and scanning the raw list, decoding as
it goes; the Lambda API looks up about ten headers per request. This decodes the list once into
a dict of first values. ``items()`` still yields every raw pair, so repeated headers survive for
SigV4.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class RequestHeaders(Mapping[str, str]):
    """Case-insensitive, read-only; ``get``/``[]`` give a name's first value, like Starlette."""

    __slots__ = ("_first", "_pairs")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
        first: dict[str, str] = {}
        for name, value in pairs:
            first.setdefault(name, value)
        self._pairs = pairs
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._first.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every raw pair, repeated names included (lower-case names)."""
        return list(self._pairs)
