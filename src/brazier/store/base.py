"""The metadata store boundary. SQLite today (single node); PostgreSQL for cluster mode later.

Every method is a coroutine so that a networked implementation fits the same Protocol. Contracts:
reads never block on writers; writes are atomic; a method called after ``aclose()`` raises
``StoreClosed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from brazier.model.aliases import Alias
from brazier.model.errors import BrazierError
from brazier.model.functions import FunctionVersion


class StoreClosed(BrazierError):
    """The store was used after ``aclose()``."""


@dataclass(frozen=True, slots=True)
class Usage:
    function_count: int
    total_code_size: int


class MetadataStore(Protocol):
    @property
    def generation(self) -> int:
        """A number that changes whenever stored data changes (here or, for a shared store, on
        any node). Lets readers cache what they read until it moves. Never raises."""
        ...

    async def create_function(self, fv: FunctionVersion, tags: Mapping[str, str]) -> bool:
        """Insert a new function with its ``$LATEST``. False (and no change) if the name exists.
        Not idempotent."""

    async def get_version(
        self, account: str, region: str, name: str, version: str
    ) -> FunctionVersion | None:
        """One version of a function, or None."""

    async def replace_version(self, fv: FunctionVersion, *, expected_revision: str) -> bool:
        """Compare-and-swap: store ``fv`` only if the stored revision is ``expected_revision``.
        False when the version is gone or was changed meanwhile."""

    async def list_versions(
        self, account: str, region: str, *, after: str | None, limit: int, all_versions: bool
    ) -> list[FunctionVersion]:
        """Versions ordered by (name, version); ``after`` is an exclusive ``name\\0version``
        cursor. Only ``$LATEST`` unless ``all_versions``."""

    async def list_pending(self) -> list[FunctionVersion]:
        """Versions whose create or update has not finished (to resume after a restart)."""

    async def delete_function(self, account: str, region: str, name: str) -> bool:
        """Delete a function with all its versions, tags and policies. Idempotent (False if
        absent)."""

    async def get_tags(self, account: str, region: str, name: str) -> dict[str, str] | None:
        """The function's tags, or None if the function does not exist."""

    async def set_tags(self, account: str, region: str, name: str, tags: Mapping[str, str]) -> bool:
        """Replace the tags. False if the function does not exist."""

    async def get_policy(
        self, account: str, region: str, name: str, qualifier: str
    ) -> tuple[list[dict[str, object]], str] | None:
        """Statements and revision id of a resource policy, or None if there is none."""

    async def put_policy(
        self,
        account: str,
        region: str,
        name: str,
        qualifier: str,
        statements: list[dict[str, object]],
        revision_id: str,
        *,
        expected_revision: str | None,
    ) -> bool:
        """Compare-and-swap the policy (``expected_revision`` None: must not exist yet). An empty
        statement list deletes the policy."""

    async def usage(self, account: str) -> Usage:
        """Function count and total zipped code size of an account (all regions)."""

    async def code_in_use(self) -> set[str]:
        """sha256 hex digests of every code package some version still refers to."""

    async def layer_arns_in_use(self) -> set[str]:
        """Every layer version ARN some function version refers to."""

    async def publish_version(self, fv: FunctionVersion) -> FunctionVersion | None:
        """Insert ``fv`` under the function's next version number (never reused). None if the
        function is gone. Not idempotent."""

    async def delete_version(self, account: str, region: str, name: str, version: str) -> bool:
        """Delete one published version (and its per-version settings). Idempotent."""

    async def get_alias(self, account: str, region: str, name: str, alias: str) -> Alias | None:
        """One alias, or None."""

    async def list_aliases(self, account: str, region: str, name: str) -> list[Alias]:
        """A function's aliases by name."""

    async def put_alias(self, alias: Alias, *, expected_revision: str | None) -> bool:
        """Create (``expected_revision`` None: must not exist yet) or compare-and-swap."""

    async def delete_alias(self, account: str, region: str, name: str, alias: str) -> bool:
        """Delete an alias and its per-alias settings. Idempotent."""

    async def get_setting(
        self, account: str, region: str, name: str, kind: str, qualifier: str = ""
    ) -> Any | None:
        """A per-function JSON setting (reserved concurrency, event invoke config...), or None."""

    async def list_settings(self, account: str, kind: str) -> list[tuple[str, str, str, Any]]:
        """(region, function, qualifier, value) of every setting of ``kind`` in an account."""

    async def all_settings(self, kind: str) -> list[tuple[str, str, str, str, Any]]:
        """(account, region, function, qualifier, value) of every setting of ``kind``."""

    async def put_setting(
        self, account: str, region: str, name: str, kind: str, value: Any, qualifier: str = ""
    ) -> bool:
        """Set, or with None delete, a setting. False if the function does not exist."""

    async def aclose(self) -> None:
        """Close. Idempotent."""
