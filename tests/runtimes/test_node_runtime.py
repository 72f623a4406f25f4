"""The node runtime client against a fake Runtime API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import NODE, SANDBOX_INIT, RuntimeProcess, lambda_env
from .fake_runtime_api import FakeRuntimeAPI

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def write(task: Path, name: str, code: str) -> None:
    path = task / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))


def start(
    api: FakeRuntimeAPI,
    task: Path,
    spawned: list[RuntimeProcess],
    handler: str = "index.handler",
    **env: str,
) -> RuntimeProcess:
    assert NODE is not None
    argv = [NODE, str(SANDBOX_INIT / "node_runtime.mjs")]
    proc = RuntimeProcess(argv, task, lambda_env(api, task, handler, **env))
    spawned.append(proc)
    return proc


CONTEXT_APP = """
export const handler = async (event, context) => ({
  event,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity ?? null,
  clientContext: context.clientContext ?? null,
  tenantId: context.tenantId ?? null,
  callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
  remaining: context.getRemainingTimeInMillis(),
  methods: [typeof context.done, typeof context.succeed, typeof context.fail],
  trace: process.env._X_AMZN_TRACE_ID ?? null,
  cwd: process.cwd(),
});
"""


def test_async_handler_context_and_env(api, task, spawned):
    write(task, "index.mjs", CONTEXT_APP)
    start(api, task, spawned)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn:7"
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    rid = api.push(
        {"k": "é"},
        arn=arn,
        deadline_ms=int(time.time() * 1000) + 5000,
        headers={"Lambda-Runtime-Trace-Id": trace},
    )
    post = api.wait_post(rid)
    assert post.kind == "response"
    assert post.headers["content-type"] == "application/json"
    got = post.json()
    assert 3000 < got.pop("remaining") <= 5000
    assert got == {
        "event": {"k": "é"},
        "functionName": "fn",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": arn,
        "memoryLimitInMB": "256",
        "awsRequestId": rid,
        "logGroupName": "/aws/lambda/fn",
        "logStreamName": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "identity": None,
        "clientContext": None,
        "tenantId": None,
        "callbackWaitsForEmptyEventLoop": True,
        "methods": ["function", "function", "function"],
        "trace": trace,
        "cwd": str(task),
    }
    rid = api.push({})
    assert api.wait_post(rid).json()["trace"] is None  # unset when the header is absent
    assert api.connections == 1  # one keep-alive socket for everything


def test_client_context_identity_tenant(api, task, spawned):
    write(task, "index.mjs", CONTEXT_APP)
    start(api, task, spawned)
    cc = {"custom": {"foo": "bar"}, "client": {"snap": ["crackle", "pop"]}, "env": {"fizz": "b"}}
    ident = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    rid = api.push(
        {},
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(cc),
            "Lambda-Runtime-Cognito-Identity": json.dumps(ident),
            "Lambda-Runtime-Aws-Tenant-Id": "t-1",
        },
    )
    got = api.wait_post(rid).json()
    assert got["clientContext"] == cc
    assert got["identity"] == ident
    assert got["tenantId"] == "t-1"


def test_callback_waits_for_empty_event_loop(api, task, spawned):
    write(
        task,
        "index.js",
        """
        let flushed = [];
        exports.handler = (event, context, callback) => {
          if (event.dontWait) context.callbackWaitsForEmptyEventLoop = false;
          setTimeout(() => flushed.push(event.n), 300);
          callback(null, { n: event.n, flushedBefore: [...flushed] });
        };
        """,
    )
    start(api, task, spawned)
    t0 = time.monotonic()
    rid = api.push({"n": 1})
    assert api.wait_post(rid).json() == {"n": 1, "flushedBefore": []}
    assert time.monotonic() - t0 >= 0.25  # the response waited for the timer
    t0 = time.monotonic()
    rid = api.push({"n": 2, "dontWait": True})
    assert api.wait_post(rid).json() == {"n": 2, "flushedBefore": [1]}
    assert time.monotonic() - t0 < 0.25


def test_sync_handler_and_context_methods(api, task, spawned):
    write(
        task,
        "index.cjs",
        """
        exports.handler = (event, context, callback) => {
          if (event.mode === "succeed") return context.succeed({ via: "succeed" });
          if (event.mode === "done") return context.done(null, "done!");
          if (event.mode === "fail") return context.fail(new TypeError("failed"));
          if (event.mode === "string") return callback("plain string error");
          // otherwise: return nothing, never call back -> null when the loop drains
        };
        """,
    )
    start(api, task, spawned)
    rid = api.push({"mode": "succeed"})
    assert api.wait_post(rid).json() == {"via": "succeed"}
    rid = api.push({"mode": "done"})
    assert api.wait_post(rid).json() == "done!"
    rid = api.push({"mode": "nothing"})
    post = api.wait_post(rid)
    assert (post.kind, post.body) == ("response", b"null")
    rid = api.push({"mode": "fail"})
    post = api.wait_post(rid)
    assert post.kind == "error"
    assert post.json()["errorType"] == "TypeError"
    rid = api.push({"mode": "string"})
    assert api.wait_post(rid).json() == {
        "errorType": "string",
        "errorMessage": "plain string error",
        "trace": [],
    }


def test_thrown_and_rejected_errors(api, task, spawned):
    write(
        task,
        "index.mjs",
        """
        export const handler = async (event) => {
          if (event.sync) throw new Error("Error: some_error_msg");
          await new Promise((r) => setTimeout(r, 1));
          const e = new RangeError("later");
          e.code = "E42";
          throw e;
        };
        """,
    )
    proc = start(api, task, spawned)
    rid = api.push({"sync": True})
    post = api.wait_post(rid)
    assert post.kind == "error"
    assert "lambda-runtime-function-error-type" not in post.headers
    cause = json.loads(post.headers["lambda-runtime-function-xray-error-cause"])
    assert cause["exceptions"][0]["type"] == "Error"
    assert cause["exceptions"][0]["stack"][0]["path"].endswith("index.mjs")
    body = post.json()
    assert list(body) == ["errorType", "errorMessage", "trace"]
    assert body["errorType"] == "Error"
    assert body["errorMessage"] == "Error: some_error_msg"
    assert body["trace"][0] == "Error: Error: some_error_msg"
    assert body["trace"][1].startswith("    at handler (file://")
    out = proc.wait_output("Invoke Error")
    line = next(ln for ln in out.split("\n") if "Invoke Error" in ln)
    m = re.fullmatch(rf"{TS}\t{rid}\tERROR\tInvoke Error \t(\{{.*\}})", line)
    assert m
    logged = json.loads(m.group(1))
    assert logged["errorType"] == "Error"
    assert logged["stack"][0] == "Error: Error: some_error_msg"

    rid = api.push({})
    body = api.wait_post(rid).json()
    assert (body["errorType"], body["errorMessage"]) == ("RangeError", "later")


def test_unserializable_result(api, task, spawned):
    write(
        task,
        "index.mjs",
        "export const handler = async () => { const a = {}; a.self = a; return a; };\n",
    )
    start(api, task, spawned)
    rid = api.push({})
    post = api.wait_post(rid)
    assert post.kind == "error"
    body = post.json()
    assert (body["errorType"], body["errorMessage"]) == (
        "Error",
        "Unable to stringify response body",
    )


def test_import_error(api, task, spawned):
    proc = start(api, task, spawned, handler="index.handler")
    post = api.wait_init_error()
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.ImportModuleError"
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert body["errorMessage"].startswith("Error: Cannot find module 'index'")
    assert body["trace"][0].startswith("Runtime.ImportModuleError: Error: Cannot find module")
    assert proc.wait_exit() == 1
    assert api.next_requests == []
    assert re.search(rf"{TS}\tundefined\tERROR\tUncaught Exception \t\{{", proc.stdout)


def test_handler_not_found(api, task, spawned):
    write(task, "index.js", "exports.handler = async () => 1;\nexports.notfn = 3;\n")
    proc = start(api, task, spawned, handler="index.nosuch")
    body = api.wait_init_error().json()
    assert body["errorType"] == "Runtime.HandlerNotFound"
    assert body["errorMessage"] == "index.nosuch is undefined or not exported"
    assert proc.wait_exit() == 1


def test_handler_not_a_function_and_syntax_error(api, task, spawned, tmp_path):
    write(task, "index.js", "exports.notfn = 3;\n")
    proc = start(api, task, spawned, handler="index.notfn")
    assert api.wait_init_error().json()["errorMessage"] == "index.notfn is not a function"
    assert proc.wait_exit() == 1

    api2 = FakeRuntimeAPI()
    try:
        task2 = tmp_path / "task2"
        write(task2, "index.js", "exports.handler = (;\n")
        proc2 = start(api2, task2, spawned)
        body = api2.wait_init_error().json()
        assert body["errorType"] == "Runtime.UserCodeSyntaxError"
        assert body["errorMessage"].startswith("SyntaxError: ")
        assert proc2.wait_exit() == 1
    finally:
        api2.close()


def test_nested_module_paths_and_package_type(api, task, spawned):
    write(task, "package.json", '{"type": "module"}')
    write(task, "src/lib/app.js", "export const handlers = { main: async () => 'nested-esm' };\n")
    start(api, task, spawned, handler="src/lib/app.handlers.main")
    rid = api.push({})
    assert api.wait_post(rid).json() == "nested-esm"


def test_esm_bare_import_from_node_path(api, task, spawned, tmp_path):
    layer = tmp_path / "opt" / "nodejs" / "node_modules"
    write(layer, "layerlib/package.json", '{"name": "layerlib", "main": "main.js"}')
    write(layer, "layerlib/main.js", "module.exports = { greet: () => 'from layer' };\n")
    write(
        task,
        "index.mjs",
        "import lib from 'layerlib';\nexport const handler = async () => lib.greet();\n",
    )
    start(api, task, spawned, NODE_PATH=f"/nonexistent:{layer}")
    rid = api.push({})
    assert api.wait_post(rid).json() == "from layer"


def test_text_logging_levels(api, task, spawned):
    write(
        task,
        "index.mjs",
        """
        console.log("at init");
        export const handler = async () => {
          console.debug("debug-line");
          console.info("two\\nlines %d", 5);
          console.warn({ a: 1 });
          console.error(new Error("logged error"));
          process.stdout.write("raw write\\n");
          return 1;
        };
        """,
    )
    proc = start(api, task, spawned, AWS_LAMBDA_LOG_LEVEL="INFO")
    rid = api.push({})
    api.wait_post(rid)
    out = proc.wait_output("raw write")
    lines = out.split("\n")
    assert re.fullmatch(rf"{TS}\tundefined\tINFO\tat init", lines[0])
    assert re.fullmatch(rf"{TS}\t{rid}\tINFO\ttwo\rlines 5", lines[1])
    assert re.fullmatch(rf"{TS}\t{rid}\tWARN\t\{{ a: 1 \}}", lines[2])
    assert re.fullmatch(rf"{TS}\t{rid}\tERROR\tError: logged error\r    at .*", lines[3])
    assert lines[4] == "raw write"
    assert "debug-line" not in out


def test_json_logging(api, task, spawned):
    write(
        task,
        "index.mjs",
        """
        export const handler = async () => {
          console.info("hello %s", "world");
          console.warn({ structured: true });
          console.error("failed", new TypeError("bad"));
          throw new Error("boom");
        };
        """,
    )
    proc = start(api, task, spawned, AWS_LAMBDA_LOG_FORMAT="JSON")
    rid = api.push({}, headers={"Lambda-Runtime-Aws-Tenant-Id": "t-9"})
    api.wait_post(rid)
    out = proc.wait_output('"boom"')
    records = [json.loads(ln) for ln in out.split("\n") if ln.startswith("{")]
    for r in records:
        assert re.fullmatch(TS, r.pop("timestamp"))
    assert records[0] == {
        "level": "INFO",
        "requestId": rid,
        "tenantId": "t-9",
        "message": "hello world",
    }
    assert records[1]["message"] == {"structured": True}
    assert records[2]["errorType"] == "TypeError"
    assert records[2]["errorMessage"] == "bad"
    assert records[2]["message"].startswith("failed TypeError: bad")
    assert records[3]["level"] == "ERROR"
    assert records[3]["message"]["errorType"] == "Error"
    assert records[3]["message"]["errorMessage"] == "boom"


TRACE_APP = """
import { execFileSync } from 'node:child_process';
export const handler = async (event) => {
  if (event.own) process.env._X_AMZN_TRACE_ID = event.own;
  if (event.drop) delete process.env._X_AMZN_TRACE_ID;
  const child = execFileSync('/bin/sh', ['-c', 'echo "${_X_AMZN_TRACE_ID-unset}"']).toString();
  return { trace: process.env._X_AMZN_TRACE_ID ?? null, child: child.trim(),
           listed: Object.keys(process.env).includes('_X_AMZN_TRACE_ID') };
};
"""


def test_trace_id_per_invoke_for_the_handler_and_its_processes(api, task, spawned):
    write(task, "index.mjs", TRACE_APP)
    start(api, task, spawned)
    for i, event in enumerate([{}, {"own": "mine"}, {}, {"drop": True}, {}, {}]):
        trace = f"Root=1-5bef4de7-{i:024x};Parent=9a9197af755a6419;Sampled=0"
        rid = api.push(event, headers={"Lambda-Runtime-Trace-Id": trace})
        seen = api.wait_post(rid).json()
        expected = None if event.get("drop") else event.get("own", trace)
        assert seen == {"trace": expected, "child": expected or "unset", "listed": bool(expected)}
    rid = api.push({})  # no trace header: unset
    assert api.wait_post(rid).json() == {"trace": None, "child": "unset", "listed": False}


HELPER = SANDBOX_INIT / "_brazier_trace_env.node"
CAN_BUILD = shutil.which("gcc") is not None and Path("/usr/include/node/node_api.h").exists()


@pytest.mark.skipif(not CAN_BUILD, reason="no gcc or node headers: the helper is not built")
def test_the_native_trace_helper_leaks_no_memory(tmp_path):
    """process.env assignment (glibc setenv) keeps every value: ~155 bytes per invoke."""
    assert HELPER.exists(), "scripts/build-native.sh builds it (make test runs it)"
    script = tmp_path / "leak.cjs"
    script.write_text(
        textwrap.dedent(
            f"""
            const helper = require({json.dumps(str(HELPER))});
            const rss = () => process.memoryUsage().rss / 1024;
            const value = (i) => `Root=1-${{i.toString(16).padStart(8, '0')}}-0123456789abcdef;S=0`;
            for (let i = 0; i < 50000; i++) helper.set(value(i));  // warm up V8's heap
            global.gc();
            const before = rss();
            for (let i = 0; i < 400000; i++) helper.set(value(i));
            global.gc();
            if (process.env._X_AMZN_TRACE_ID !== value(399999)) throw new Error('not set');
            if (helper.set('x'.repeat(5000)) !== false) throw new Error('too long accepted');
            console.log(Math.round(rss() - before));
            """
        )
    )
    out = subprocess.run(
        [str(NODE), "--expose-gc", str(script)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 8 * 1024  # KiB; setenv grew by ~36 MiB over these 400,000
