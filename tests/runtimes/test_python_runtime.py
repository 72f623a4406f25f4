"""The python runtime client against a fake Runtime API, on every python3.9+ interpreter found."""

from __future__ import annotations

import json
import re
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import PYTHONS, SANDBOX_INIT, RuntimeProcess, lambda_env, run_snippet
from .fake_runtime_api import FakeRuntimeAPI

pytestmark = pytest.mark.parametrize("python", PYTHONS)

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def write(task: Path, name: str, code: str) -> None:
    path = task / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))


def start(
    python: str,
    api: FakeRuntimeAPI,
    task: Path,
    spawned: list[RuntimeProcess],
    handler: str = "app.handler",
    **env: str,
) -> RuntimeProcess:
    # Mimic the zygote: import first, then call main() with cwd and sys.path set up.
    code = (
        f"import sys; sys.path.insert(0, {str(SANDBOX_INIT)!r}); import python_runtime; "
        f"sys.path.insert(0, {str(task)!r}); python_runtime.main({handler!r})"
    )
    proc = RuntimeProcess([python, "-c", code], task, lambda_env(api, task, handler, **env))
    spawned.append(proc)
    return proc


ECHO = """
import json, os
def handler(event, context):
    return {"event": event}
"""


def test_success_roundtrip(python, api, task, spawned):
    write(task, "app.py", ECHO)
    start(python, api, task, spawned)
    for i in range(3):
        rid = api.push({"n": i, "s": "héllo"})
        post = api.wait_post(rid)
        assert post.kind == "response"
        assert post.json() == {"event": {"n": i, "s": "héllo"}}
        assert post.headers["content-type"] == "application/json"
    # one keep-alive connection for every /next and every post
    assert api.connections == 1


def test_exits_when_next_fails(python, api, task, spawned):
    write(task, "app.py", ECHO)
    proc = start(python, api, task, spawned)
    rid = api.push({})
    api.wait_post(rid)
    api.close()  # answers the pending /next with 500, as a platform telling the runtime to go
    assert proc.wait_exit() == 1
    assert "/next answered 500" in proc.stdout


def test_context_fields(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        def handler(event, context):
            ident = context.identity
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "identity": [ident.cognito_identity_id, ident.cognito_identity_pool_id],
                "client_context": context.client_context,
                "tenant_id": context.tenant_id,
                "remaining": context.get_remaining_time_in_millis(),
                "repr": repr(context)[:14],
            }
        """,
    )
    start(python, api, task, spawned)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:live"
    rid = api.push({}, arn=arn, deadline_ms=int(time.time() * 1000) + 5000)
    got = api.wait_post(rid).json()
    remaining = got.pop("remaining")
    assert 3000 < remaining <= 5000
    assert got == {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": arn,
        "memory_limit_in_mb": "256",
        "aws_request_id": rid,
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "identity": [None, None],
        "client_context": None,
        "tenant_id": None,
        "repr": "LambdaContext(",
    }
    # a past deadline clamps to 0
    rid = api.push({}, deadline_ms=int(time.time() * 1000) - 5000)
    assert api.wait_post(rid).json()["remaining"] == 0


def test_client_context_identity_tenant(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        def handler(event, context):
            cc = context.client_context
            c = cc.client
            return {
                "client": [c.installation_id, c.app_title, c.app_version_name,
                           c.app_version_code, c.app_package_name],
                "custom": cc.custom,
                "env": cc.env,
                "identity": [context.identity.cognito_identity_id,
                             context.identity.cognito_identity_pool_id],
                "tenant": context.tenant_id,
                "w3c": context.w3c(),
            }
        """,
    )
    start(python, api, task, spawned)
    cc = {
        "client": {
            "installation_id": "i-1",
            "app_title": "t",
            "app_version_name": "1.0",
            "app_version_code": "10",
            "app_package_name": "com.x",
        },
        "custom": {"foo": "bar"},
        "env": {"fizz": "buzz"},
        "w3c": {"traceparent": "00-abc-01", "junk": "x"},
    }
    rid = api.push(
        {},
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(cc),
            "Lambda-Runtime-Cognito-Identity": json.dumps(
                {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
            ),
            "Lambda-Runtime-Aws-Tenant-Id": "tenant-7",
        },
    )
    assert api.wait_post(rid).json() == {
        "client": ["i-1", "t", "1.0", "10", "com.x"],
        "custom": {"foo": "bar"},
        "env": {"fizz": "buzz"},
        "identity": ["id-1", "pool-1"],
        "tenant": "tenant-7",
        "w3c": {"traceparent": "00-abc-01"},
    }


