"""Hostile deployment packages through the API: refused with clear errors, nothing left behind."""

from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from support import make_zip
from test_functions import create


def _symlink_zip(target: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        zf.writestr(info, target)
        zf.writestr("app.py", "x = 1\n")
    return buf.getvalue()


def _bomb() -> bytes:
    # 300 MB of zeros compresses to ~300 KB: over the 250 MB unzipped limit.
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("zeros.bin", "w", force_zip64=True) as f,
    ):
        chunk = bytes(1 << 20)
        for _ in range(300):
            f.write(chunk)
    return buf.getvalue()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


HOSTILE = {
    "dotdot": (make_zip({"../evil.py": "x"}), "InvalidParameterValueException"),
    "absolute": (make_zip({"/etc/evil": "x"}), "InvalidParameterValueException"),
    "nested-dotdot": (make_zip({"a/../../evil": "x"}), "InvalidParameterValueException"),
    "symlink-out": (_symlink_zip("/etc/passwd"), "InvalidParameterValueException"),
    "symlink-up": (_symlink_zip("../../../etc"), "InvalidParameterValueException"),
    "corrupt": (b"PK\x03\x04" + os.urandom(200), "InvalidParameterValueException"),
    "truncated": (make_zip({"app.py": "x" * 10000})[:-40], "InvalidParameterValueException"),
    "not-zip": (b"hello world", "InvalidParameterValueException"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_zip_refused_and_nothing_stored(
    client: Any, server: Any, fname: str, case: str
) -> None:
    data, code = HOSTILE[case]
    before = _files(server.data_dir / "code")
    with pytest.raises(client.exceptions.ClientError) as exc:
        create(client, fname, Code={"ZipFile": data})
    assert exc.value.response["Error"]["Code"] == code
    assert exc.value.response["Error"]["Message"]
    assert _files(server.data_dir / "code") == before
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=fname)


@pytest.mark.slow
def test_zip_bomb_refused(client: Any, server: Any, fname: str) -> None:
    before = _files(server.data_dir / "code")
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        create(client, fname, Code={"ZipFile": _bomb()})
    assert "Unzipped size must be smaller than 262144000 bytes" in str(exc.value)
    assert _files(server.data_dir / "code") == before


@pytest.mark.slow
def test_oversized_zip_is_413(client: Any, fname: str) -> None:
    data = make_zip({"blob.bin": os.urandom(52_428_800)})
    with pytest.raises(client.exceptions.ClientError) as exc:
        create(client, fname, Code={"ZipFile": data})
    err = exc.value.response
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_relative_symlink_inside_and_exec_bit_accepted(
    client: Any, server: Any, fname: str
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o100755) << 16
        zf.writestr(info, "#!/bin/sh\n")
        link = zipfile.ZipInfo("lib/current")
        link.external_attr = (0o120777) << 16
        zf.writestr(link, "../bootstrap")
    out = create(client, fname, Runtime="provided.al2023", Code={"ZipFile": buf.getvalue()})
    from support import wait_active

    assert wait_active(client, fname)["State"] == "Active"
    digest = base64.b64decode(out["CodeSha256"]).hex()
    tree = server.data_dir / "code" / "trees" / digest
    assert (tree / "bootstrap").stat().st_mode & 0o111  # the executable bit survives
    assert os.readlink(tree / "lib" / "current") == "../bootstrap"
    assert (tree / "lib" / "current").resolve() == (tree / "bootstrap").resolve()
