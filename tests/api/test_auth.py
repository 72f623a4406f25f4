"""SigV4 verification against operator-managed keys (``--auth sigv4``)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import botocore.exceptions
import httpx
import pytest

from support import ROOT, create_key, lambda_client


def test_valid_key_is_accepted_and_scopes_account(secured: Any) -> None:
    srv, key = secured
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"],
                           region="eu-central-1")  # fmt: skip
    settings = client.get_account_settings()
    assert settings["AccountUsage"]["FunctionCount"] == 0
    from test_functions import create

    out = create(client, "scoped", Role="arn:aws:iam::111122223333:role/r")
    assert out["FunctionArn"] == "arn:aws:lambda:eu-central-1:111122223333:function:scoped"


def test_wrong_secret_is_refused(secured: Any) -> None:
    srv, key = secured
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.list_functions()
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in err["Error"]["Message"]


def test_unknown_key_is_refused(secured: Any) -> None:
    srv, _ = secured
    client = lambda_client(srv.url, key="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.list_functions()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_request_is_refused(secured: Any) -> None:
    srv, _ = secured
    reply = httpx.get(srv.url + "/2015-03-31/functions")
    assert reply.status_code == 403
    assert reply.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_deleted_key_stops_working(secured: Any) -> None:
    srv, _ = secured
    key = create_key(srv.data_dir)
    client = lambda_client(srv.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    client.list_functions()
    subprocess.run(
        [sys.executable, "-m", "brazier", "keys", "delete", "--data-dir", str(srv.data_dir),
         key["AccessKeyId"]], check=True, cwd=ROOT,
    )  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.list_functions()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"
    listed = subprocess.run(
        [sys.executable, "-m", "brazier", "keys", "list", "--data-dir", str(srv.data_dir)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert key["AccessKeyId"] not in listed
    assert key["SecretAccessKey"] not in listed


def test_default_auth_is_none_on_loopback(server: Any) -> None:
    # Any well-formed signature is accepted on loopback, as local emulators do.
    client = lambda_client(server.url, key="AKIAANYTHING", secret="whatever")
    client.list_functions()
