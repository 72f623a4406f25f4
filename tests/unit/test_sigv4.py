"""SigV4 verification against requests signed by botocore exactly as boto3 signs them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.datastructures import Headers

from brazier.api.sigv4 import Principal, verify_request
from brazier.model.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    LambdaError,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCOUNT = "123456789012"
DEFAULT_ACCOUNT = "000000000000"
ENDPOINT = "http://127.0.0.1:9000"
ARN_PATH = (
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Afoo"
    "/invocations"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


@dataclass(frozen=True)
class Key:
    access_key_id: str
    secret_access_key: str
    account_id: str


KEYS = {AKID: Key(AKID, SECRET, ACCOUNT)}


@dataclass
class Wire:
    """A request as the server receives it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    date: datetime

    def verify(
        self,
        *,
        mode: str = "sigv4",
        now: datetime | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Principal:
        return verify_request(
            self.method,
            self.path,
            self.query,
            self.headers if headers is None else headers,
            self.body,
            lookup_secret=KEYS.get,
            now=self.date if now is None else now,
            mode=mode,  # type: ignore[arg-type]
            default_region="eu-west-1",
            default_account_id=DEFAULT_ACCOUNT,
        )


def _to_wire(request: AWSRequest, body: bytes) -> Wire:
    url = urlsplit(str(request.url))
    headers = {k: v for k, v in request.headers.items()}
    headers.setdefault("Host", url.netloc)  # what urllib3 sends; botocore signs the same
    amz_date = headers.get("X-Amz-Date") or dict(p.split("=", 1) for p in url.query.split("&")).get(
        "X-Amz-Date"
    )
    assert amz_date
    date = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return Wire(str(request.method), url.path, url.query, headers, body, date)


def sign(
    method: str = "GET",
    path: str = "/2015-03-31/functions/",
    query: str = "",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    key: str = AKID,
    secret: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
) -> Wire:
    url = ENDPOINT + path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(key, secret, token), "lambda", region).add_auth(request)
    return _to_wire(request, body)


def presign(
    path: str = "/2015-03-31/functions/foo",
    query: str = "",
    *,
    expires: int = 300,
    token: str | None = None,
) -> Wire:
    url = ENDPOINT + path + (f"?{query}" if query else "")
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(AKID, SECRET, token), "lambda", "us-east-1", expires).add_auth(
        request
    )
    assert "Authorization" not in request.headers
    return _to_wire(request, b"")


def raises(cls: type[LambdaError], message: str | None = None) -> pytest.RaisesExc[LambdaError]:
    return pytest.raises(cls, match=None if message is None else f"^{re.escape(message)}$")


# --- accepted ----------------------------------------------------------------------------------


def test_simple_get_is_verified_with_account_and_region() -> None:
    principal = sign().verify()
    assert principal == Principal(AKID, ACCOUNT, "us-east-1", verified=True)


def test_region_comes_from_the_credential_scope() -> None:
    assert sign(region="ap-southeast-2").verify().region == "ap-southeast-2"


@pytest.mark.parametrize(
    "path",
    [
        ARN_PATH,
        "/2015-03-31/functions/foo%3Alive/invocations",
        "/2015-03-31/functions/a+b/configuration",
        "/2015-03-31/functions/foo:live/invocations",
        "/2015-03-31/functions/%E2%9C%93~x/policy",
        "/2015-03-31/functions//double//slashes/",
        "/2015-03-31/functions/./x/../y",
        "/",
    ],
)
def test_paths_are_double_encoded_like_botocore(path: str) -> None:
    assert sign("POST", path, body=b'{"a": 1}').verify().verified


@pytest.mark.parametrize(
    "query",
    [
        "Qualifier=%24LATEST",
        "b=2&a=1&a=0&MaxItems=10",
        "Marker=a%2Fb%3Dc&FunctionVersion=ALL&empty=",
        "flag&z=%20space",
        "Marker=%E2%9C%93",
    ],
)
def test_query_strings_repeated_unsorted_and_encoded(query: str) -> None:
    assert sign(query=query).verify().verified


