"""The spooled code-upload splitter: the zip comes out whole, or the ordinary parser decides."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest

from brazier.api import code_body
from brazier.api.code_body import placeholder, split_zip


def _split(doc: bytes) -> tuple[bytes, bytes] | None:
    marker, _ = placeholder()
    out = split_zip(io.BytesIO(doc), len(doc), marker)
    if out is None:
        return None
    rest, zipped = out
    assert marker.encode() in rest
    return rest.replace(marker.encode(), b"<zip>"), zipped


def test_the_zip_is_decoded_and_the_rest_kept() -> None:
    code = os.urandom(5 * 1024 * 1024 + 7)  # several decode pieces, padded at the end
    doc = json.dumps(
        {"FunctionName": "f", "Code": {"ZipFile": base64.b64encode(code).decode()}, "Timeout": 3}
    ).encode()
    out = _split(doc)
    assert out is not None
    rest, zipped = out
    assert zipped == code
    assert json.loads(rest.replace(b"<zip>", b"x")) == {
        "FunctionName": "f",
        "Code": {"ZipFile": "x"},
        "Timeout": 3,
    }


def test_a_key_split_across_scan_pieces_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_body, "_SCAN", 7)  # the file is read 7 bytes at a time
    for pad in range(8):
        doc = ('{"D":"' + "p" * pad + '","ZipFile" : "QUJD"}').encode()
        out = _split(doc)
        assert out is not None
        assert out[1] == b"ABC"


def test_bodies_of_another_shape_are_left_to_the_parser() -> None:
    assert _split(b'{"FunctionName":"f"}') is None  # no ZipFile
    assert _split(b'{"ZipFile":123}') is None  # not a string
    assert _split(b'{"ZipFile":"QUJ\\/"}') is None  # an escape inside
    assert _split(b'{"ZipFile":"QUJDR"}') is None  # not a multiple of 4
    assert _split(b'{"ZipFile":"QU=D"}') is None  # padding in the middle
    assert _split(b'{"ZipFile":"QUJD') is None  # unterminated
    # A huge value elsewhere: what is left would not be small.
    big = base64.b64encode(os.urandom(2 * 1024 * 1024)).decode()
    assert _split(json.dumps({"ZipFile": "QUJD", "Other": big}).encode()) is None


def test_an_escaped_key_inside_a_string_is_not_taken() -> None:
    doc = json.dumps({"Description": '"ZipFile":"QUJD"', "Code": {"ZipFile": "REVG"}}).encode()
    out = _split(doc)
    assert out is not None
    assert out[1] == b"DEF"
