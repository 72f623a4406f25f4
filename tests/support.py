"""Test support: a real brazier server in a subprocess, boto3 clients that check every response
against botocore's output shapes, and zip builders."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies, so no server outlives it."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """``brazier server`` as a child process on a free port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        args: tuple[str, ...] = (),
        prewarm: str = "none",
        open_files: tuple[int, int] | None = None,
    ):
        """``open_files``: the (soft, hard) RLIMIT_NOFILE the server starts with."""
        self.data_dir = data_dir
        self.open_files = open_files
        self.port = port or free_port()
        # Short-lived test servers start no zygotes up front (they cost CPU the tests need),
        # and have no egress unless a test asks (a function under test must never reach an
        # outside address; tests/network brings its own test internet).
        egress = () if "--egress" in args else ("--egress", "off")
        self.args = (*args, *egress, "--prewarm-runtimes", prewarm)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _in_child(self) -> None:
        _die_with_parent()
        if self.open_files is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "brazier", "server", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--log-level", "warning", *self.args],
                stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                preexec_fn=self._in_child,  # noqa: PLW1509 - started from the main thread
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@contextmanager
def running_server(data_dir: Path, **kw: Any) -> Iterator[ServerProcess]:
    srv = ServerProcess(data_dir, **kw).start()
    try:
        yield srv
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()


def create_key(data_dir: Path, account: str = "111122223333") -> dict[str, str]:
    """An access key of ``account`` from ``brazier keys create`` (AccessKeyId, SecretAccessKey)."""
    out = subprocess.run(
        [sys.executable, "-m", "brazier", "keys", "create", "--data-dir", str(data_dir),
         "--account-id", account],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


# -- shape checking ---------------------------------------------------------------------------

_validator = ParamValidator()


def _unknown_keys(shape: Shape, value: Any, path: str, out: list[str]) -> None:
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        for k, v in value.items():
            if k not in members:
                out.append(f"{path}.{k}")
            else:
                _unknown_keys(members[k], v, f"{path}.{k}", out)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            _unknown_keys(shape.member, v, f"{path}[{i}]", out)  # type: ignore[attr-defined]
    elif shape.type_name == "map" and isinstance(value, dict):
        for k, v in value.items():
            _unknown_keys(shape.value, v, f"{path}.{k}", out)  # type: ignore[attr-defined]


class ShapeChecker:
    """Hooks a boto3 client: every response must fit botocore's output shape exactly."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    def __call__(
        self, http_response: Any, parsed: Mapping[str, Any], model: OperationModel, **_: Any
    ) -> None:
        status = http_response.status_code
        if status >= 300:
            assert http_response.headers.get("x-amzn-ErrorType"), "error without x-amzn-ErrorType"
            assert http_response.headers.get("x-amzn-RequestId"), "error without x-amzn-RequestId"
            body = json.loads(http_response.content or b"{}")
            assert "message" in body or "Message" in body, f"error body without message: {body}"
            return
        assert http_response.headers.get("x-amzn-RequestId"), "reply without x-amzn-RequestId"
        shape = model.output_shape
        if shape is None:
            return
        data = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        if model.has_streaming_output:
            # The payload is a stream the caller reads; check the other members only.
            data = {k: v for k, v in data.items() if k != shape.serialization.get("payload")}
            report = _validator.validate(data, shape)
            assert not report.has_errors(), f"{model.name}: {report.generate_report()}"
            self.checked.append(model.name)
            return
        report = _validator.validate(data, shape)
        assert not report.has_errors(), f"{model.name}: {report.generate_report()}"
        raw = http_response.content
        ctype = http_response.headers.get("content-type", "")
        payload = shape.serialization.get("payload")
        if raw and "json" in ctype and payload is None:
            unknown: list[str] = []
            _unknown_keys(shape, json.loads(raw), model.name, unknown)
            assert not unknown, f"fields not in the {model.name} output shape: {unknown}"
        self.checked.append(model.name)


def lambda_client(
    url: str,
    *,
    region: str = "us-east-1",
    key: str = "AKIAIOSFODNN7EXAMPLE",
    secret: str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    checker: ShapeChecker | None = None,
    validate: bool = True,
) -> Any:
    client = boto3.client(
        "lambda",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(
            retries={"max_attempts": 1}, read_timeout=120, parameter_validation=validate
        ),
    )
    client.meta.events.register("after-call.lambda", checker or ShapeChecker())
    return client


# -- zips -------------------------------------------------------------------------------------


def make_zip(files: Mapping[str, str | bytes], *, modes: Mapping[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


HELLO_PY = make_zip({"app.py": "def handler(event, context):\n    return {'ok': True}\n"})


def wait_active(client: Any, name: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cfg = client.get_function_configuration(FunctionName=name)
        if cfg["State"] != "Pending" and cfg.get("LastUpdateStatus") != "InProgress":
            return dict(cfg)
        time.sleep(0.02)
    raise AssertionError(f"{name} did not settle: {cfg}")


Deploy = Callable[..., str]


def call(client: Any, name: str, payload: Any = None, **kw: Any) -> tuple[dict[str, Any], Any]:
    """Invoke and decode: (response without the stream, decoded JSON payload or raw bytes)."""
    body = b"" if payload is None else json.dumps(payload).encode()
    out = dict(client.invoke(FunctionName=name, Payload=body, **kw))
    raw = out.pop("Payload").read()
    try:
        return out, json.loads(raw) if raw else None
    except ValueError:
        return out, raw
