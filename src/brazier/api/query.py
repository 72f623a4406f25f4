"""The one reading of a request's query string, shared by routing, parsing and SigV4.

AWS's APIs percent-decode query names and values as RFC 3986 does: a ``+`` is a literal plus,
not a space (that is HTML form encoding). SigV4's canonical query string encodes a ``+`` as
``%2B`` for the same reason. Reading the query one way for the signature and another way for the
operation would let a value be changed under a valid signature (``%2B`` rewritten to ``+``), so
every part of the edge reads it through :func:`query_pairs`.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["query_pairs"]


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs in order; ``flag`` alone is ``("flag", "")``, ``+`` stays."""
    pairs: list[tuple[str, str]] = []
    if not query:
        return pairs
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name:
            name = unquote(name)
        if "%" in value:
            value = unquote(value)
        pairs.append((name, value))
    return pairs
