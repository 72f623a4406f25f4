"""Layer versions and layer ARNs as Lambda spells them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# ``arn:aws:lambda:REGION:ACCOUNT:layer:NAME`` optionally followed by ``:VERSION`` where VERSION is
# a number or (brazier only) a semver range. The API edge validated the overall shape already.
_LAYER_ARN = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12})"
    r":layer:(?P<name>[a-zA-Z0-9-_]+)(?::(?P<selector>[^:]+))?"
)
_NAME = re.compile(r"[a-zA-Z0-9-_]{1,140}")


def layer_arn(region: str, account: str, name: str, version: int | None = None) -> str:
    """``LayerArn`` (no version) or ``LayerVersionArn`` (``:N``)."""
    arn = f"arn:aws:lambda:{region}:{account}:layer:{name}"
    return arn if version is None else f"{arn}:{version}"


@dataclass(frozen=True, slots=True)
class LayerRef:
    """A parsed ``LayerName`` parameter or a function's ``Layers`` entry.

    ``selector`` is what follows the name: a version number as text, a semver range, or None.
    ``region``/``account`` are None for a bare name (the caller's then apply).
    """

    name: str
    region: str | None = None
    account: str | None = None
    selector: str | None = None

    @property
    def is_number(self) -> bool:
        return self.selector is not None and self.selector.isdigit()


def parse_layer_ref(text: str) -> LayerRef | None:
    """Parse a bare layer name or a layer (version) ARN; None when it is neither."""
    if _NAME.fullmatch(text):
        return LayerRef(name=text)
    m = _LAYER_ARN.fullmatch(text)
    if m is None:
        return None
    return LayerRef(
        name=m.group("name"),
        region=m.group("region"),
        account=m.group("account"),
        selector=m.group("selector"),
    )


@dataclass(frozen=True, slots=True)
class LayerContent:
    """The stored zip of a layer version: ``sha256_b64`` is Lambda's ``CodeSha256``."""

    sha256_hex: str
    sha256_b64: str
    size: int
    unzipped_size: int


@dataclass(frozen=True, slots=True)
class LayerVersion:
    """One published version of a layer in one account and region.

    ``compatible_runtimes``/``compatible_architectures`` are None when the publisher did not send
    them (Lambda then omits them from its output) and a tuple, maybe empty, when it did.
    ``semver`` is brazier's extension (see ``brazier.model.semver``), None when not declared.
    """

    account: str
    region: str
    name: str
    version: int
    content: LayerContent
    created: datetime
    description: str = ""
    license_info: str | None = None
    compatible_runtimes: tuple[str, ...] | None = None
    compatible_architectures: tuple[str, ...] | None = None
    semver: str | None = None

    @property
    def layer_arn(self) -> str:
        return layer_arn(self.region, self.account, self.name)

    @property
    def arn(self) -> str:
        """``LayerVersionArn``."""
        return layer_arn(self.region, self.account, self.name, self.version)

    def runs_on(self, runtime: str | None, architecture: str | None) -> bool:
        """The ListLayers filters: an undeclared list matches no filter value."""
        if runtime is not None and runtime not in (self.compatible_runtimes or ()):
            return False
        return architecture is None or architecture in (self.compatible_architectures or ())
