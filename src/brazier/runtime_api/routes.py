"""The route table shared by every session: ``(method, path) -> endpoint``.

One table per process, not per environment. Static paths cost one dict lookup; templates with a
single ``{param}`` segment (``/2018-06-01/runtime/invocation/{id}/response``) are matched by
prefix and suffix, no regex. The Extensions (``/2020-01-01``) and Telemetry (``/2022-07-01``)
APIs plug in later by calling :meth:`Router.add` with their own endpoint functions; until then
their paths fall through to 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from brazier.runtime_api.connection import BodyConsumer, Exchange, RequestHead

__all__ = ["Endpoint", "Router"]

C = TypeVar("C")

# endpoint(context, exchange, head, param) -> the consumer of the request body
Endpoint = Callable[[C, Exchange, RequestHead, str], BodyConsumer]

NOT_FOUND = 404
METHOD_NOT_ALLOWED = 405


class Router(Generic[C]):
    """Maps a request to an endpoint taking a context ``C`` (the session) first."""

    __slots__ = ("_static", "_templates")

    def __init__(self) -> None:
        self._static: dict[str, dict[bytes, Endpoint[C]]] = {}
        # (prefix, suffix) -> {method: endpoint}
        self._templates: list[tuple[str, str, dict[bytes, Endpoint[C]]]] = []

    def add(self, method: bytes, template: str, endpoint: Endpoint[C]) -> None:
        """Register ``endpoint`` for ``method`` on ``template`` (at most one ``{name}`` segment).

        Raises ``ValueError`` on a duplicate route or a malformed template.
        """
        start = template.find("{")
        if start < 0:
            methods = self._static.setdefault(template, {})
        else:
            end = template.index("}", start)
            prefix, suffix = template[:start], template[end + 1 :]
            if "{" in suffix or not prefix.endswith("/"):
                raise ValueError(f"unsupported template {template!r}")
            for p, s, m in self._templates:
                if (p, s) == (prefix, suffix):
                    methods = m
                    break
            else:
                methods = {}
                self._templates.append((prefix, suffix, methods))
        if method in methods:
            raise ValueError(f"duplicate route {method!r} {template}")
        methods[method] = endpoint

    def resolve(self, method: bytes, path: str) -> tuple[Endpoint[C], str] | int:
        """``(endpoint, param)`` for the request, or the status ``404``/``405``. Pure."""
        methods = self._static.get(path)
        param = ""
        if methods is None:
            for prefix, suffix, m in self._templates:
                if (
                    path.startswith(prefix)
                    and path.endswith(suffix)
                    and len(path) > len(prefix) + len(suffix)
                ):
                    param = path[len(prefix) : len(path) - len(suffix)]
                    if "/" not in param:
                        methods = m
                        break
            else:
                return NOT_FOUND
        endpoint = methods.get(method)
        if endpoint is None:
            return METHOD_NOT_ALLOWED
        return endpoint, param
