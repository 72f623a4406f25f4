"""Differential tests: our python client and the real awslambdaric, same handler, same wire.

awslambdaric (a dev dependency) is AWS's own client, so whatever it posts and prints is the
reference. Both run on the interpreter running the tests, against their own fake Runtime API, and
get the same invocations with the same request ids.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import SANDBOX_INIT, RuntimeProcess, lambda_env
from .fake_runtime_api import FakeRuntimeAPI

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("awslambdaric") is None, reason="awslambdaric is not installed"
)

APP = """
import decimal, logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)

class Boom(Exception):
    pass

def handler(event, context):
    kind = event.get("kind")
    print("print", kind)
    logger.info("info\\nsecond line %s", kind)
    if kind == "raise":
        raise Boom("it went wrong")
    if kind == "set":
        return {1}
    if kind == "decimal":
        return {"d": decimal.Decimal("1.10"), "u": "é", "n": None}
    if kind == "context":
        return [context.function_name, context.memory_limit_in_mb, context.aws_request_id,
                context.invoked_function_arn, context.client_context.custom,
                context.client_context.client.app_title, context.identity.cognito_identity_id]
    return {"ok": kind}
"""

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def run_both(
    tmp_path: Path,
    handler: str,
    invocations: list[dict[str, Any]],
    **env: str,
) -> list[tuple[list[Any], str]]:
    """Run each client through the same invocations; returns (posts, stdout) per client."""
    task = tmp_path / "task"
    task.mkdir(exist_ok=True)
    (task / "app.py").write_text(textwrap.dedent(APP))
    ours = (
        f"import sys; sys.path.insert(0, {str(SANDBOX_INIT)!r}); import python_runtime; "
        f"sys.path.insert(0, ''); python_runtime.main({handler!r})"
    )
    results = []
    for argv in ([sys.executable, "-c", ours], [sys.executable, "-m", "awslambdaric", handler]):
        api = FakeRuntimeAPI()
        proc_env = lambda_env(api, task, handler, PYTHONPATH=str(task), **env)
        proc = RuntimeProcess(argv, task, proc_env)
        try:
            posts: list[Any] = []
            if handler == "app.handler":
                for inv in invocations:
                    rid = api.push(**inv)
                    post = api.wait_post(rid)
                    posts.append((post.kind, post.headers.get("content-type"), post.body))
            else:
                post = api.wait_init_error()
                posts.append((post.headers.get("lambda-runtime-function-error-type"), post.body))
                proc.wait_exit()
        finally:
            proc.kill()
            api.close()
        results.append((posts, STAMP.sub("<ts>", proc.stdout)))
    return results


INVOCATIONS: list[dict[str, Any]] = [
    {"event": {"kind": "plain"}, "request_id": "req-1"},
    {"event": {"kind": "raise"}, "request_id": "req-2"},
    {"event": {"kind": "set"}, "request_id": "req-3"},
    {"event": {"kind": "decimal"}, "request_id": "req-4"},
    # (simplejson words some parse errors differently from json: "Expecting value" is the same)
    {"raw": b"nope", "request_id": "req-5"},
    {
        "event": {"kind": "context"},
        "request_id": "req-6",
        "headers": {
            "Lambda-Runtime-Client-Context": '{"custom": {"a": 1}, "client": {"app_title": "t"}}',
            "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId": "id-9"}',
        },
    },
    {"event": {"kind": "last"}, "request_id": "req-7"},
]


@pytest.mark.parametrize(
    "env",
    [{}, {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}],
    ids=["default", "python3.12-env"],
)
def test_invocations_match(tmp_path, env):
    (ours_posts, ours_out), (ric_posts, ric_out) = run_both(
        tmp_path, "app.handler", INVOCATIONS, **env
    )
    assert ours_posts == ric_posts
    # awslambdaric leaves "\n" inside a logging record; we turn it into "\r" (one line per
    # record for the host's line-based collector). Everything else is byte for byte.
    assert ours_out == ric_out.replace("info\nsecond", "info\rsecond")


@pytest.mark.parametrize("handler", ["app.nosuch", "nomodule.handler", "app"])
def test_init_errors_match(tmp_path, handler):
    (ours_posts, ours_out), (ric_posts, ric_out) = run_both(tmp_path, handler, [])
    assert ours_posts == ric_posts
    assert ours_out == ric_out


def test_json_logging_matches(tmp_path):
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"}
    (ours_posts, ours_out), (ric_posts, ric_out) = run_both(
        tmp_path, "app.handler", INVOCATIONS[:2], **env
    )
    assert ours_posts == ric_posts
    assert ours_out == ric_out