def test_environment_and_trace_id(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        import os, subprocess
        def handler(event, context):
            if event.get("own"):
                os.environ["_X_AMZN_TRACE_ID"] = event["own"]
            if event.get("drop"):
                del os.environ["_X_AMZN_TRACE_ID"]
            child = subprocess.run(
                ["/bin/sh", "-c", 'echo "${_X_AMZN_TRACE_ID-unset}"'],
                capture_output=True, text=True,
            )
            return {"trace": os.environ.get("_X_AMZN_TRACE_ID"),
                    "child": child.stdout.strip(),
                    "region": os.environ["AWS_REGION"],
                    "cwd": os.getcwd()}
        """,
    )
    start(python, api, task, spawned)
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    rid = api.push({}, headers={"Lambda-Runtime-Trace-Id": trace})
    assert api.wait_post(rid).json() == {
        "trace": trace,
        "child": trace,
        "region": "us-east-1",
        "cwd": str(task),
    }
    # The next invoke's id replaces it for Python and for processes the handler starts alike,
    # also after the handler set or deleted the variable itself.
    for i, event in enumerate([{}, {"own": "mine"}, {}, {"drop": True}, {}, {}]):
        trace = f"Root=1-5bef4de7-{i:024x};Parent=9a9197af755a6419;Sampled=0"
        rid = api.push(event, headers={"Lambda-Runtime-Trace-Id": trace})
        seen = api.wait_post(rid).json()
        expected = event.get("own", trace) if not event.get("drop") else None
        assert (seen["trace"], seen["child"]) == (expected, expected or "unset")
    rid = api.push({})  # no trace header: the variable is unset again
    assert api.wait_post(rid).json()["trace"] is None
    assert api.wait_post(rid).json()["child"] == "unset"


def test_a_new_trace_id_per_invoke_leaks_no_memory(python):
    """glibc's setenv keeps every value it was given: setting the trace id with it leaked ~140
    bytes per invoke (28 MiB per 200,000)."""
    out = run_snippet(
        python,
        """
        import ctypes, os, python_runtime
        def rss_kib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        getenv = ctypes.CDLL(None).getenv
        getenv.restype = ctypes.c_char_p
        trace = python_runtime._TraceVariable.get()
        values = [f"Root=1-5bef4de7-{i:024x};Parent=9a9197af755a6419;Sampled=0"
                  for i in range(50000)]
        trace.set(values[0])
        before = rss_kib()
        for value in values:
            trace.set(value)
        assert getenv(b"_X_AMZN_TRACE_ID") == values[-1].encode()
        assert os.environ["_X_AMZN_TRACE_ID"] == values[-1]
        print(rss_kib() - before)
        """,
    )
    assert int(out) < 1024  # KiB; setenv grew by ~7 MiB here


def test_handler_exception(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        def helper():
            raise ValueError("boom ünïcode")

        def handler(event, context):
            helper()
        """,
    )
    proc = start(python, api, task, spawned)
    rid = api.push({})
    post = api.wait_post(rid)
    assert post.kind == "error"
    # awslambdaric sends no error-type header on invoke errors, but an X-Ray cause
    assert "lambda-runtime-function-error-type" not in post.headers
    assert post.headers["content-type"] == "application/json"
    cause = json.loads(post.headers["lambda-runtime-function-xray-error-cause"])
    assert cause["exceptions"][0]["type"] == "ValueError"
    assert [f["label"] for f in cause["exceptions"][0]["stack"]] == ["handler", "helper"]
    app = str(task / "app.py")
    assert post.json() == {
        "errorMessage": "boom ünïcode",
        "errorType": "ValueError",
        "requestId": rid,
        "stackTrace": [
            f'  File "{app}", line 6, in handler\n    helper()\n',
            f'  File "{app}", line 3, in helper\n    raise ValueError("boom ünïcode")\n',
        ],
    }
    out = proc.wait_output("[ERROR] ValueError")
    nb = "\u00a0"
    expected = (
        "[ERROR] ValueError: boom ünïcode\rTraceback (most recent call last):\r"
        f'{nb * 2}File "{app}", line 6, in handler\r{nb * 4}helper()\r'
        f'{nb * 2}File "{app}", line 3, in helper\r{nb * 4}raise ValueError("boom ünïcode")\n'
    )
    assert expected in out
    # the runtime keeps serving after a function error
    write(task, "unused.py", "")
    rid2 = api.push({})
    assert api.wait_post(rid2).kind == "error"


def test_import_error(python, api, task, spawned):
    proc = start(python, api, task, spawned, handler="app.handler")
    post = api.wait_init_error()
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    assert post.json() == {
        "errorMessage": "Unable to import module 'app': No module named 'app'",
        "errorType": "Runtime.ImportModuleError",
        "requestId": "",
        "stackTrace": [],
    }
    assert proc.wait_exit() == 1
    assert api.next_requests == []
    out = proc.stdout
    assert re.search(rf"\[WARNING\]\t{TS}\t\tLAMBDA_WARNING: Unhandled exception\.", out)
    assert (
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'app': "
        "No module named 'app'\rTraceback (most recent call last):\n"
    ) in out


