"""Unmodified runtime clients against a real session: awslambdaric 4.2.2 and a curl bootstrap."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from brazier.runtime_api import FunctionError, FunctionResponse, InitError

from .helpers import invocation, run, serve

APP = textwrap.dedent(
    """
    import os

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("boom " + context.aws_request_id)
        return {
            "echo": event,
            "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn,
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
            "remaining_positive": context.get_remaining_time_in_millis() > 0,
        }
    """
)


def _awslambdaric_available() -> bool:
    try:
        import awslambdaric  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


needs_ric = pytest.mark.skipif(not _awslambdaric_available(), reason="awslambdaric not installed")


def function_env(port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_REGION": "us-east-1",
    }


@asynccontextmanager
async def process(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # so the whole tree (a shell and its curls) can be killed
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


@needs_ric
def test_awslambdaric_success_and_handler_exception(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)

    async def body() -> None:
        async with serve() as (session, port):
            argv = [sys.executable, "-m", "awslambdaric", "app.handler"]
            async with process(argv, tmp_path, function_env(port)) as proc:
                async with asyncio.timeout(30):
                    assert await session.wait_init() is None
                for i in range(3):
                    inv = invocation(
                        f"req-{i}",
                        json.dumps({"n": i}).encode(),
                        deadline_ms=int((time.time() + 60) * 1000),
                        trace_id=f"Root=1-00000000-00000000000000000000000{i};Sampled=0",
                    )
                    async with asyncio.timeout(10):
                        result = await session.invoke(inv)
                    assert isinstance(result, FunctionResponse), result
                    assert result.content_type == "application/json"
                    out = json.loads(result.body)
                    assert out == {
                        "echo": {"n": i},
                        "request_id": f"req-{i}",
                        "arn": inv.invoked_function_arn,
                        "trace": inv.trace_id,
                        "remaining_positive": True,
                    }
                    async with asyncio.timeout(10):
                        await session.wait_idle()

                result = await session.invoke(invocation("req-fail", b'{"fail": true}'))
                assert isinstance(result, FunctionError), result
                err = json.loads(result.body)
                assert err["errorType"] == "ValueError"
                assert err["errorMessage"] == "boom req-fail"
                assert err["requestId"] == "req-fail"
                assert isinstance(err["stackTrace"], list) and err["stackTrace"]
                # awslambdaric sends no Lambda-Runtime-Function-Error-Type on invoke errors.
                assert result.error_type_header is None
                assert result.error_type == "Runtime.Unknown"
                await session.wait_idle()
                assert proc.returncode is None
                stats = session.statistics()
                assert stats.invocations == 4
                assert stats.responses == 3
                assert stats.function_errors == 1

    run(body)


@needs_ric
@pytest.mark.parametrize(
    ("handler", "error_type"),
    [
        ("nosuchmodule.handler", "Runtime.ImportModuleError"),
        ("app.nosuch", "Runtime.HandlerNotFound"),
    ],
)
def test_awslambdaric_bad_handler_posts_init_error(
    tmp_path: Path, handler: str, error_type: str
) -> None:
    (tmp_path / "app.py").write_text(APP)

    async def body() -> None:
        async with serve() as (session, port):
            argv = [sys.executable, "-m", "awslambdaric", handler]
            async with process(argv, tmp_path, function_env(port)) as proc:
                # The worker may invoke before init is known: the invoke gets the init error.
                pending = asyncio.create_task(session.invoke(invocation()))
                async with asyncio.timeout(30):
                    outcome = await session.wait_init()
                assert isinstance(outcome, InitError)
                assert outcome.error_type == error_type
                assert outcome.error_type_header == error_type
                doc = json.loads(outcome.body)
                assert doc["errorType"] == error_type
                assert doc["requestId"] == ""
                assert await pending is outcome
                async with asyncio.timeout(30):
                    assert await proc.wait() == 1
                assert session.state.value == "InitError"

    run(body)


BOOTSTRAP = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  H=$(mktemp); EVENT=$(curl -sS -D "$H" "$API/invocation/next")
  ID=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$H" | tr -d '\r' | cut -d' ' -f2)
  rm -f "$H"
  RESP=$(printf '%s' "$EVENT" | ./handler) \
    && curl -sS -X POST "$API/invocation/$ID/response" -d "$RESP" >/dev/null \
    || curl -sS -X POST "$API/invocation/$ID/error" \
            -H 'Lambda-Runtime-Function-Error-Type: Unhandled' \
            -d '{"errorMessage":"handler failed","errorType":"HandlerError"}' >/dev/null
done
"""

HANDLER = r"""#!/bin/sh
EVENT=$(cat)
case "$EVENT" in
  *fail*) exit 1 ;;
  *) printf '{"got":%s}' "$EVENT" ;;
esac
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_bootstrap(tmp_path: Path) -> None:
    for name, text in (("bootstrap", BOOTSTRAP), ("handler", HANDLER)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)

    async def body() -> None:
        async with (
            serve() as (session, port),
            process([str(tmp_path / "bootstrap")], tmp_path, function_env(port)),
        ):
            async with asyncio.timeout(30):
                assert await session.wait_init() is None
            for i in range(3):
                async with asyncio.timeout(10):
                    result = await session.invoke(invocation(f"id-{i}", b'{"i":%d}' % i))
                assert result == FunctionResponse(
                    b'{"got":{"i":%d}}' % i, "application/x-www-form-urlencoded"
                )
                await session.wait_idle()
            result = await session.invoke(invocation("id-fail", b'{"fail":1}'))
            assert result == FunctionError(
                b'{"errorMessage":"handler failed","errorType":"HandlerError"}',
                "Runtime.Unknown",
                "Unhandled",
                "application/x-www-form-urlencoded",
            )
            await session.wait_idle()
            # curl opens a new connection per call.
            assert session.statistics().connections_accepted >= 9

    run(body)
