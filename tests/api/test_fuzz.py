"""Fuzz every Lambda route from botocore's model: no 5xx, no traceback in the server's log.

For each operation of botocore's ``lambda`` model, hypothesis draws requests whose path labels,
query parameters, headers and JSON body follow the operation's input shape, with hostile values
mixed in: oversized and empty strings, NUL, unpaired surrogates, bidi and astral characters,
numbers at and past Java's int and long bounds, NaN and Infinity, wrong JSON types, unknown
members, deep nesting, invalid UTF-8 and base64. A real server answers over HTTP; every answer
must be below 500 and carry Lambda's error headers, and the server must log no traceback.

The seed is fixed (``derandomize``), so CI sees the same requests each run; a time budget
(``BRAZIER_FUZZ_BUDGET`` seconds, 45 by default) keeps the module under a minute on 2 cores.
``BRAZIER_FUZZ_EXAMPLES`` raises the examples per operation for a deeper local run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx
import pytest
import regex
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import brazier.api.lambda_api  # noqa: F401 - registers every operation in HANDLERS
from brazier.api.operations import HANDLERS

from support import HELLO_PY, ServerProcess, lambda_client

MODEL = botocore.session.get_session().get_service_model("lambda")
IMPLEMENTED = sorted(HANDLERS)
OTHERS = sorted(set(MODEL.operation_names) - set(HANDLERS))
EXAMPLES = int(os.environ.get("BRAZIER_FUZZ_EXAMPLES", "20"))
BUDGET = float(os.environ.get("BRAZIER_FUZZ_BUDGET", "45"))
ROLE = "arn:aws:iam::123456789012:role/fuzz"
FN = "fz"
LAYER = "fzl"
ACCOUNT = "000000000000"
FN_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FN}"
LAYER_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{LAYER}"

# -- values -----------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202eevil",
    "\U0001f600" * 40,
    "é" * 300,
    "a" * 70_000,
    "../../../etc/passwd",
    "%00%2f",
    "' OR 1=1 --",
    "$LATEST",
    "\r\nX-Injected: 1",
    "\\",
    "{}",
    "null",
]
KNOWN_TEXT = [FN, FN_ARN, f"{FN_ARN}:$LATEST", LAYER, LAYER_ARN, f"{LAYER_ARN}:1", "1", "live"]
INTEGERS = [
    0, 1, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**23, 10**400,
]  # fmt: skip
WRONG_TYPES: list[Any] = [None, True, "1", 1.5, [], {}, [[[]]], {"a": {"b": {}}}]


def deep(n: int) -> bytes:
    return b"[" * n + b"1" + b"]" * n


def text_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.sampled_from(KNOWN_TEXT),
        st.text(max_size=40),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=300),
    )


_PATTERNED: dict[str, st.SearchStrategy[str] | None] = {}


def _from_pattern(shape: Shape) -> st.SearchStrategy[str] | None:
    """Values matching the model's pattern, when Python's regex engine can read it."""
    pattern = shape.metadata.get("pattern")
    if not pattern:
        return None
    if pattern not in _PATTERNED:
        try:
            re.compile(pattern)
            _PATTERNED[pattern] = st.from_regex(pattern, fullmatch=True).filter(
                lambda s: len(s) <= 2048
            )
        except re.error:
            _PATTERNED[pattern] = None
    return _PATTERNED[pattern]


def scalar_for(shape: Shape) -> st.SearchStrategy[Any]:
    t = shape.type_name
    if t == "string":
        options = [text_values()]
        enum = getattr(shape, "enum", None)
        if enum:
            options.append(st.sampled_from(list(enum)))
        patterned = _from_pattern(shape)
        if patterned is not None:
            options.append(patterned)
        return st.one_of(*options)
    if t in ("integer", "long"):
        return st.one_of(st.sampled_from(INTEGERS), st.integers(-1000, 100_000))
    if t in ("double", "float"):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5]))
    if t == "boolean":
        return st.booleans()
    if t == "timestamp":
        return st.one_of(st.integers(), st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]))
    raise AssertionError(t)


def value_for(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """A JSON value for ``shape``: usually the right type, sometimes hostile."""
    t = shape.type_name
    wrong = st.sampled_from(WRONG_TYPES)
    if t == "blob":
        right: st.SearchStrategy[Any] = st.one_of(
            st.just(base64.b64encode(HELLO_PY).decode()),
            st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
            st.sampled_from(["not base64!", "QQ", "=" * 9]),
        )
    elif t == "structure":
        if depth > 3:
            return st.one_of(st.just({}), wrong)
        members = shape.members  # type: ignore[attr-defined]
        right = st.fixed_dictionaries(
            {}, optional={k: value_for(m, depth + 1) for k, m in members.items()}
        ) | st.just({"UnknownMember": "x"})
    elif t == "list":
        item = value_for(shape.member, depth + 1)  # type: ignore[attr-defined]
        right = st.lists(item, max_size=3) | item.map(lambda v: [v] * 2000)
    elif t == "map":
        right = st.dictionaries(
            scalar_for(shape.key),  # type: ignore[attr-defined]
            value_for(shape.value, depth + 1),  # type: ignore[attr-defined]
            max_size=3,
        )
    else:
        right = scalar_for(shape)
    return st.one_of(right, right, right, wrong)


def _known_for(shape: Shape) -> list[str]:
    pattern = shape.metadata.get("pattern")
    lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 10**6)
    return [
        k
        for k in KNOWN_TEXT
        if lo <= len(k) <= hi and (not pattern or regex.fullmatch(pattern, k) is not None)
    ]


def tame_for(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    """A value the model accepts (as far as a generator can tell), to reach the services."""
    t = shape.type_name
    meta = shape.metadata
    if t == "string":
        enum = getattr(shape, "enum", None)
        if enum:
            return st.sampled_from(list(enum))
        known = _known_for(shape)
        if known:
            return st.sampled_from(known)
        patterned = _from_pattern(shape)
        if patterned is not None:
            return patterned
        size = (max(meta.get("min", 0), 1), min(meta.get("max", 64), 64))
        return st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=size[0],
                       max_size=max(size))  # fmt: skip
    if t in ("integer", "long"):
        return st.integers(int(meta.get("min", 0)), int(min(meta.get("max", 1000), 100_000)))
    if t in ("double", "float"):
        return st.floats(float(meta.get("min", 0)), float(meta.get("max", 1)))
    if t == "boolean":
        return st.booleans()
    if t == "blob":
        return st.just(base64.b64encode(HELLO_PY).decode())
    if t == "timestamp":
        return st.integers(0, 2_000_000_000)
    if depth > 3:
        return st.nothing()
    if t == "structure":
        members = shape.members  # type: ignore[attr-defined]
        required = set(shape.required_members)  # type: ignore[attr-defined]
        return st.fixed_dictionaries(
            {k: tame_for(m, depth + 1) for k, m in members.items() if k in required},
            optional={k: tame_for(m, depth + 1) for k, m in members.items() if k not in required},
        )
    if t == "list":
        return st.lists(tame_for(shape.member, depth + 1), max_size=2)  # type: ignore[attr-defined]
    if t == "map":
        return st.dictionaries(
            tame_for(shape.key),  # type: ignore[attr-defined]
            tame_for(shape.value, depth + 1),  # type: ignore[attr-defined]
            max_size=2,
        )
    raise AssertionError(t)


def wire_text(value: Any) -> str:
    """How a scalar travels in a path label, query string or header."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)) or value is None:
        return json.dumps(value)
    return str(value)


