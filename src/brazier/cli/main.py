"""Commands that talk to a running brazier over its public HTTP API only."""

from __future__ import annotations

import click


def client_commands() -> list[click.Command]:
    """The HTTP-client commands added to ``brazier`` (invoke, logs, ...)."""
    return []