# RFC 3986 reserved characters (gen-delims and sub-delims), plus '%' and a space.
RESERVED = ":/?#[]@!$&'()*+,;=% "


def _pct(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode())


def _query_cases() -> list[str]:
    cases: list[str] = []
    for c in RESERVED:
        cases += [f"Marker=a{_pct(c)}b", f"n{_pct(c)}m=v", f"Marker=a{_pct(c).lower()}b"]
        if c not in "&# %":  # a raw '&' splits, '#' starts the fragment, ' ' breaks HTTP
            cases.append(f"Marker=a{c}b&MaxItems=5")
            if c != "=":
                cases.append(f"n{c}m=v")
    return cases


@pytest.mark.parametrize("query", _query_cases())
def test_every_reserved_character_in_a_query_signed_by_botocore(query: str) -> None:
    # botocore signs a URL's query as sent; the documented form re-encodes. Both must pass.
    assert sign(query=query).verify().verified


@pytest.mark.parametrize("marker", ["YWJj+ZGVm/Z2g=", "a+b;c=d", "+/=", "x;y", "%2B+"])
def test_literal_plus_and_semicolon_in_values(marker: str) -> None:
    assert sign(query=f"FunctionVersion=ALL&Marker={marker}").verify().verified


def test_the_two_canonical_forms_cannot_be_swapped() -> None:
    # Signed as sent over "a+b" (a literal plus): only those bytes pass, not "a%20b" (a space),
    # nor "a%2Bb" (its documented form, which the client did not sign), nor anything added.
    wire = sign(query="Marker=a+b")
    for other in ("Marker=a%20b", "Marker=a%2Bb", "Marker=a%2Bc", "Marker=a+b&x=1"):
        wire.query = other
        with raises(InvalidSignatureException, MISMATCH):
            wire.verify()
    # Signed in the documented form: every spelling of the same values passes.
    wire = sign(query="Marker=a%2Bb")
    for other in ("Marker=a+b", "Marker=a%2bb"):
        wire.query = other
        assert wire.verify().verified


@pytest.mark.parametrize("c", [c for c in RESERVED if c not in "/"])
def test_every_reserved_character_in_a_path_signed_by_botocore(c: str) -> None:
    assert sign("GET", f"/2015-03-31/functions/f{_pct(c)}x/configuration").verify().verified
    if c not in "?#% ":
        assert sign("GET", f"/2015-03-31/functions/f{c}x/configuration").verify().verified


def test_presigned_url_with_reserved_characters() -> None:
    query = "&".join(f"p{i}=a{_pct(c)}b" for i, c in enumerate(RESERVED))
    assert presign(query=query).verify().verified


@pytest.mark.parametrize(
    "body", [b"", b"{}", bytes(range(256)) * 100, "ünïcødé".encode(), b"\x00" * 7]
)
def test_bodies(body: bytes) -> None:
    assert sign("POST", ARN_PATH, body=body).verify().verified


def test_signed_custom_headers_and_whitespace() -> None:
    wire = sign(
        "POST",
        ARN_PATH,
        body=b"{}",
        headers={
            "Content-Type": "application/json",
            "X-Amz-Invocation-Type": "Event",
            "X-Amz-Client-Context": "  spaced   out  value ",
        },
    )
    assert "x-amz-client-context" in wire.headers["Authorization"]
    assert wire.verify().verified


def test_unsigned_x_amz_headers_are_not_refused() -> None:
    # Lambda (unlike S3, which answers "There were headers present in the request which were
    # not signed") accepts headers outside SignedHeaders: AWS's own SigV4 examples sign only
    # host and x-amz-date. Brazier does the same; decision 0015 records the replay risk and why
    # the server should be reached over TLS (--tls-cert/--tls-key) off loopback.
    wire = sign("POST", ARN_PATH, body=b"{}")
    wire.headers["X-Amz-Log-Type"] = "Tail"
    assert "x-amz-log-type" not in wire.headers["Authorization"]
    assert wire.verify().verified