def escaped(text: str) -> str:
    """Percent-encoded, lone surrogates as their (invalid) UTF-8 bytes; within httpx's URL cap."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")[:6000]


def header_safe(text: str) -> str:
    return "".join(c for c in text if " " <= c <= "~")[:8000].strip() or "x"


# -- requests ---------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn, op: OperationModel) -> tuple[str, str, dict[str, str], bytes]:
    """(method, path with query, headers, body) for one call of ``op``."""
    uri = op.http["requestUri"]
    path, _, static_query = uri.partition("?")
    shape = op.input_shape
    members = dict(shape.members) if shape is not None else {}
    query: list[str] = [static_query] if static_query else []
    headers: dict[str, str] = {"content-type": "application/json"}
    body_doc: dict[str, Any] = {}
    body: bytes | None = None
    payload_name = shape.serialization.get("payload") if shape is not None else None
    # Half the requests are valid but for (at most) one member, so they reach the services.
    tame = draw(st.booleans())
    hostile = draw(st.sampled_from([None, *sorted(members)])) if tame and members else None

    def value_of(name: str, member: Shape) -> Any:
        if tame and name != hostile:
            return draw(tame_for(member))
        return draw(value_for(member))

    for name, member in members.items():
        loc = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        required = shape is not None and name in shape.required_members
        if tame and name != hostile and not required and draw(st.booleans()):
            continue
        if loc == "uri":
            value = (
                value_of(name, member)
                if tame
                else draw(st.one_of(st.sampled_from(KNOWN_TEXT), value_for(member)))
            )
            text = escaped(wire_text(value))
            path = path.replace("{" + wire_name + "}", text).replace("{" + wire_name + "+}", text)
        elif loc == "querystring" and (tame or draw(st.booleans())):
            values = value_of(name, member)
            for v in values[:20] if isinstance(values, list) else [values]:
                query.append(f"{escaped(wire_name)}={escaped(wire_text(v))}")
        elif loc == "header" and (tame or draw(st.booleans())):
            headers[wire_name] = header_safe(wire_text(value_of(name, member)))
        elif loc is None and name == payload_name:
            if member.type_name == "blob":
                body = draw(
                    st.one_of(
                        st.binary(max_size=256),
                        st.sampled_from([b'{"k": "v"}', b"[NaN]", b'"\\ud800"', b"{" * 5000]),
                    )
                )
            else:
                body_doc = value_of(name, member)
        elif loc is None and (tame or draw(st.booleans())):
            body_doc[name] = value_of(name, member)
    if body is None:
        mangle = 9 if tame else draw(st.integers(0, 9))
        if mangle == 0:
            body = deep(draw(st.sampled_from([900, 1000, 5000, 100_000])))
        elif mangle == 1:
            body = draw(st.sampled_from([b"\xff\xfe\xfd", b"{", b"[]", b"1", b'"x"', b"null"]))
        else:
            body = json.dumps(body_doc).encode() if body_doc or payload_name else b""
    target = path + ("?" + "&".join(query) if query else "")
    return op.http["method"], target, headers, body


# -- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + BUDGET


@pytest.fixture
def world(srv: ServerProcess) -> ServerProcess:
    """The fuzzed names exist, so requests reach past 'not found' into the services."""
    lam = lambda_client(srv.url)
    try:
        lam.get_function(FunctionName=FN)
    except lam.exceptions.ResourceNotFoundException:
        lam.create_function(
            FunctionName=FN, Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": HELLO_PY},
        )  # fmt: skip
    if not lam.list_layer_versions(LayerName=LAYER)["LayerVersions"]:
        lam.publish_layer_version(LayerName=LAYER, Content={"ZipFile": HELLO_PY})
    return srv


class Exchanges:
    """The server's log offset at the start, and the requests sent since (for failure reports)."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.offset = srv.log.stat().st_size
        self.sent: list[str] = []

    def check_log(self) -> None:
        with self.srv.log.open("rb") as f:
            f.seek(self.offset)
            new = f.read().decode("utf-8", "replace")
        assert "Traceback" not in new and " ERROR " not in new, (
            "server logged an error; requests sent:\n"
            + "\n".join(self.sent[-20:])
            + "\n--- log ---\n"
            + new[-4000:]
        )


