"""SigV4 on the wire: queries and paths as botocore's signer sends them, to a ``--auth sigv4``
server with an operator-made key. Requests go out byte for byte as signed (http.client), so what
is tested is the server's canonical form against botocore's, not a client's re-encoding."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support import ServerProcess, create_key, lambda_client, make_zip, wait_active
from test_functions import create

ROLE = "arn:aws:iam::111122223333:role/r"
RESERVED = ":/?#[]@!$&'()*+,;=% "


def _pct(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode())


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str], Any]]:
    data = tmp_path_factory.mktemp("sigv4wire") / "data"
    key = create_key(data)
    srv = ServerProcess(data, args=("--auth", "sigv4")).start()
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    yield srv, key, client
    srv.stop()


def _send(srv: ServerProcess, key: dict[str, str], target: str) -> tuple[int, dict[str, Any]]:
    """GET ``target`` (path and query exactly as given), signed by botocore's SigV4Auth."""
    request = AWSRequest(method="GET", url=srv.url + target)
    creds = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    SigV4Auth(creds, "lambda", "us-east-1").add_auth(request)
    netloc = urlsplit(srv.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    try:
        conn.request("GET", target, headers={"Host": netloc, **dict(request.headers.items())})
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    return reply.status, (json.loads(body) if body else {})


def _error(status: int, body: dict[str, Any]) -> str:
    return f"{status} {body.get('Type') or body.get('__type') or body.get('message') or body}"


def _pages(
    srv: ServerProcess, key: dict[str, str], base: str, field: str, marker: str, *, raw: bool
) -> list[str]:
    seen: list[str] = []
    while marker:
        value = marker if raw else quote(marker, safe="")
        status, body = _send(srv, key, f"{base}MaxItems=1&Marker={value}")
        assert status == 200, _error(status, body)
        seen += [item[field] for item in body[next(k for k in body if isinstance(body[k], list))]]
        marker = body.get("NextMarker") or ""
    return seen


def test_pagination_markers_verbatim_or_encoded(signed: Any) -> None:
    srv, key, client = signed
    for n in range(3):
        create(client, f"pager{n}", Role=ROLE)
        wait_active(client, f"pager{n}")
        client.publish_layer_version(
            LayerName=f"layer{n}x", Content={"ZipFile": make_zip({"python/m.py": "x = 1\n"})}
        )
    client.update_function_configuration(FunctionName="pager0", Timeout=9)
    wait_active(client, "pager0")
    client.publish_version(FunctionName="pager0")

    cases = [
        ("/2015-03-31/functions/?", "FunctionName", client.list_functions(MaxItems=1)),
        (
            "/2015-03-31/functions/pager0/versions?",
            "Version",
            client.list_versions_by_function(FunctionName="pager0", MaxItems=1),
        ),
        ("/2018-10-31/layers?", "LayerName", client.list_layers(MaxItems=1)),
    ]
    full = {
        "FunctionName": [f["FunctionName"] for f in client.list_functions()["Functions"]],
        "Version": [v["Version"] for v in client.list_versions_by_function(FunctionName="pager0")[
            "Versions"
        ]],
        "LayerName": [x["LayerName"] for x in client.list_layers()["Layers"]],
    }  # fmt: skip
    for base, field, first in cases:
        marker = first["NextMarker"]
        head = [item[field] for item in first[next(k for k in first if isinstance(first[k], list))]]
        # Padded base64 ('=') or "$LATEST" ('$'): sent raw, botocore signs the raw byte.
        assert set(marker) & set("=$"), marker
        raw = _pages(srv, key, base, field, marker, raw=True)
        assert head + raw == full[field]
        assert _pages(srv, key, base, field, marker, raw=False) == raw


@pytest.mark.parametrize("c", RESERVED)
def test_every_reserved_character_in_a_query_value(signed: Any, c: str) -> None:
    srv, key, _ = signed
    spellings = [_pct(c), _pct(c).lower()] + ([] if c in "&# %" else [c])
    for spelled in spellings:
        for target in (
            f"/2015-03-31/functions/?Marker=a{spelled}b",
            f"/2015-03-31/functions/?MaxItems=5&Marker=x&n{spelled if c != '=' else _pct(c)}m=v",
        ):
            status, body = _send(srv, key, target)
            # Verified, then refused by the operation for its bad marker: never a 403.
            assert status == 400, (target, _error(status, body))
            assert body["Type"] == "User" or "marker" in json.dumps(body).lower(), body


@pytest.mark.parametrize("c", [c for c in RESERVED if c != "/"])
def test_every_reserved_character_in_a_path(signed: Any, c: str) -> None:
    srv, key, _ = signed
    for spelled in [_pct(c)] + ([] if c in "?#% " else [c]):
        status, body = _send(srv, key, f"/2015-03-31/functions/f{spelled}x/configuration")
        assert status in (400, 404), (spelled, _error(status, body))


def test_a_literal_plus_is_a_plus(signed: Any) -> None:
    # The value the operation sees is the one the signature covers: '+' is not a space.
    srv, key, _ = signed
    status, body = _send(srv, key, "/2015-03-31/functions/?Marker=a+b")
    assert status == 400, _error(status, body)
    assert body["message"] == "Invalid marker: a+b"
