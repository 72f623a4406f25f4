"""The layers service: publish, read, list, delete layer versions and their permissions.

Layer zips are validated like function code (``code_package``: hostile-zip safe, 50 MB zipped,
250 MB unzipped) and stored content-addressed in the same ``BlobStore``. Every method has
Lambda's fields, error codes and texts (checked against recordings of the real service).

Brazier's extension, semantic versions, is documented in ``brazier.model.semver`` and
``docs/layers.md``: a version declares ``semver:X.Y.Z`` at the start of its Description, and a
function may name ``...:layer:NAME:^1.4`` (see ``layer_resolve.py``). Nothing on the wire changes
for clients that do not use it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from brazier.control import code_package, layer_policy, sbom
from brazier.control.code_gc import CodePins
from brazier.control.layer_resolve import LayerResolver
from brazier.model.errors import (
    AccessDeniedException,
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from brazier.model.identity import Caller
from brazier.model.layers import LayerContent, LayerVersion, layer_arn, parse_layer_ref
from brazier.model.semver import semver_from_description
from brazier.store.blobs import BlobStore
from brazier.store.layers import SqliteLayerStore

Clock = Callable[[], datetime]
NOT_FOUND = "The resource you requested does not exist."
NO_SOURCE = "Please provide a source for function code."
MAX_LIST = 50


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PublishLayerVersion:
    layer_name: str
    zip_file: bytes | None
    description: str = ""
    license_info: str | None = None
    compatible_runtimes: tuple[str, ...] | None = None
    compatible_architectures: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AddLayerVersionPermission:
    layer_name: str
    version: int
    statement_id: str
    action: str
    principal: str
    organization_id: str | None = None
    revision_id: str | None = None


def _marker(text: str | None) -> str:
    if not text:
        return ""
    try:
        return base64.urlsafe_b64decode(text.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidParameterValueException("Invalid marker: " + text) from exc


def _next_marker(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


class LayerService(LayerResolver):
    """Lambda's layer operations for one account/region per call (the ``Caller``'s)."""

    def __init__(
        self,
        store: SqliteLayerStore,
        blobs: BlobStore,
        *,
        code_url: Callable[[str, str], str],
        clock: Clock = _now,
        pins: CodePins | None = None,
    ) -> None:
        super().__init__(store, blobs)
        self.pins = pins or CodePins()
        self.code_url = code_url
        self.clock = clock

    # -- addressing -----------------------------------------------------------------------------

    def _target(self, caller: Caller, layer_name: str) -> tuple[str, str]:
        """(account, name) of a ``LayerName`` parameter: a name or a layer ARN of this region."""
        ref = parse_layer_ref(layer_name)
        if ref is None or (ref.region is not None and ref.region != caller.region):
            raise ResourceNotFoundException(NOT_FOUND)
        return ref.account or caller.account, ref.name

    @staticmethod
    def _check_version(version: int) -> None:
        if version < 1:
            raise InvalidParameterValueException("Layer Version Cannot be less than 1")

    async def _own(self, caller: Caller, layer_name: str, version: int) -> tuple[str, LayerVersion]:
        """A live version of the caller's own layer, for the permission operations."""
        self._check_version(version)
        account, name = self._target(caller, layer_name)
        lv = None
        if account == caller.account:
            lv = await self.store.get(account, caller.region, name, version)
        if lv is None:
            arn = layer_arn(caller.region, account, name, version)
            raise ResourceNotFoundException(f"Layer version {arn} does not exist.")
        return name, lv

    # -- versions -------------------------------------------------------------------------------

    async def publish(self, caller: Caller, cmd: PublishLayerVersion) -> LayerVersion:
        """Validate and store a new version. Not idempotent: each call is a new version."""
        account, name = self._target(caller, cmd.layer_name)
        if account != caller.account:
            target = layer_arn(caller.region, account, name)
            raise AccessDeniedException(
                f"User: arn:aws:iam::{caller.account}:root is not authorized to perform:"
                f" lambda:PublishLayerVersion on resource: {target}"
            )
        if cmd.zip_file is None:
            raise InvalidParameterValueException(NO_SOURCE)
        try:
            version = semver_from_description(cmd.description)
        except ValueError as exc:
            raise InvalidParameterValueException(
                f"The Description declares an invalid semantic version: {exc}"
            ) from exc
        code_package.check_zip_size(len(cmd.zip_file))
        info = await asyncio.to_thread(code_package.inspect_zip, cmd.zip_file)
        async with self.pins.pin(info.sha256_hex):  # until the version refers to the blob
            await asyncio.to_thread(self.blobs.put, cmd.zip_file)
            # No await that yields between this check and the insert: the event loop
            # serialises them.
            if version is not None:
                for other in await self.store.versions(caller.account, caller.region, name):
                    if other.semver is not None and other.semver == str(version):
                        raise ResourceConflictException(
                            f"Layer {name} already has semantic version {version} in version"
                            f" {other.version}. Publish a new semantic version or delete that one."
                        )
            return await self.store.publish(
                LayerVersion(
                    account=caller.account,
                    region=caller.region,
                    name=name,
                    version=0,
                    content=LayerContent(
                        info.sha256_hex, info.sha256_b64, info.size, info.unzipped_size
                    ),
                    created=self.clock(),
                    description=cmd.description,
                    license_info=cmd.license_info,
                    compatible_runtimes=cmd.compatible_runtimes,
                    compatible_architectures=cmd.compatible_architectures,
                    semver=None if version is None else str(version),
                )
            )

    async def get(self, caller: Caller, layer_name: str, version: int) -> LayerVersion:
        """GetLayerVersion: own versions, or another account's that grants the caller read."""
        self._check_version(version)
        account, name = self._target(caller, layer_name)
        lv = await self.store.get(account, caller.region, name, version)
        if lv is None:
            raise ResourceNotFoundException(NOT_FOUND)
        await self.check_readable(caller, lv)
        return lv

    async def get_by_arn(self, caller: Caller, arn: str) -> LayerVersion:
        """GetLayerVersionByArn. Beyond Lambda, the ARN may end in a semver range: the answer is
        the version a function referencing it would get (without a runtime to narrow it)."""
        ref = parse_layer_ref(arn)
        if ref is None or ref.region is None or ref.account is None or ref.selector is None:
            raise ResourceNotFoundException(NOT_FOUND)
        if ref.is_number:
            return await self.get(caller, arn.rpartition(":")[0], int(ref.selector))
        lv = None
        if ref.region == caller.region:
            lv = await self.best_match(ref.region, ref.account, ref.name, ref.selector, None)
        if lv is None:
            raise ResourceNotFoundException(NOT_FOUND)
        await self.check_readable(caller, lv)
        return lv

    async def list_versions(
        self,
        caller: Caller,
        layer_name: str,
        *,
        runtime: str | None = None,
        architecture: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> tuple[list[LayerVersion], str | None]:
        """ListLayerVersions: newest first; an unknown layer lists nothing (not an error)."""
        account, name = self._target(caller, layer_name)
        after = _marker(marker)
        limit = min(max_items or MAX_LIST, MAX_LIST)
        found = [
            lv
            for lv in await self.store.versions(account, caller.region, name)
            if lv.runs_on(runtime, architecture) and (not after or lv.version < int(after))
        ]
        if account != caller.account:
            found = [lv for lv in found if await self.readable(caller, lv)]
        if len(found) <= limit:
            return found, None
        return found[:limit], _next_marker(str(found[limit - 1].version))

    async def list_layers(
        self,
        caller: Caller,
        *,
        runtime: str | None = None,
        architecture: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> tuple[list[LayerVersion], str | None]:
        """ListLayers: per layer of the caller's, its latest version matching the filters, by
        name. Layers whose versions are all deleted or all filtered out are not listed."""
        limit = min(max_items or MAX_LIST, MAX_LIST)
        latest: dict[str, LayerVersion] = {}
        rows = await self.store.all_live(caller.account, caller.region, after_name=_marker(marker))
        for lv in rows:  # by name, newest first: the first match per name is its latest
            if lv.name not in latest and lv.runs_on(runtime, architecture):
                latest[lv.name] = lv
                if len(latest) > limit:
                    break
        page = list(latest.values())
        if len(page) <= limit:
            return page, None
        return page[:limit], _next_marker(page[limit - 1].name)

    async def delete(self, caller: Caller, layer_name: str, version: int) -> None:
        """DeleteLayerVersion: idempotent, a missing layer or version is not an error. The zip
        stays: functions that use the version keep it (see ``pinned``)."""
        self._check_version(version)
        account, name = self._target(caller, layer_name)
        if account != caller.account:
            raise AccessDeniedException(
                f"User: arn:aws:iam::{caller.account}:root is not authorized to perform:"
                f" lambda:DeleteLayerVersion on resource:"
                f" {layer_arn(caller.region, account, name, version)}"
            )
        if await self.store.delete(account, caller.region, name, version):
            self.pins.released()

    # -- permissions ----------------------------------------------------------------------------

    async def add_permission(
        self, caller: Caller, cmd: AddLayerVersionPermission
    ) -> tuple[dict[str, object], str]:
        """AddLayerVersionPermission: the new statement and the policy's new revision id."""
        name, lv = await self._own(caller, cmd.layer_name, cmd.version)
        new = layer_policy.statement(
            cmd.statement_id, cmd.action, cmd.principal, lv.arn, cmd.organization_id
        )
        found = await self.store.get_policy(caller.account, caller.region, name, lv.version)
        statements, revision = found if found else ([], None)
        if cmd.revision_id is not None and cmd.revision_id != revision:
            raise PreconditionFailedException(layer_policy.REVISION_MISMATCH)
        if any(s.get("Sid") == cmd.statement_id for s in statements):
            raise ResourceConflictException(
                f"The statement id ({cmd.statement_id}) provided already exists. Please provide"
                " a new statement id, or remove the existing statement."
            )
        layer_policy.check_length([*statements, new])
        new_revision = str(uuid.uuid4())
        ok = await self.store.put_policy(
            caller.account, caller.region, name, lv.version, [*statements, new], new_revision,
            expected_revision=revision,
        )  # fmt: skip
        if not ok:
            raise ResourceConflictException("The policy was changed by another request. Retry.")
        return new, new_revision

    async def get_policy(self, caller: Caller, layer_name: str, version: int) -> tuple[str, str]:
        """GetLayerVersionPolicy: the policy document (JSON text) and its revision id."""
        name, lv = await self._own(caller, layer_name, version)
        found = await self.store.get_policy(caller.account, caller.region, name, lv.version)
        if found is None:
            raise ResourceNotFoundException(layer_policy.NO_POLICY)
        return layer_policy.policy_document(found[0]), found[1]

    async def remove_permission(
        self,
        caller: Caller,
        layer_name: str,
        version: int,
        statement_id: str,
        revision_id: str | None,
    ) -> None:
        """RemoveLayerVersionPermission; the policy goes with its last statement."""
        name, lv = await self._own(caller, layer_name, version)
        found = await self.store.get_policy(caller.account, caller.region, name, lv.version)
        statements, revision = found if found else ([], None)
        if revision_id is not None and revision_id != revision:
            raise PreconditionFailedException(layer_policy.REVISION_MISMATCH)
        remaining = [s for s in statements if s.get("Sid") != statement_id]
        if len(remaining) == len(statements):
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        ok = await self.store.put_policy(
            caller.account, caller.region, name, lv.version, remaining, str(uuid.uuid4()),
            expected_revision=revision,
        )  # fmt: skip
        if not ok:
            raise ResourceConflictException("The policy was changed by another request. Retry.")

    # -- brazier extensions ---------------------------------------------------------------------

    async def sbom(self, caller: Caller, layer_name: str, version: int) -> dict[str, Any]:
        """A CycloneDX 1.5 bill of materials of a readable layer version's content."""
        lv = await self.get(caller, layer_name, version)
        tree = await asyncio.to_thread(self.layer_tree, lv)
        return await asyncio.to_thread(
            sbom.build_sbom,
            tree,
            name=lv.name,
            version=lv.semver or str(lv.version),
            bom_ref=lv.arn,
        )

    async def located_content(self, arn: str, sha: str) -> Path | None:
        """The zip a ``Content.Location`` link names, while that layer version is live and
        holds it (deleting the version ends its links)."""
        ref = parse_layer_ref(arn)
        if ref is None or ref.account is None or ref.region is None:
            return None
        if ref.selector is None or not ref.selector.isdigit():
            return None
        lv = await self.store.get(ref.account, ref.region, ref.name, int(ref.selector))
        if lv is None or lv.content.sha256_hex != sha or not self.blobs.exists(sha):
            return None
        return self.blobs.path(sha)

    def content_location(self, lv: LayerVersion) -> str:
        """``Content.Location``: a signed download link for the zip."""
        return self.code_url(lv.content.sha256_hex, lv.arn)
