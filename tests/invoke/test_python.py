"""Python functions end to end: context, environment, errors, logs, Invoke options."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import Deploy, call

CONTEXT_APP = """
import os, json
def handler(event, context):
    print("event seen", json.dumps(event))
    return {
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "client_context": None if context.client_context is None else context.client_context.custom,
        "env": {k: v for k, v in os.environ.items()},
        "uid": os.getuid(),
        "cwd": os.getcwd(),
    }
"""


def test_context_and_environment(client: Any, deploy: Deploy) -> None:
    name = deploy(
        {"app.py": CONTEXT_APP}, MemorySize=256, Timeout=7,
        Environment={"Variables": {"GREETING": "hi"}},
    )  # fmt: skip
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out, body = call(client, name, {"x": 1}, ClientContext=ctx)
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in out
    assert body["event"] == {"x": 1}
    assert body["function_name"] == name
    assert body["function_version"] == "$LATEST"
    assert body["invoked_function_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert int(body["memory_limit_in_mb"]) == 256
    assert re.fullmatch(r"[0-9a-f-]{36}", body["aws_request_id"])
    # Invoke's x-amzn-RequestId is the invocation's request id, as in Lambda.
    assert out["ResponseMetadata"]["RequestId"] == body["aws_request_id"]
    assert body["log_group_name"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", body["log_stream_name"])
    assert 5000 < body["remaining"] <= 7000
    assert body["client_context"] == {"k": "v"}
    assert body["uid"] != 0
    assert body["cwd"] == "/var/task"
    env = body["env"]
    assert env["GREETING"] == "hi"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["TZ"] == ":UTC"
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == body["log_stream_name"]
    # Nothing of the server's own environment leaks in.
    assert "HOME" not in env or env["HOME"] != "/root"
    assert not any(k.startswith(("PYENV", "BRAZIER", "PYTEST")) for k in env)


def test_log_tail_and_start_end_report(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": CONTEXT_APP})
    out, body = call(client, name, {"y": 2}, LogType="Tail")
    tail = base64.b64decode(out["LogResult"]).decode()
    rid = body["aws_request_id"]
    assert f"START RequestId: {rid} Version: $LATEST\n" in tail
    assert 'event seen {"y": 2}\n' in tail
    assert f"END RequestId: {rid}\n" in tail
    report = re.search(
        rf"REPORT RequestId: {rid}\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: (\d+) MB\tInit Duration: (\d+\.\d\d) ms\t\n",
        tail,
    )
    assert report, tail
    assert 1 <= int(report.group(3)) <= 128
    # A warm invoke has no Init Duration.
    out, body = call(client, name, {}, LogType="Tail")
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "Init Duration" not in tail
    assert "INIT_START" not in tail


def test_handler_exception_shape(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "def handler(e, c):\n    raise ValueError('boom 1')\n"})
    out, body = call(client, name, {})
    assert out["StatusCode"] == 200
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom 1"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["requestId"])
    assert any("/var/task/app.py" in frame for frame in body["stackTrace"])
    # The environment survives a handled error: the next invoke is warm.
    out, _ = call(client, name, {}, LogType="Tail")
    assert "Init Duration" not in base64.b64decode(out["LogResult"]).decode()


def test_import_error_is_init_error(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "import does_not_exist\n"})
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'app'" in body["errorMessage"]
    name = deploy({"app.py": "x = 1\n"}, handler="app.nosuch")
    out, body = call(client, name, {})
    assert body["errorType"] == "Runtime.HandlerNotFound"


def test_timeout_resets_and_keeps_tmp(client: Any, deploy: Deploy) -> None:
    app = (
        "import os, time\n"
        "def handler(e, c):\n"
        "    if e.get('write'):\n"
        "        open('/tmp/marker', 'w').write('kept')\n"
        "    if e.get('sleep'):\n"
        "        time.sleep(e['sleep'])\n"
        "    return {'marker': os.path.exists('/tmp/marker')}\n"
    )
    name = deploy({"app.py": app}, Timeout=1)
    out, body = call(client, name, {"write": True, "sleep": 3}, LogType="Tail")
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(
        r"RequestId: [0-9a-f-]{36} Error: Task timed out after 1\.00 seconds", body["errorMessage"]
    )
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "Task timed out after 1.00 seconds" in tail
    assert "Status: timeout" in tail
    out, body = call(client, name, {}, LogType="Tail")
    assert body["marker"] is True  # /tmp survives the reset
    assert "Init Duration" in base64.b64decode(out["LogResult"]).decode()  # re-initialised


def test_out_of_memory(client: Any, deploy: Deploy) -> None:
    # Allocate well past MemorySize (and past MemorySize + EphemeralStorage, the limit where /tmp
    # falls back to a tmpfs: decision 0022).
    app = (
        "def handler(e, c):\n"
        "    keep = [bytearray(32 * 1024 * 1024) for _ in range(40)]\n"
        "    return len(keep)\n"
    )
    name = deploy({"app.py": app}, MemorySize=128, Timeout=60)
    out, body = call(client, name, {}, LogType="Tail")
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert "signal: killed" in body["errorMessage"]
    assert "Error Type: Runtime.OutOfMemory" in base64.b64decode(out["LogResult"]).decode()


def test_crash_exit_error(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "import os\ndef handler(e, c):\n    os._exit(3)\n"})
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: exit status 3")
    out, body = call(client, name, {})  # a fresh environment serves the next one
    assert body["errorType"] == "Runtime.ExitError"


def test_response_too_large(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "def handler(e, c):\n    return 'x' * (7 * 1024 * 1024)\n"})
    out, body = call(client, name, {})
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in body["errorMessage"]


def test_request_limits_and_bad_payload(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": "def handler(e, c):\n    return e\n"})
    with pytest.raises(client.exceptions.InvalidRequestContentException) as exc:
        client.invoke(FunctionName=name, Payload=b"not json")
    assert "Could not parse request body into json" in str(exc.value)
    big = json.dumps("x" * (6 * 1024 * 1024)).encode()
    with pytest.raises(client.exceptions.ClientError) as exc:
        client.invoke(FunctionName=name, Payload=big)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert exc.value.response["Error"]["Code"] in (
        "RequestEntityTooLargeException", "RequestTooLargeException",
    )  # fmt: skip


def test_invocation_types(client: Any, deploy: Deploy, server: Any) -> None:
    app = "def handler(e, c):\n    open('/tmp/ran', 'a').write('x')\n    return e\n"
    name = deploy({"app.py": app})
    out = client.invoke(FunctionName=name, InvocationType="DryRun")
    assert out["StatusCode"] == 204
    out = client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"e":1}')
    assert out["StatusCode"] == 202
    assert out["Payload"].read() == b""
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", InvocationType="DryRun")
    out, body = call(client, name, {"q": 1}, Qualifier="$LATEST")
    assert body == {"q": 1}
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Qualifier="7")


def test_pending_function_is_409(client: Any, fname: str) -> None:
    from support import make_zip

    # Many files make unpacking (the Pending phase) take a while; invoke at once.
    files: dict[str, str | bytes] = {f"pkg/f{i}.txt": "x" for i in range(20000)}
    files["app.py"] = "def handler(e, c):\n    return 1\n"
    client.create_function(
        FunctionName=fname, Runtime="python3.11", Role="arn:aws:iam::000000000000:role/r",
        Handler="app.handler", Code={"ZipFile": make_zip(files)},
    )  # fmt: skip
    try:
        client.invoke(FunctionName=fname, InvocationType="DryRun")
    except client.exceptions.ResourceConflictException as exc:
        message = str(exc)
    else:
        pytest.skip("the function became Active before the invoke")
    assert "The function is currently in the following state: Pending" in message


def test_update_code_takes_effect(client: Any, deploy: Deploy) -> None:
    from support import make_zip, wait_active

    name = deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    assert call(client, name, {})[1] == 1
    client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    )
    wait_active(client, name)
    assert call(client, name, {})[1] == 2
    client.update_function_configuration(FunctionName=name, Environment={"Variables": {"VV": "3"}})
    wait_active(client, name)
    client.update_function_code(
        FunctionName=name,
        ZipFile=make_zip(
            {"app.py": "import os\ndef handler(e, c):\n    return os.environ['VV']\n"}
        ),
    )
    wait_active(client, name)
    assert call(client, name, {})[1] == "3"


@pytest.mark.parametrize("minor", [9, 10, 11, 12, 13])
def test_every_python_runtime(client: Any, deploy: Deploy, minor: int) -> None:
    if not list(Path("/root/.pyenv/versions").glob(f"3.{minor}.*")) and not shutil.which(
        f"python3.{minor}"
    ):
        pytest.skip(f"python3.{minor} is not installed on this machine")
    app = "import sys\ndef handler(e, c):\n    return list(sys.version_info[:2])\n"
    name = deploy({"app.py": app}, runtime=f"python3.{minor}")
    out, body = call(client, name, {})
    assert "FunctionError" not in out, body
    assert body == [3, minor]


def test_tracing_active_passes_a_sampled_trace(client: Any, deploy: Deploy) -> None:
    app = "import os\ndef handler(e, c):\n    return os.environ.get('_X_AMZN_TRACE_ID')\n"
    name = deploy({"app.py": app}, TracingConfig={"Mode": "Active"})
    out, trace = call(client, name, {}, LogType="Tail")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1", trace)
    root = trace.split(";")[0].removeprefix("Root=")
    assert f"XRAY TraceId: {root}\tSegmentId: " in base64.b64decode(out["LogResult"]).decode()
    name = deploy({"app.py": app})
    out, trace = call(client, name, {}, LogType="Tail")
    assert trace.endswith("Sampled=0")
    assert "XRAY" not in base64.b64decode(out["LogResult"]).decode()


def test_json_log_format(client: Any, deploy: Deploy) -> None:
    app = (
        "import logging\nlogging.getLogger().setLevel(logging.INFO)\n"
        "def handler(e, c):\n    logging.info('structured')\n    return 1\n"
    )
    name = deploy({"app.py": app}, LoggingConfig={"LogFormat": "JSON"})
    out, _ = call(client, name, {}, LogType="Tail")
    lines = [json.loads(line) for line in base64.b64decode(out["LogResult"]).decode().splitlines()]
    kinds = [line.get("type") for line in lines]
    assert kinds[0] == "platform.initStart"
    assert "platform.start" in kinds
    assert kinds[-2:] == ["platform.runtimeDone", "platform.report"]
    report = lines[-1]["record"]
    assert report["status"] == "success"
    assert report["metrics"]["memorySizeMB"] == 128
    assert "initDurationMs" in report["metrics"]
    app_lines = [line for line in lines if line.get("message") == "structured"]
    assert app_lines
    assert app_lines[0]["level"] == "INFO"
    client.update_function_configuration(
        FunctionName=name, LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "WARN"}
    )
    from support import wait_active

    wait_active(client, name)
    out, _ = call(client, name, {}, LogType="Tail")
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "platform." not in tail
    assert "structured" in tail


@pytest.mark.slow
def test_init_timeout(client: Any, deploy: Deploy) -> None:
    """Init is limited to 10 s (Lambda's on-demand init timeout), whatever the function timeout."""
    app = "import time\ntime.sleep(30)\ndef handler(e, c):\n    return 1\n"
    name = deploy({"app.py": app}, Timeout=30)
    out, body = call(client, name, {}, LogType="Tail")
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    tail = base64.b64decode(out["LogResult"]).decode()
    init = re.search(
        r"INIT_REPORT Init Duration: (\d+\.\d\d) ms\tPhase: init\tStatus: timeout", tail
    )
    assert init, tail
    assert 9900 <= float(init.group(1)) <= 12000