def test_handler_not_found(python, api, task, spawned):
    write(task, "app.py", ECHO)
    proc = start(python, api, task, spawned, handler="app.nosuch")
    post = api.wait_init_error()
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.HandlerNotFound"
    assert post.json() == {
        "errorMessage": "Handler 'nosuch' missing on module 'app'",
        "errorType": "Runtime.HandlerNotFound",
        "requestId": "",
        "stackTrace": [],
    }
    assert proc.wait_exit() == 1


def test_syntax_error_and_init_exception(python, api, task, spawned):
    write(task, "bad.py", "def handler(:\n")
    proc = start(python, api, task, spawned, handler="bad.handler")
    post = api.wait_init_error()
    body = post.json()
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"].startswith("Syntax error in module 'bad': ")
    assert body["stackTrace"][0].startswith(f'  File "{task / "bad.py"}" Line 1\n    ')
    assert proc.wait_exit() == 1


def test_exception_at_import(python, api, task, spawned):
    write(task, "boom.py", 'raise Exception("Runtime startup fails")\n')
    proc = start(python, api, task, spawned, handler="boom.handler")
    body = api.wait_init_error().json()
    assert body["errorType"] == "Exception"
    assert body["errorMessage"] == "Runtime startup fails"
    assert body["requestId"] == ""
    # the trace ends in the user's module, and never shows this runtime's own frames
    assert body["stackTrace"][-1] == (
        f'  File "{task / "boom.py"}", line 1, in <module>\n'
        '    raise Exception("Runtime startup fails")\n'
    )
    assert not any("python_runtime.py" in line for line in body["stackTrace"])
    assert proc.wait_exit() == 1


def test_nested_handler_paths(python, api, task, spawned):
    write(task, "pkg/__init__.py", "")
    write(task, "pkg/sub/__init__.py", "")
    write(task, "pkg/sub/mod.py", "def handler(e, c):\n    return 'nested'\n")
    start(python, api, task, spawned, handler="pkg/sub/mod.handler")
    rid = api.push({})
    assert api.wait_post(rid).json() == "nested"


def test_unmarshal_error(python, api, task, spawned):
    write(task, "app.py", ECHO)
    proc = start(python, api, task, spawned)
    rid = api.push(raw=b"{not json")
    post = api.wait_post(rid)
    assert post.kind == "error"
    assert post.json() == {
        "errorMessage": "Unable to unmarshal input: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)",
        "errorType": "Runtime.UnmarshalError",
        "requestId": rid,
        "stackTrace": [],
    }
    proc.wait_output("[ERROR] Runtime.UnmarshalError: Unable to unmarshal input")
    rid = api.push({"ok": 1})
    assert api.wait_post(rid).kind == "response"