def send(
    client: httpx.Client, ex: Exchanges, request: tuple[str, str, dict[str, str], bytes]
) -> None:
    method, target, headers, body = request
    ex.sent.append(f"{method} {target[:300]} {body[:300]!r}")
    reply = client.request(method, target, headers=headers, content=body)
    assert reply.status_code < 500, f"{method} {target[:500]} {body[:500]!r} -> {reply.text}"
    if reply.status_code >= 400:
        assert reply.headers.get("x-amzn-ErrorType"), reply.text
        assert reply.headers.get("x-amzn-RequestId"), reply.text


def fuzz_operation(srv: ServerProcess, deadline: float, name: str, examples: int) -> None:
    op = MODEL.operation_model(name)
    ex = Exchanges(srv)

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        request = data.draw(requests(op))  # drawn even when spent: replays must draw alike
        if time.monotonic() > deadline:
            return  # the budget is spent: the remaining examples are no-ops
        send(client, ex, request)

    with httpx.Client(base_url=srv.url, timeout=60) as client:
        run()
    ex.check_log()


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_fuzz_implemented_operation(world: ServerProcess, deadline: float, name: str) -> None:
    fuzz_operation(world, deadline, name, EXAMPLES)


@pytest.mark.parametrize("name", OTHERS)
def test_fuzz_unimplemented_operation(world: ServerProcess, deadline: float, name: str) -> None:
    fuzz_operation(world, deadline, name, 3)


