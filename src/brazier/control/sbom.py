"""A CycloneDX 1.5 JSON bill of materials for an extracted layer or function tree.

Found by scanning the tree (no network, no code run):

* Python distributions: ``*.dist-info/METADATA`` and ``*.egg-info/PKG-INFO`` (or an ``.egg-info``
  file): Name, Version, and the licence from ``License-Expression`` (PEP 639, kept as a CycloneDX
  ``expression``), else ``License``, else a ``License ::`` classifier (kept as a licence ``name``:
  only expressions and names are safe without an SPDX id list). purl ``pkg:pypi/<name>@<version>``
  with the name normalised as the purl spec says (lower case, ``_`` to ``-``).
* npm packages: ``node_modules/<name>/package.json`` and ``node_modules/@scope/<name>/package.json``
  at any depth (other ``package.json`` files inside a package are not packages). purl
  ``pkg:npm/%40scope/name@version`` (the scope's ``@`` percent-encoded, as the purl spec says).

The tree is hostile input: symlinks are never followed, metadata files over 1 MiB are skipped,
unparsable or incomplete metadata is skipped. A package found twice (same purl) is listed once,
so every ``bom-ref`` is unique. Blocking: call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

from brazier import __version__

SPEC_VERSION = "1.5"
_MAX_METADATA = 1 << 20
_LICENSE_CLASSIFIER = "License :: "

Component = dict[str, Any]


def _read(path: str) -> str | None:
    try:
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path) or st.st_size > _MAX_METADATA:
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _pypi_purl(name: str, version: str) -> str:
    norm = name.lower().replace("_", "-")
    return f"pkg:pypi/{quote(norm, safe='')}@{quote(version, safe='')}"


def _npm_purl(name: str, version: str) -> str:
    scope, _, bare = name.rpartition("/")
    path = f"{quote(scope, safe='')}/{quote(bare, safe='')}" if scope else quote(bare, safe="")
    return f"pkg:npm/{path}@{quote(version, safe='')}"


def _licenses(expression: str | None, name: str | None) -> list[dict[str, Any]]:
    if expression:
        return [{"expression": expression}]
    if name:
        return [{"license": {"name": name}}]
    return []


def _component(name: str, version: str, purl: str, licenses: list[dict[str, Any]]) -> Component:
    out: Component = {
        "type": "library",
        "bom-ref": purl,
        "name": name,
        "version": version,
        "purl": purl,
    }
    if licenses:
        out["licenses"] = licenses
    return out


def python_component(text: str) -> Component | None:
    """A component from the text of a METADATA or PKG-INFO file; None if it names no package."""
    msg = HeaderParser().parsestr(text)
    name, version = msg.get("Name"), msg.get("Version")
    if not name or not version:
        return None
    name, version = str(name).strip(), str(version).strip()
    lic = str(msg.get("License") or "").strip()
    if not lic or "\n" in lic or len(lic) > 200 or lic.upper() == "UNKNOWN":
        lic = ""  # a whole licence text pasted into the field is not a name
    classifiers = [str(c) for c in msg.get_all("Classifier") or [] if _LICENSE_CLASSIFIER in c]
    if not lic and classifiers:
        lic = classifiers[0].rsplit(" :: ", 1)[-1].strip()
    expression = str(msg.get("License-Expression") or "").strip() or None
    return _component(name, version, _pypi_purl(name, version), _licenses(expression, lic))


def npm_component(text: str) -> Component | None:
    """A component from a package.json's text; None if it names no package."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    lic = doc.get("license")
    if isinstance(lic, dict):  # the deprecated {"type": "MIT", "url": ...} form
        lic = lic.get("type")
    expression = lic if isinstance(lic, str) and lic.strip() else None
    return _component(name, version, _npm_purl(name, version), _licenses(expression, None))


def _found(root: Path) -> Iterator[Component]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        parts = here.relative_to(root).parts
        text: str | None = None
        if here.name.endswith(".dist-info") and "METADATA" in filenames:
            text = _read(os.path.join(dirpath, "METADATA"))
            comp = python_component(text) if text else None
        elif here.name.endswith(".egg-info") and "PKG-INFO" in filenames:
            text = _read(os.path.join(dirpath, "PKG-INFO"))
            comp = python_component(text) if text else None
        elif "package.json" in filenames and (
            (len(parts) >= 2 and parts[-2] == "node_modules")
            or (len(parts) >= 3 and parts[-3] == "node_modules" and parts[-2].startswith("@"))
        ):
            text = _read(os.path.join(dirpath, "package.json"))
            comp = npm_component(text) if text else None
        else:
            comp = None
        if comp is not None:
            yield comp
        for f in sorted(filenames):
            if f.endswith(".egg-info"):  # the single-file form of egg-info
                text = _read(os.path.join(dirpath, f))
                comp = python_component(text) if text else None
                if comp is not None:
                    yield comp


def scan(root: Path) -> list[Component]:
    """Every package found under ``root``, each purl once, sorted by purl."""
    seen: dict[str, Component] = {}
    for comp in _found(root):
        seen.setdefault(comp["purl"], comp)
    return [seen[k] for k in sorted(seen)]


def build_sbom(
    root: Path,
    *,
    name: str,
    version: str,
    bom_ref: str,
    component_type: str = "library",
    serial: uuid.UUID | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.5 document for the tree ``root`` of the layer or function ``name``.

    ``bom_ref`` identifies the subject (its ARN); ``component_type`` is ``library`` for a layer,
    ``application`` for a function. A fresh random serial number unless ``serial`` is given.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": (serial or uuid.uuid4()).urn,
        "version": 1,
        "metadata": {
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [{"type": "application", "name": "brazier", "version": __version__}]
            },
            "component": {
                "type": component_type,
                "bom-ref": bom_ref,
                "name": name,
                "version": version,
            },
        },
        "components": scan(root),
    }
