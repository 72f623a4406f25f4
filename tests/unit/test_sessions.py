"""Environments' session credentials (decision 0029): the issuer's contract, and SigV4
verification of requests botocore signs with them, in both auth modes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from brazier.api.sigv4 import Principal, verify_request
from brazier.model.errors import InvalidSignatureException, UnrecognizedClientException
from brazier.model.sessions import SESSION_TOKEN_PREFIX, SessionCredentials, SessionIssuer
from brazier.store.sessions import SessionStore

DEFAULT_ACCOUNT = "000000000000"
INVALID = "The security token included in the request is invalid."
STS_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEnotbrazier"  # a real-AWS-shaped token brazier did not mint


def _verify(
    sessions: SessionStore,
    key: str,
    secret: str,
    token: str | None,
    *,
    mode: Literal["sigv4", "none"] = "sigv4",
    presign: bool = False,
) -> Principal:
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/2015-03-31/functions/")
    creds = Credentials(key, secret, token)
    signer = (
        SigV4QueryAuth(creds, "lambda", "us-east-1", expires=60)
        if presign
        else SigV4Auth(creds, "lambda", "us-east-1")
    )
    signer.add_auth(request)
    url = urlsplit(str(request.url))
    headers = {k: v for k, v in request.headers.items()}
    headers.setdefault("Host", url.netloc)
    return verify_request(
        "GET", url.path, url.query, headers, b"",
        lookup_secret=_no_operator_keys, now=datetime.now(UTC), mode=mode,
        default_region="us-east-1", default_account_id=DEFAULT_ACCOUNT,
        lookup_session=sessions.get,
    )  # fmt: skip


def _no_operator_keys(_key_id: str) -> SessionCredentials | None:
    return None


# -- the issuer's contract --------------------------------------------------------------------


def test_issue_mints_sts_shaped_credentials_for_the_account() -> None:
    store = SessionStore()
    issuer: SessionIssuer = store  # the worker's boundary
    a, b = issuer.issue("111122223333"), issuer.issue("111122223333")
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", a.access_key_id)
    assert len(a.secret_access_key) == 40
    assert a.session_token.startswith(SESSION_TOKEN_PREFIX)
    assert a.account_id == "111122223333"
    assert len({a.access_key_id, b.access_key_id}) == 2
    assert len({a.secret_access_key, b.secret_access_key, a.session_token, b.session_token}) == 4
    assert store.get(a.access_key_id) == a
    assert a.secret_access_key not in repr(a) and a.session_token not in repr(a)
    assert set(a.as_environment()) == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    }  # fmt: skip


def test_revoke_ends_one_session_and_is_idempotent() -> None:
    store = SessionStore()
    a, b = store.issue("111122223333"), store.issue("444455556666")
    store.revoke(a.access_key_id)
    store.revoke(a.access_key_id)
    store.revoke("ASIANEVERISSUED0000")
    assert store.get(a.access_key_id) is None
    assert store.get(b.access_key_id) == b
    assert len(store) == 1


# -- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sigv4", "none"])
@pytest.mark.parametrize("presign", [False, True])
def test_a_live_session_acts_as_its_account(mode: Literal["sigv4", "none"], presign: bool) -> None:
    store = SessionStore()
    s = store.issue("111122223333")
    p = _verify(store, s.access_key_id, s.secret_access_key, s.session_token, mode=mode,
                presign=presign)  # fmt: skip
    assert p.account_id == "111122223333"
    assert p.access_key_id == s.access_key_id
    assert p.verified is (mode == "sigv4")


@pytest.mark.parametrize("mode", ["sigv4", "none"])
def test_ended_forged_or_missing_tokens_are_invalid(mode: Literal["sigv4", "none"]) -> None:
    store = SessionStore()
    s = store.issue("111122223333")
    cases = [
        (s.access_key_id, s.session_token + "x"),  # forged token, live key
        (s.access_key_id, None),  # live key without its token
        (s.access_key_id, store.issue("111122223333").session_token),  # another session's
        ("ASIA" + "Z" * 16, s.session_token),  # live token, unknown key
    ]
    store_ended = SessionStore()
    ended = store_ended.issue("111122223333")
    store_ended.revoke(ended.access_key_id)
    for key, token in cases:
        with pytest.raises(UnrecognizedClientException) as exc:
            _verify(store, key, s.secret_access_key, token, mode=mode)
        assert exc.value.message == INVALID
    with pytest.raises(UnrecognizedClientException):
        _verify(store_ended, ended.access_key_id, ended.secret_access_key, ended.session_token,
                mode=mode)  # fmt: skip


def test_a_foreign_token_in_none_mode_is_still_the_default_account() -> None:
    """Emulator-style use with real-AWS credentials in the shell keeps working."""
    p = _verify(SessionStore(), "ASIAEXAMPLEEXAMPLE12", "x" * 40, STS_TOKEN, mode="none")
    assert p.account_id == DEFAULT_ACCOUNT
    with pytest.raises(UnrecognizedClientException):
        _verify(SessionStore(), "ASIAEXAMPLEEXAMPLE12", "x" * 40, STS_TOKEN, mode="sigv4")


def test_a_session_key_signs_with_its_own_secret() -> None:
    store = SessionStore()
    s = store.issue("111122223333")
    with pytest.raises(InvalidSignatureException):
        _verify(store, s.access_key_id, "y" * 40, s.session_token)
