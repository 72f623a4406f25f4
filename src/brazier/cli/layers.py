"""``brazier layers``: layer commands beyond the Lambda API (HTTP client only).

``brazier layers sbom NAME:VERSION`` prints the CycloneDX 1.5 JSON bill of materials of a layer
version, from ``GET /_brazier/v1/layers/{name}/versions/{version}/sbom``. NAME may be a layer
name or a layer ARN (then VERSION is its last ``:`` part, as in a LayerVersionArn).
"""

from __future__ import annotations

import json
import sys
from urllib.parse import quote

import click

from brazier.cli.main import USAGE, _fail, _signed, aws_options, target


@click.group()
def layers() -> None:
    """Layer tools: bills of materials."""


@layers.command()
@click.argument("layer_version", metavar="NAME:VERSION")
@click.option("--indent", default=2, show_default=True, help="JSON indentation (0: compact).")
@aws_options
def sbom(
    layer_version: str,
    indent: int,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
) -> None:
    """Print the CycloneDX 1.5 SBOM of layer version NAME:VERSION."""
    name, sep, version = layer_version.rpartition(":")
    if not sep or not name or not version.isdigit():
        click.echo("error: expected NAME:VERSION, e.g. my-layer:3", err=True)
        sys.exit(USAGE)
    to = target(endpoint_url, region, profile)
    url = f"{to.endpoint}/_brazier/v1/layers/{quote(name, safe='')}/versions/{version}/sbom"
    reply = _signed("GET", url, to)
    if reply.status_code >= 300:
        _fail(reply)
    click.echo(json.dumps(reply.json(), indent=indent or None))
