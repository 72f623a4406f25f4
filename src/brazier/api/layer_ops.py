"""The layer operations, one small function each (registered into ``operations.HANDLERS``), and
the brazier-only SBOM route's handler.

Output members follow Lambda's recordings: ``CompatibleRuntimes``/``CompatibleArchitectures`` and
``LicenseInfo`` only when the publisher sent them; ``Description`` always.
"""

from __future__ import annotations

import json
from typing import Any

from brazier.api.operations import Params, Result, Services, operation
from brazier.api.wire import parse_integer
from brazier.control.layers import AddLayerVersionPermission, PublishLayerVersion
from brazier.model.errors import InvalidParameterValueException
from brazier.model.functions import lambda_timestamp
from brazier.model.identity import Caller
from brazier.model.layers import LayerVersion


def _summary(lv: LayerVersion) -> dict[str, Any]:
    """A ``LayerVersionsListItem``: what every layer version output has."""
    out: dict[str, Any] = {
        "LayerVersionArn": lv.arn,
        "Version": lv.version,
        "Description": lv.description,
        "CreatedDate": lambda_timestamp(lv.created),
    }
    if lv.compatible_runtimes is not None:
        out["CompatibleRuntimes"] = list(lv.compatible_runtimes)
    if lv.compatible_architectures is not None:
        out["CompatibleArchitectures"] = list(lv.compatible_architectures)
    if lv.license_info is not None:
        out["LicenseInfo"] = lv.license_info
    return out


def _full(s: Services, lv: LayerVersion) -> dict[str, Any]:
    """Publish/Get outputs: the summary plus ``LayerArn`` and ``Content``."""
    return {
        **_summary(lv),
        "LayerArn": lv.layer_arn,
        "Content": {
            "Location": s.layers.content_location(lv),
            "CodeSha256": lv.content.sha256_b64,
            "CodeSize": lv.content.size,
        },
    }


def _zip(content: dict[str, Any]) -> bytes | None:
    if "S3Bucket" in content or "S3Key" in content or "S3ObjectVersion" in content:
        raise InvalidParameterValueException(
            "Brazier accepts layer content as ZipFile only; S3 sources are not supported."
        )
    zf = content.get("ZipFile")
    return None if zf is None else bytes(zf)


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@operation
async def publish_layer_version(s: Services, c: Caller, p: Params) -> Result:
    lv = await s.layers.publish(
        c,
        PublishLayerVersion(
            layer_name=p["LayerName"],
            zip_file=_zip(p["Content"]),
            description=p.get("Description", ""),
            license_info=p.get("LicenseInfo"),
            compatible_runtimes=_tuple(p.get("CompatibleRuntimes")),
            compatible_architectures=_tuple(p.get("CompatibleArchitectures")),
        ),
    )
    return _full(s, lv)


@operation
async def get_layer_version(s: Services, c: Caller, p: Params) -> Result:
    return _full(s, await s.layers.get(c, p["LayerName"], int(p["VersionNumber"])))


@operation
async def get_layer_version_by_arn(s: Services, c: Caller, p: Params) -> Result:
    return _full(s, await s.layers.get_by_arn(c, p["Arn"]))


@operation
async def list_layer_versions(s: Services, c: Caller, p: Params) -> Result:
    page, marker = await s.layers.list_versions(
        c,
        p["LayerName"],
        runtime=p.get("CompatibleRuntime"),
        architecture=p.get("CompatibleArchitecture"),
        marker=p.get("Marker"),
        max_items=p.get("MaxItems"),
    )
    out: dict[str, Any] = {"LayerVersions": [_summary(lv) for lv in page]}
    if marker:
        out["NextMarker"] = marker
    return out


@operation
async def list_layers(s: Services, c: Caller, p: Params) -> Result:
    page, marker = await s.layers.list_layers(
        c,
        runtime=p.get("CompatibleRuntime"),
        architecture=p.get("CompatibleArchitecture"),
        marker=p.get("Marker"),
        max_items=p.get("MaxItems"),
    )
    out: dict[str, Any] = {
        "Layers": [
            {"LayerName": lv.name, "LayerArn": lv.layer_arn, "LatestMatchingVersion": _summary(lv)}
            for lv in page
        ]
    }
    if marker:
        out["NextMarker"] = marker
    return out


@operation
async def delete_layer_version(s: Services, c: Caller, p: Params) -> Result:
    await s.layers.delete(c, p["LayerName"], int(p["VersionNumber"]))
    return {}


@operation
async def add_layer_version_permission(s: Services, c: Caller, p: Params) -> Result:
    statement, revision = await s.layers.add_permission(
        c,
        AddLayerVersionPermission(
            layer_name=p["LayerName"],
            version=int(p["VersionNumber"]),
            statement_id=p["StatementId"],
            action=p["Action"],
            principal=p["Principal"],
            organization_id=p.get("OrganizationId"),
            revision_id=p.get("RevisionId"),
        ),
    )
    return {"Statement": json.dumps(statement, separators=(",", ":")), "RevisionId": revision}


@operation
async def get_layer_version_policy(s: Services, c: Caller, p: Params) -> Result:
    policy, revision = await s.layers.get_policy(c, p["LayerName"], int(p["VersionNumber"]))
    return {"Policy": policy, "RevisionId": revision}


@operation
async def remove_layer_version_permission(s: Services, c: Caller, p: Params) -> Result:
    await s.layers.remove_permission(
        c, p["LayerName"], int(p["VersionNumber"]), p["StatementId"], p.get("RevisionId")
    )
    return {}


async def sbom_route(s: Services, c: Caller, name: str, version: str) -> dict[str, Any]:
    """``GET /_brazier/v1/layers/{name}/versions/{version}/sbom``: the CycloneDX 1.5 JSON of a
    readable layer version. ``version`` is the path text; a non-number is refused as Lambda
    refuses a bad VersionNumber."""
    number = parse_integer(version)
    if number is None:
        raise InvalidParameterValueException("Layer Version Cannot be less than 1")
    return await s.layers.sbom(c, name, number)
