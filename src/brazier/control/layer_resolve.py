"""From a function's ``Layers`` to what it mounts at ``/opt``.

``resolve_for_function`` applies Lambda's rules, in Lambda's order and with its texts:

1. at most 5 references: ``Cannot reference more than 5 layers.``
2. every layer in the function's region: ``Layers are not in the same region as the function.
   Layers are expected to be in region R.``
3. no two references to one layer (even the same version): ``Two different versions of the same
   layer are not allowed to be referenced in the same function. A and B are versions of the same
   layer.``
4. each version exists (live) and is readable: ``Layer version ARN does not exist.``
   (InvalidParameterValueException, 400). Another account's version is readable when its policy
   grants the caller's account or ``*``.

Beyond Lambda, a reference may end in a semver range (``:^1.4``, ``:~1.4.2``, ``:1.x``,
``:=1.4.2``) instead of a number: it resolves to the live version with the highest matching semver
among those compatible with the function's runtime (an undeclared CompatibleRuntimes list is
compatible with every runtime). A numeric reference is not checked against the runtime: Lambda
does not either. The result is pinned: the lead stores ``ResolvedLayer.arn`` (numeric) in the
function's configuration, so ``GetFunction`` shows what runs and a later publish changes nothing
until the function is updated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brazier.control import code_package, layer_tree
from brazier.control.layer_policy import grants_read
from brazier.model.errors import AccessDeniedException, InvalidParameterValueException
from brazier.model.identity import Caller
from brazier.model.layers import LayerVersion, parse_layer_ref
from brazier.model.semver import parse_range, parse_version
from brazier.store.blobs import BlobStore
from brazier.store.layers import SqliteLayerStore

MAX_LAYERS = 5
UNZIPPED_LIMIT = code_package.MAX_UNZIPPED


@dataclass(frozen=True, slots=True)
class ResolvedLayer:
    """One entry of a function's ``Layers``: what was asked for and the version it names."""

    requested: str
    layer: LayerVersion

    @property
    def arn(self) -> str:
        """The concrete ``LayerVersionArn`` (``Layers[].Arn`` in the function's configuration)."""
        return self.layer.arn

    @property
    def code_size(self) -> int:
        """``Layers[].CodeSize``: the zip's size."""
        return self.layer.content.size

    @property
    def sha256_hex(self) -> str:
        return self.layer.content.sha256_hex