def test_repeated_header_values_join_with_commas() -> None:
    wire = sign(headers={"X-Multi": "a,b"})
    raw = [(k.lower().encode(), v.encode()) for k, v in wire.headers.items() if k != "X-Multi"] + [
        (b"x-multi", b"a"),
        (b"X-Multi", b"b"),
    ]
    assert wire.verify(headers=Headers(raw=raw)).verified


def test_starlette_headers_case_insensitive() -> None:
    wire = sign("POST", ARN_PATH, body=b"x")
    raw = [(k.lower().encode(), v.encode()) for k, v in wire.headers.items()]
    assert wire.verify(headers=Headers(raw=raw)).verified


def test_session_token_is_signed_and_accepted() -> None:
    wire = sign(token="FwoGZXIvYXdzEXAMPLETOKEN")
    assert wire.headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLETOKEN"
    assert wire.verify().verified
    wire.headers["X-Amz-Security-Token"] = "other"
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_declared_content_sha256_must_match_the_body() -> None:
    body = b'{"x": 1}'
    good = sign("POST", ARN_PATH, body=body, headers={"X-Amz-Content-SHA256": "0" * 64})
    with raises(InvalidSignatureException, MISMATCH):
        good.verify()
    digest = hashlib.sha256(body).hexdigest()
    assert sign("POST", ARN_PATH, body=body, headers={"X-Amz-Content-SHA256": digest}).verify()