def test_marshal_error_and_special_values(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        import decimal
        def handler(event, context):
            if event == "set":
                return {1, 2}
            if event == "bytes":
                return b"\\x00raw"
            return {"d": decimal.Decimal("1.10"), "n": decimal.Decimal("NaN"),
                    "f": float("inf"), "t": (1, 2), "u": "é"}
        """,
    )
    start(python, api, task, spawned)
    rid = api.push("set")
    post = api.wait_post(rid)
    assert post.json() == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "requestId": rid,
        "stackTrace": [],
    }
    rid = api.push("bytes")
    post = api.wait_post(rid)
    assert post.body == b"\x00raw"
    assert post.headers["content-type"] == "application/unknown"
    rid = api.push("other")
    body = api.wait_post(rid).body
    assert body == b'{"d": 1.10, "n": NaN, "f": Infinity, "t": [1, 2], "u": "\\u00e9"}'


def test_python312_env_keeps_unicode(python, api, task, spawned):
    write(task, "app.py", "def handler(e, c):\n    return {'u': 'é'}\n")
    start(python, api, task, spawned, AWS_EXECUTION_ENV="AWS_Lambda_python3.12")
    rid = api.push({})
    assert api.wait_post(rid).body == '{"u": "é"}'.encode()


LOGGING_APP = """
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.info("at init")
def handler(event, context):
    print("plain print")
    logger.info("multi\\nline")
    logging.getLogger("child").warning("warned %s", 42, extra={"k": "v"})
    logger.debug("hidden")
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("caught")
    return None
"""


def test_text_logging(python, api, task, spawned):
    write(task, "app.py", LOGGING_APP)
    proc = start(python, api, task, spawned)
    rid = api.push({})
    assert api.wait_post(rid).body == b"null"
    out = proc.wait_output("caught")
    lines = out.split("\n")
    assert re.fullmatch(rf"\[INFO\]\t{TS}\t\tat init", lines[0])
    assert lines[1] == "plain print"
    assert re.fullmatch(rf"\[INFO\]\t{TS}\t{rid}\tmulti\rline", lines[2])
    assert re.fullmatch(rf"\[WARNING\]\t{TS}\t{rid}\twarned 42", lines[3])
    assert re.fullmatch(
        rf"\[ERROR\]\t{TS}\t{rid}\tcaught\rTraceback \(most recent call last\):\r.*"
        r"ZeroDivisionError: division by zero",
        lines[4],
    )
    assert "hidden" not in out


def test_json_logging(python, api, task, spawned):
    write(task, "app.py", LOGGING_APP)
    proc = start(
        python, api, task, spawned, AWS_LAMBDA_LOG_FORMAT="JSON", AWS_LAMBDA_LOG_LEVEL="DEBUG"
    )
    rid = api.push({})
    api.wait_post(rid)
    out = proc.wait_output("caught")
    lines = [ln for ln in out.split("\n") if ln]
    assert lines[1] == "plain print"
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # awslambdaric: whole seconds
    assert all(stamp.fullmatch(r.pop("timestamp")) for r in records)
    assert records[0] == {"level": "INFO", "message": "at init", "logger": "root", "requestId": ""}
    assert records[1] == {
        "level": "INFO",
        "message": "multi\nline",
        "logger": "root",
        "requestId": rid,
    }
    assert records[2] == {
        "level": "WARNING",
        "message": "warned 42",
        "logger": "child",
        "requestId": rid,
        "k": "v",
    }
    assert records[3]["message"] == "caught"  # the app's own setLevel(INFO) hides "hidden"
    assert records[3]["errorType"] == "ZeroDivisionError"
    assert records[3]["errorMessage"] == "division by zero"
    assert records[3]["location"].endswith(":handler:14")
    assert records[3]["stackTrace"][0].startswith('  File "')


def test_json_error_log_line(python, api, task, spawned):
    write(task, "app.py", "def handler(e, c):\n    raise KeyError('k')\n")
    proc = start(python, api, task, spawned, AWS_LAMBDA_LOG_FORMAT="json")
    rid = api.push({})
    api.wait_post(rid)
    line = next(ln for ln in proc.wait_output('"errorType"').split("\n") if "errorType" in ln)
    record = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record.pop("timestamp"))
    assert record["level"] == "ERROR"
    assert record["errorType"] == "KeyError"
    assert record["errorMessage"] == "'k'"
    assert record["requestId"] == rid


def test_log_level_filters(python, api, task, spawned):
    write(
        task,
        "app.py",
        """
        import logging
        def handler(e, c):
            logging.info("info-line")
            logging.error("error-line")
        """,
    )
    proc = start(python, api, task, spawned, AWS_LAMBDA_LOG_LEVEL="ERROR")
    rid = api.push({})
    api.wait_post(rid)
    out = proc.wait_output("error-line")
    assert "info-line" not in out


def test_telemetry_log_fd(python, api, task, spawned, tmp_path):
    # The framed protocol: the runtime writes frames to the fd named by _LAMBDA_TELEMETRY_LOG_FD.
    write(
        task,
        "app.py",
        """
        import logging, os
        def handler(e, c):
            logging.warning("framed\\nrecord")
            return os.environ.get("_LAMBDA_TELEMETRY_LOG_FD")
        """,
    )
    frames = tmp_path / "frames.bin"
    code = (
        f"import os, sys; fd = os.open({str(frames)!r}, os.O_WRONLY | os.O_CREAT); "
        "os.dup2(fd, 9); os.environ['_LAMBDA_TELEMETRY_LOG_FD'] = '9'; "
        f"sys.path.insert(0, {str(SANDBOX_INIT)!r}); import python_runtime; "
        f"sys.path.insert(0, {str(task)!r}); python_runtime.main('app.handler')"
    )
    proc = RuntimeProcess([python, "-c", code], task, lambda_env(api, task, "app.handler"))
    spawned.append(proc)
    rid = api.push({})
    assert api.wait_post(rid).json() is None  # the variable is removed after reading
    data = frames.read_bytes()
    ftype = int.from_bytes(data[0:4], "big")
    length = int.from_bytes(data[4:8], "big")
    stamp_us = int.from_bytes(data[8:16], "big")
    assert ftype == 0xA55A0013  # text, WARN
    assert abs(stamp_us / 1e6 - time.time()) < 60
    assert re.fullmatch(
        rf"\[WARNING\]\t{TS}\t{rid}\tframed\nrecord\n", data[16 : 16 + length].decode()
    )
