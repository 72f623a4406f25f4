"""``--tls-cert/--tls-key``: the API over HTTPS, with a self-signed certificate made at test
time (openssl) and boto3 verifying against it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest

from support import ROOT, ServerProcess, create_key
from test_functions import create

ROLE = "arn:aws:iam::111122223333:role/r"

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")


def _self_signed(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class TlsServer(ServerProcess):
    def __init__(self, data_dir: Path, cert: Path, key: Path, *args: str) -> None:
        super().__init__(data_dir, args=("--tls-cert", str(cert), "--tls-key", str(key), *args))
        self.cert = cert

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> TlsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "brazier", "server", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--log-level", "warning", *self.args],
                stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT,
                preexec_fn=self._in_child,  # noqa: PLW1509 - started from the main thread
            )  # fmt: skip
        trust = ssl.create_default_context(cafile=str(self.cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1, verify=trust).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsServer, dict[str, str]]]:
    base = tmp_path_factory.mktemp("tls")
    cert, key_file = _self_signed(base)
    key = create_key(base / "data")
    srv = TlsServer(base / "data", cert, key_file, "--auth", "sigv4").start()
    yield srv, key
    srv.stop()


def _client(srv: TlsServer, key: dict[str, str], verify: str | bool) -> Any:
    return boto3.client(
        "lambda", endpoint_url=srv.url, region_name="us-east-1", verify=verify,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def test_boto3_over_https_with_the_certificate(tls: Any) -> None:
    srv, key = tls
    client = _client(srv, key, str(srv.cert))
    assert client.list_functions()["Functions"] == []
    create(client, "overtls", Role=ROLE)
    # Links the server hands out use the scheme it serves.
    location = client.get_function(FunctionName="overtls")["Code"]["Location"]
    assert location.startswith(srv.url + "/"), location


def test_an_untrusted_certificate_is_refused_by_the_client(tls: Any) -> None:
    srv, key = tls
    with pytest.raises(botocore.exceptions.SSLError):
        _client(srv, key, True).list_functions()


def test_plain_http_gets_no_api(tls: Any) -> None:
    srv, _ = tls
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{srv.port}/2015-03-31/functions/", timeout=5)


def _server_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brazier", "server", "--data-dir", str(tmp_path / "d"),
         "--port", "1", *args],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_bad_tls_flags_are_usage_errors(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    other, _ = _self_signed(
        tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path
    )
    for args, needle in [
        (("--tls-cert", str(cert)), "--tls-cert and --tls-key go together"),
        (("--tls-key", str(key)), "--tls-cert and --tls-key go together"),
        (("--tls-cert", str(key), "--tls-key", str(key)), "cannot use --tls-cert"),
        (("--tls-cert", str(other), "--tls-key", str(key)), "cannot use --tls-cert"),
        (("--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(key)), "does not exist"),
    ]:
        out = _server_exit(tmp_path, *args)
        assert out.returncode == 2, (args, out.stderr[-2000:])
        assert needle in out.stderr, (args, out.stderr[-2000:])
        assert "Traceback" not in out.stderr