def test_unsigned_payload_is_honoured_as_declared() -> None:
    # The client opted out of body signing (S3 style); the body is then not covered.
    wire = sign("POST", ARN_PATH, body=b"{}", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    wire.body = b"anything"
    assert wire.verify().verified


def test_clock_skew_within_five_minutes_is_fine() -> None:
    wire = sign()
    assert wire.verify(now=wire.date + timedelta(minutes=5)).verified
    assert wire.verify(now=wire.date - timedelta(minutes=5)).verified
    naive = (wire.date + timedelta(minutes=1)).replace(tzinfo=None)
    assert wire.verify(now=naive).verified


def test_presigned_url() -> None:
    wire = presign(query="Qualifier=live&b=x%2Fy")
    assert "X-Amz-Signature=" in wire.query
    assert wire.verify() == Principal(AKID, ACCOUNT, "us-east-1", verified=True)
    assert wire.verify(now=wire.date + timedelta(seconds=300)).verified


def test_presigned_url_with_session_token() -> None:
    wire = presign(token="TOKEN/with+chars=")
    assert "X-Amz-Security-Token=" in wire.query
    assert wire.verify().verified


# --- rejected ----------------------------------------------------------------------------------


def test_wrong_secret() -> None:
    with raises(InvalidSignatureException, MISMATCH) as info:
        sign(secret="x" * 40).verify()
    assert info.value.status == 403
    assert info.value.body() == {"message": MISMATCH}


def test_unknown_access_key() -> None:
    with raises(
        UnrecognizedClientException, "The security token included in the request is invalid."
    ) as info:
        sign(key="AKIAUNKNOWNUNKNOWN00").verify()
    assert info.value.status == 403


def test_tampered_body() -> None:
    wire = sign("POST", ARN_PATH, body=b'{"a": 1}')
    wire.body = b'{"a": 2}'
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_tampered_signed_header() -> None:
    wire = sign("POST", ARN_PATH, body=b"{}", headers={"X-Amz-Invocation-Type": "Event"})
    wire.headers["X-Amz-Invocation-Type"] = "RequestResponse"
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_unsigned_extra_header_is_ignored() -> None:
    wire = sign()
    wire.headers["User-Agent"] = "changed by a proxy"
    assert wire.verify().verified


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", "/2015-03-31/functions/bar/invocations"),
        ("path", ARN_PATH.replace("foo", "fop")),
        ("query", "Qualifier=2"),
        ("query", "Qualifier=1&Qualifier=1"),
        ("method", "PUT"),
    ],
)
def test_tampered_request_line(field: str, value: str) -> None:
    wire = sign("POST", ARN_PATH, query="Qualifier=1", body=b"{}")
    setattr(wire, field, value)
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_signed_header_missing_from_request() -> None:
    wire = sign("POST", ARN_PATH, body=b"{}", headers={"X-Amz-Invocation-Type": "Event"})
    del wire.headers["X-Amz-Invocation-Type"]
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_host_must_be_signed() -> None:
    wire = sign()
    auth = wire.headers["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    wire.headers["Authorization"] = auth
    with raises(
        InvalidSignatureException, "'Host' must be a 'SignedHeader' in the AWS Authorization."
    ):
        wire.verify()


def test_expired_signature() -> None:
    wire = sign()
    now = wire.date + timedelta(minutes=5, seconds=1)
    fmt = "%Y%m%dT%H%M%SZ"
    expected = (
        f"Signature expired: {wire.date:{fmt}} is now earlier than "
        f"{now - timedelta(minutes=5):{fmt}} ({now:{fmt}} - 5 min.)"
    )
    with raises(InvalidSignatureException, expected) as info:
        wire.verify(now=now)
    assert info.value.status == 403


def test_signature_from_the_future() -> None:
    wire = sign()
    now = wire.date - timedelta(minutes=6)
    fmt = "%Y%m%dT%H%M%SZ"
    expected = (
        f"Signature not yet current: {wire.date:{fmt}} is still later than "
        f"{now + timedelta(minutes=5):{fmt}} ({now:{fmt}} + 5 min.)"
    )
    with raises(InvalidSignatureException, expected):
        wire.verify(now=now)


def test_expired_presigned_url() -> None:
    wire = presign(expires=60)
    now = wire.date + timedelta(seconds=61)
    fmt = "%Y%m%dT%H%M%SZ"
    expected = (
        f"Signature expired: {wire.date:{fmt}} is now earlier than "
        f"{now - timedelta(seconds=60):{fmt}} ({now:{fmt}} - 1 min.)"
    )
    with raises(InvalidSignatureException, expected):
        wire.verify(now=now)


def test_tampered_presigned_query() -> None:
    wire = presign(query="Qualifier=1")
    wire.query = wire.query.replace("Qualifier=1", "Qualifier=2")
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()


def test_presigned_expiry_over_a_week() -> None:
    wire = presign()
    wire.query = wire.query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801")
    with raises(IncompleteSignatureException):
        wire.verify()


def test_missing_authentication() -> None:
    wire = sign()
    del wire.headers["Authorization"]
    with raises(MissingAuthenticationTokenException, "Missing Authentication Token") as info:
        wire.verify()
    assert info.value.status == 403
    assert info.value.body() == {"message": "Missing Authentication Token"}


def test_other_authorization_schemes_count_as_missing() -> None:
    wire = sign()
    wire.headers["Authorization"] = "Bearer abc"
    with raises(MissingAuthenticationTokenException, "Missing Authentication Token"):
        wire.verify()


def _with_auth(auth: str, *, date: str | None = "20261126T120000Z") -> Wire:
    headers = {"Host": "127.0.0.1:9000", "Authorization": auth}
    if date is not None:
        headers["X-Amz-Date"] = date
    return Wire(
        "GET", "/2015-03-31/functions/", "", headers, b"", datetime(2026, 11, 26, 12, tzinfo=UTC)
    )


CRED = f"{AKID}/20261126/us-east-1/lambda/aws4_request"
SIG = "0" * 64


@pytest.mark.parametrize(
    ("auth", "date", "cls", "message"),
    [
        (
            f"AWS4-HMAC-SHA256 Credential={CRED}",
            "20261126T120000Z",
            IncompleteSignatureException,
            "Authorization header requires 'Signature' parameter. "
            "Authorization header requires 'SignedHeaders' parameter. "
            f"Authorization=AWS4-HMAC-SHA256 Credential={CRED}",
        ),
        (
            "AWS4-HMAC-SHA256",
            None,
            IncompleteSignatureException,
            "Authorization header requires 'Credential' parameter. "
            "Authorization header requires 'Signature' parameter. "
            "Authorization header requires 'SignedHeaders' parameter. "
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            "header. Authorization=AWS4-HMAC-SHA256",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders, Signature={SIG}",
            "20261126T120000Z",
            IncompleteSignatureException,
            "'SignedHeaders' not a valid key=value pair (missing equal-sign) in Authorization "
            f"header: 'AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders, Signature={SIG}'.",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=host;x-amz-date, Signature={SIG}",
            "2026-11-26T12:00:00Z",
            IncompleteSignatureException,
            "Date must be in ISO-8601 'basic format'. Got '2026-11-26T12:00:00Z'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        ),
        (
            f"AWS4-HMAC-SHA512 Credential={CRED}, SignedHeaders=host;x-amz-date, Signature={SIG}",
            "20261126T120000Z",
            IncompleteSignatureException,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20261126/us-east-1/lambda, "
            f"SignedHeaders=host;x-amz-date, Signature={SIG}",
            "20261126T120000Z",
            IncompleteSignatureException,
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{AKID}/20261126/us-east-1/lambda'",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={AKID}/20261125/moon/s3/aws5_request, "
            f"SignedHeaders=host;x-amz-date, Signature={SIG}",
            "20261126T120000Z",
            InvalidSignatureException,
            "Credential should be scoped to a valid region, not 'moon'. "
            "Credential should be scoped to correct service: 'lambda'. "
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            "not 'aws5_request'. "
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            "from HTTP: '20261125' != '20261126', from '20261126T120000Z'.",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["sigv4", "none"])
def test_malformed_authorization(
    auth: str, date: str | None, cls: type[LambdaError], message: str, mode: str
) -> None:
    with raises(cls, message) as info:
        _with_auth(auth, date=date).verify(mode=mode)
    assert info.value.status == (400 if cls is IncompleteSignatureException else 403)


def test_incomplete_presigned_query() -> None:
    wire = presign()
    wire.query = "&".join(
        p for p in wire.query.split("&") if not p.startswith(("X-Amz-Signature=", "X-Amz-Date="))
    )
    with raises(
        IncompleteSignatureException,
        "AWS query-string parameters must include 'X-Amz-Signature'. "
        "AWS query-string parameters must include 'X-Amz-Date'. "
        "Re-examine the query-string parameters.",
    ):
        wire.verify()


# --- none mode ---------------------------------------------------------------------------------


def test_none_mode_accepts_unsigned_requests_as_the_default_account() -> None:
    wire = sign()
    del wire.headers["Authorization"]
    assert wire.verify(mode="none") == Principal(None, DEFAULT_ACCOUNT, "eu-west-1", verified=False)


def test_none_mode_accepts_any_secret_for_a_known_key() -> None:
    principal = sign(secret="wrong", region="us-west-2").verify(mode="none")
    assert principal == Principal(AKID, ACCOUNT, "us-west-2", verified=False)


def test_none_mode_unknown_key_gets_the_default_account() -> None:
    principal = sign(key="test").verify(mode="none")
    assert principal == Principal("test", DEFAULT_ACCOUNT, "us-east-1", verified=False)


def test_none_mode_ignores_clock_skew_and_host() -> None:
    wire = sign()
    assert wire.verify(mode="none", now=wire.date + timedelta(days=3)).access_key_id == AKID
    auth = wire.headers["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    wire.headers["Authorization"] = auth
    assert wire.verify(mode="none").access_key_id == AKID


def test_none_mode_presigned() -> None:
    wire = presign()
    assert wire.verify(mode="none", now=wire.date + timedelta(days=30)).account_id == ACCOUNT


def test_empty_signed_headers_fails_the_host_rule() -> None:
    wire = _with_auth(f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=, Signature={SIG}")
    with raises(
        InvalidSignatureException, "'Host' must be a 'SignedHeader' in the AWS Authorization."
    ):
        wire.verify()


def test_an_http_date_header_stands_in_for_x_amz_date() -> None:
    wire = _with_auth(
        f"AWS4-HMAC-SHA256 Credential={CRED}, SignedHeaders=date;host, Signature={SIG}", date=None
    )
    wire.headers["Date"] = "Thu, 26 Nov 2026 12:00:00 GMT"
    # Well formed, so the request gets as far as the signature comparison.
    with raises(InvalidSignatureException, MISMATCH):
        wire.verify()