@given(
    name=text_values(),
    version=st.one_of(st.sampled_from([str(i) for i in INTEGERS]), text_values()),
    after=st.one_of(st.sampled_from([str(i) for i in INTEGERS]), text_values()),
    limit=st.one_of(st.sampled_from([str(i) for i in INTEGERS]), text_values()),
)
@settings(max_examples=EXAMPLES * 3, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def _brazier_routes(
    srv: ServerProcess, client: httpx.Client, ex: Exchanges, name: str, version: str,
    after: str, limit: str,
) -> None:  # fmt: skip
    n, v = escaped(name), escaped(version)
    for target in (
        f"/_brazier/v1/functions/{n}/logs?after={escaped(after)}&limit={escaped(limit)}",
        f"/_brazier/v1/layers/{n}/versions/{v}/sbom",
        f"/_brazier/code/{n}?Expires={escaped(after)}&Signature={v}",
    ):
        ex.sent.append(f"GET {target[:300]}")
        reply = client.get(target)
        assert reply.status_code < 500, f"GET {target[:500]} -> {reply.text}"


def test_fuzz_brazier_routes(world: ServerProcess) -> None:
    ex = Exchanges(world)
    with httpx.Client(base_url=world.url, timeout=60) as client:
        _brazier_routes(world, client, ex)
    ex.check_log()


# -- signed, on a --auth sigv4 server ---------------------------------------------------------


def test_fuzz_signed_requests(
    secured: tuple[ServerProcess, dict[str, str]], deadline: float
) -> None:
    """The same requests, signed with a real key: authentication, then parsing, on hostile input.
    (A query value that is not UTF-8 may fail the signature check: a 403, which is fine.)"""
    srv, key = secured
    credentials = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    ex = Exchanges(srv)

    @settings(
        max_examples=EXAMPLES * 10,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(name=st.sampled_from(IMPLEMENTED), data=st.data())
    def run(name: str, data: st.DataObject) -> None:
        method, target, headers, body = data.draw(requests(MODEL.operation_model(name)))
        if time.monotonic() > deadline:
            return
        signed = AWSRequest(method=method, url=srv.url + target, data=body, headers=headers)
        SigV4Auth(credentials, "lambda", "us-east-1").add_auth(signed)
        send(client, ex, (method, target, dict(signed.headers.items()), body))

    with httpx.Client(base_url=srv.url, timeout=60) as client:
        run()
    ex.check_log()


# -- function URLs ----------------------------------------------------------------------------


@pytest.fixture
def url_id(world: ServerProcess) -> str:
    lam = lambda_client(world.url)
    try:
        url = lam.get_function_url_config(FunctionName=FN)["FunctionUrl"]
    except lam.exceptions.ResourceNotFoundException:
        lam.add_permission(
            FunctionName=FN, StatementId="fuzz-public", Action="lambda:InvokeFunctionUrl",
            Principal="*", FunctionUrlAuthType="NONE",
        )  # fmt: skip
        url = lam.create_function_url_config(
            FunctionName=FN, AuthType="NONE",
            Cors={"AllowOrigins": ["*"], "AllowMethods": ["*"], "ExposeHeaders": ["x"]},
        )["FunctionUrl"]  # fmt: skip
    return str(url.split("//")[1].split(".")[0])


def test_fuzz_function_url_requests(world: ServerProcess, url_id: str, deadline: float) -> None:
    """Hostile paths, queries, cookies, headers and bodies sent to a function URL."""
    ex = Exchanges(world)
    header_names = st.sampled_from(
        ["cookie", "origin", "content-type", "x-forwarded-for", "user-agent", "x-custom",
         "access-control-request-method", "authorization", "host"]
    )  # fmt: skip

    @settings(
        max_examples=EXAMPLES * 3,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
        path=text_values(),
        query=st.lists(st.tuples(text_values(), text_values()), max_size=3),
        headers=st.dictionaries(header_names, text_values().map(header_safe), max_size=4),
        body=st.one_of(st.binary(max_size=512), text_values().map(
            lambda t: t.encode("utf-8", "surrogatepass")
        )),
    )  # fmt: skip
    def run(
        method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], body: bytes
    ) -> None:
        if time.monotonic() > deadline:
            return
        if headers.get("host"):
            headers["host"] = f"{url_id}.lambda-url.us-east-1.localhost"
        qs = "&".join(f"{escaped(k)}={escaped(v)}" for k, v in query)
        target = f"/lambda-url/{url_id}/{escaped(path)}" + (f"?{qs}" if qs else "")
        ex.sent.append(f"{method} {target[:300]} {headers} {body[:100]!r}")
        reply = client.request(method, target, headers=headers, content=body)
        assert reply.status_code < 500, f"{method} {target[:300]} {headers} -> {reply.text}"

    with httpx.Client(base_url=world.url, timeout=60) as client:
        run()
    ex.check_log()