def _missing(ref: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Layer version {ref} does not exist.")


class LayerResolver:
    """Resolution, read access, and the trees of layer versions. Base of ``LayerService``."""

    def __init__(self, store: SqliteLayerStore, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs

    # -- access ---------------------------------------------------------------------------------

    async def readable(self, caller: Caller, lv: LayerVersion) -> bool:
        if lv.account == caller.account:
            return True
        found = await self.store.get_policy(lv.account, lv.region, lv.name, lv.version)
        return found is not None and grants_read(found[0], caller.account)

    async def check_readable(self, caller: Caller, lv: LayerVersion) -> None:
        if not await self.readable(caller, lv):
            raise AccessDeniedException(
                f"User: arn:aws:iam::{caller.account}:root is not authorized to perform:"
                f" lambda:GetLayerVersion on resource: {lv.arn} because no resource-based policy"
                " allows the lambda:GetLayerVersion action"
            )

    # -- resolution -----------------------------------------------------------------------------

    async def resolve_for_function(
        self, caller: Caller, layer_refs: tuple[str, ...], runtime: str
    ) -> tuple[ResolvedLayer, ...]:
        """Resolve a CreateFunction/UpdateFunctionConfiguration ``Layers`` list, in order.

        Raises InvalidParameterValueException with Lambda's texts (see the module docstring), or
        AccessDeniedException for another account's version that the caller may not read. Reads
        only; idempotent. ``runtime`` narrows semver ranges, never numeric references.
        """
        if len(layer_refs) > MAX_LAYERS:
            raise InvalidParameterValueException("Cannot reference more than 5 layers.")
        refs = [(text, parse_layer_ref(text)) for text in layer_refs]
        for _, ref in refs:
            if ref is not None and ref.region is not None and ref.region != caller.region:
                raise InvalidParameterValueException(
                    "Layers are not in the same region as the function. Layers are expected to"
                    f" be in region {caller.region}."
                )
        seen: dict[tuple[str | None, str], str] = {}
        for text, ref in refs:
            if ref is None:
                continue
            key = (ref.account, ref.name)
            if key in seen:
                raise InvalidParameterValueException(
                    "Two different versions of the same layer are not allowed to be referenced"
                    f" in the same function. {seen[key]} and {text} are versions of the same"
                    " layer."
                )
            seen[key] = text
        out: list[ResolvedLayer] = []
        for text, ref in refs:
            if ref is None or ref.account is None or ref.selector is None:
                raise _missing(text)
            if ref.is_number:
                lv = await self.store.get(ref.account, caller.region, ref.name, int(ref.selector))
            else:
                lv = await self.best_match(
                    caller.region, ref.account, ref.name, ref.selector, runtime
                )
            if lv is None or not await self.readable(caller, lv):
                raise _missing(text)
            out.append(ResolvedLayer(text, lv))
        return tuple(out)

    async def best_match(
        self, region: str, account: str, name: str, selector: str, runtime: str | None
    ) -> LayerVersion | None:
        """The live version with the highest semver in the range ``selector`` (compatible with
        ``runtime`` unless None), or None. InvalidParameterValueException for a bad range."""
        try:
            wanted = parse_range(selector)
        except ValueError as exc:
            raise InvalidParameterValueException(
                f"Invalid semantic version range {selector!r}: {exc}"
            ) from exc
        candidates = [
            lv
            for lv in await self.store.versions(account, region, name)
            if lv.semver is not None
            and (runtime is None or not lv.compatible_runtimes or runtime in lv.compatible_runtimes)
            and wanted.matches(parse_version(lv.semver))
        ]
        if not candidates:
            return None
        # Highest semver; among equal ones (impossible unless published around the check), the
        # newest version.
        return max(candidates, key=lambda lv: (parse_version(lv.semver or "").key(), lv.version))

    async def pinned(self, arns: Sequence[str]) -> tuple[ResolvedLayer, ...]:
        """The versions a stored function configuration names (numeric ARNs, as resolved by
        ``resolve_for_function``), deleted ones included: in Lambda, deleting a layer version does
        not affect functions already using it. No access check (done when it was configured).
        Raises InvalidParameterValueException for an ARN that never existed."""
        out: list[ResolvedLayer] = []
        for arn in arns:
            ref = parse_layer_ref(arn)
            if ref is None or ref.region is None or ref.account is None or not ref.is_number:
                raise _missing(arn)
            lv = await self.store.get(
                ref.account, ref.region, ref.name, int(ref.selector or 0), include_deleted=True
            )
            if lv is None:
                raise _missing(arn)
            out.append(ResolvedLayer(arn, lv))
        return tuple(out)

    # -- trees (blocking: call through asyncio.to_thread) ---------------------------------------

    def layer_tree(self, lv: LayerVersion) -> Path:
        """The extracted tree of one version (built once per zip digest)."""
        digest = lv.content.sha256_hex

        def extract(dest: Path) -> None:
            code_package.extract_zip(self.blobs.read(digest), dest)

        return self.blobs.ensure_tree(digest, extract)

    def merged_tree(self, resolved: Sequence[ResolvedLayer]) -> Path:
        """The directory to mount read-only at ``/opt``: the layers merged in order, later files
        overwriting earlier ones (see ``layer_tree.py``). Content-addressed by the ordered zip
        digests; a single layer is its own tree. Idempotent; blocking."""
        trees = [self.layer_tree(r.layer) for r in resolved]
        if len(trees) == 1:
            return trees[0]
        return layer_tree.merge_trees(trees, self.blobs.root)

    def unzipped_size(self, resolved: Sequence[ResolvedLayer]) -> int:
        """Bytes the function gets at ``/opt`` (the merged tree, overwritten files counted once).
        Blocking: builds the merged tree if needed."""
        if not resolved:
            return 0
        if len(resolved) == 1:
            return resolved[0].layer.content.unzipped_size
        return layer_tree.tree_size(self.merged_tree(resolved))

    async def check_unzipped_total(
        self, resolved: Sequence[ResolvedLayer], function_unzipped: int
    ) -> None:
        """Lambda's 250 MB limit on code plus layers, unzipped."""
        total = function_unzipped + await asyncio.to_thread(self.unzipped_size, resolved)
        if total > UNZIPPED_LIMIT:
            raise InvalidParameterValueException(
                f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes"
            )
