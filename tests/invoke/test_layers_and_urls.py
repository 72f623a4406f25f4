"""Layers at /opt in Python and Node, semver resolution, and function URLs end to end."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from support import Deploy, call, make_zip, wait_active


def _layer(client: Any, name: str, files: dict[str, str], **kw: Any) -> dict[str, Any]:
    return dict(
        client.publish_layer_version(LayerName=name, Content={"ZipFile": make_zip(files)}, **kw)
    )


def test_python_layers_import_and_paths(client: Any, deploy: Deploy, fname: str) -> None:
    first = _layer(client, f"{fname}-a", {
        "python/shared.py": "WHO = 'layer a'\n",
        "python/lib/python3.11/site-packages/sitepkg.py": "VALUE = 42\n",
        "bin/tool": "#!/bin/sh\necho tool\n",
    })  # fmt: skip
    second = _layer(client, f"{fname}-b", {"python/shared.py": "WHO = 'layer b'\n"})
    app = (
        "import os, shared, sitepkg\n"
        "def handler(e, c):\n"
        "    return [shared.WHO, sitepkg.VALUE, os.environ['PATH'], os.environ['LD_LIBRARY_PATH'],\n"
        "            sorted(os.listdir('/opt'))]\n"
    )
    name = deploy({"app.py": app}, Layers=[first["LayerVersionArn"], second["LayerVersionArn"]])
    out, body = call(client, name, {})
    assert "FunctionError" not in out, body
    assert body[0] == "layer b"  # later layers win
    assert body[1] == 42
    assert "/opt/bin" in body[2].split(":")
    assert "/opt/lib" in body[3].split(":")
    assert body[4] == ["bin", "python"]


def test_node_layer_modules(client: Any, deploy: Deploy, fname: str) -> None:
    lib = _layer(client, f"{fname}-n", {
        "nodejs/node_modules/greeter/package.json": '{"name": "greeter", "main": "index.js"}',
        "nodejs/node_modules/greeter/index.js": "exports.greet = (n) => `hello ${n}`;\n",
    })  # fmt: skip
    cjs = "const { greet } = require('greeter');\nexports.handler = async () => greet('cjs');\n"
    name = deploy({"index.js": cjs}, runtime="nodejs20.x", handler="index.handler",
                  Layers=[lib["LayerVersionArn"]])  # fmt: skip
    _, body = call(client, name, {})
    assert body == "hello cjs", body


def test_semver_range_is_pinned(client: Any, deploy: Deploy, fname: str) -> None:
    layer = f"{fname}-s"
    _layer(client, layer, {"python/v.py": "V = '1.4.0'\n"}, Description="semver:1.4.0")
    v141 = _layer(client, layer, {"python/v.py": "V = '1.4.1'\n"}, Description="semver:1.4.1")
    _layer(client, layer, {"python/v.py": "V = '2.0.0'\n"}, Description="semver:2.0.0")
    arn = v141["LayerArn"]
    name = deploy({"app.py": "import v\ndef handler(e, c):\n    return v.V\n"},
                  Layers=[f"{arn}:^1.4"])  # fmt: skip
    cfg = client.get_function_configuration(FunctionName=name)
    assert cfg["Layers"][0]["Arn"] == v141["LayerVersionArn"]  # resolved and pinned
    assert call(client, name, {})[1] == "1.4.1"
    # A newer 1.x appears: the configured function stays pinned until reconfigured.
    _layer(client, layer, {"python/v.py": "V = '1.5.0'\n"}, Description="semver:1.5.0")
    assert call(client, name, {})[1] == "1.4.1"
    client.update_function_configuration(FunctionName=name, Layers=[f"{arn}:^1.4"])
    wait_active(client, name)
    assert call(client, name, {})[1] == "1.5.0"


# -- function URLs -----------------------------------------------------------------------------

URL_APP = r"""
import base64, json
def handler(event, context):
    kind = event.get("queryStringParameters", {}).get("kind", "echo")
    if kind == "echo":
        return {"statusCode": 201, "headers": {"x-custom": "yes"}, "cookies": ["a=1; Path=/", "b=2"],
                "body": json.dumps({"event": event})}
    if kind == "binary":
        return {"statusCode": 200, "headers": {"content-type": "image/png"},
                "body": base64.b64encode(b"\x89PNG\x00\x01").decode(), "isBase64Encoded": True}
    if kind == "string":
        return "hello"
    if kind == "object":
        return {"plain": True}
    raise RuntimeError("boom")
"""


def _via_host(server: Any, url: str) -> tuple[str, dict[str, str]]:
    """``http://<id>.lambda-url.<region>.localhost:<port>/`` is routed by its Host header
    (browsers resolve *.localhost to loopback; the resolver here does not)."""
    host = url.split("//")[1].rstrip("/")
    return server.url, {"host": host}


def _public_url(client: Any, name: str, **kw: Any) -> str:
    url = client.create_function_url_config(FunctionName=name, AuthType="NONE", **kw)["FunctionUrl"]
    client.add_permission(
        FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    return str(url)


def test_url_request_and_response_mapping(client: Any, deploy: Deploy, server: Any) -> None:
    name = deploy({"app.py": URL_APP})
    url = _public_url(client, name)
    assert url.startswith("http://") and ".lambda-url.us-east-1.localhost:" in url
    url_id = url.split("//")[1].split(".")[0]
    path_form = f"{server.url}/lambda-url/{url_id}"
    host_base, host_header = _via_host(server, url)
    for base, extra in ((host_base, host_header), (path_form, {})):
        reply = httpx.post(
            f"{base}/some/path?kind=echo&a=1&a=2", content=b'{"x": 1}',
            headers={"content-type": "application/json", "cookie": "c1=v1; c2=v2", "x-multi": "m",
                     **extra},
        )  # fmt: skip
        assert reply.status_code == 201
        assert reply.headers["x-custom"] == "yes"
        assert reply.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
        event = reply.json()["event"]
        assert event["version"] == "2.0"
        assert event["routeKey"] == "$default"
        assert event["rawPath"] == "/some/path"
        assert event["rawQueryString"] == "kind=echo&a=1&a=2"
        assert event["queryStringParameters"] == {"kind": "echo", "a": "1,2"}
        assert event["cookies"] == ["c1=v1", "c2=v2"]
        assert "cookie" not in event["headers"]
        assert event["headers"]["x-multi"] == "m"
        assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
        assert event["requestContext"]["http"]["method"] == "POST"
        assert event["requestContext"]["apiId"] == url_id
        assert event["requestContext"]["accountId"] == "anonymous"
    binary_in = httpx.post(f"{path_form}/?kind=echo", content=b"\x00\x01\xff",
                           headers={"content-type": "application/octet-stream"})  # fmt: skip
    event = binary_in.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01\xff"
    reply = httpx.get(f"{path_form}/?kind=binary")
    assert reply.content == b"\x89PNG\x00\x01"
    assert reply.headers["content-type"] == "image/png"
    assert httpx.get(f"{path_form}/?kind=string").content == b"hello"
    reply = httpx.get(f"{path_form}/?kind=object")
    assert reply.json() == {"plain": True}
    assert reply.headers["content-type"] == "application/json"
    reply = httpx.get(f"{path_form}/?kind=fail")
    assert reply.status_code == 502
    assert reply.text == "Internal Server Error"


def test_url_access_rules(client: Any, deploy: Deploy, server: Any) -> None:
    name = deploy({"app.py": URL_APP})
    url = client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    url_id = url.split("//")[1].split(".")[0]
    # NONE without the public resource policy is refused, as Lambda does.
    assert httpx.get(f"{server.url}/lambda-url/{url_id}/?kind=string").status_code == 403
    unknown = httpx.get(f"{server.url}/lambda-url/{'z' * 32}/")
    assert unknown.status_code == 403
    assert unknown.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    client.update_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert httpx.get(f"{server.url}/lambda-url/{url_id}/?kind=string").status_code == 403


def test_url_iam_auth_with_signed_requests(client: Any, deploy: Deploy, server: Any) -> None:
    import subprocess
    import sys

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from support import ROOT

    key = json.loads(subprocess.run(
        [sys.executable, "-m", "brazier", "keys", "create", "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout)  # fmt: skip
    name = deploy({"app.py": URL_APP})
    url = client.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    target = f"{url}?kind=echo"
    base, host = _via_host(server, url)

    def signed(secret: str) -> httpx.Response:
        req = AWSRequest(method="GET", url=target)
        SigV4Auth(Credentials(key["AccessKeyId"], secret), "lambda", "us-east-1").add_auth(req)
        return httpx.get(f"{base}/?kind=echo", headers={**dict(req.headers.items()), **host})

    ok = signed(key["SecretAccessKey"])
    assert ok.status_code == 201, ok.text
    iam = ok.json()["event"]["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == key["AccessKeyId"]
    assert signed("wrong-secret").status_code == 403
    assert httpx.get(f"{base}/?kind=echo", headers=host).status_code == 403


def test_url_cors(client: Any, deploy: Deploy, server: Any) -> None:
    name = deploy({"app.py": URL_APP})
    url = _public_url(client, name, Cors={
        "AllowOrigins": ["https://example.com"], "AllowMethods": ["GET", "POST"],
        "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-custom"], "MaxAge": 300,
    })  # fmt: skip
    base, host = _via_host(server, url)
    pre = httpx.options(base, headers={"origin": "https://example.com",
                                       "access-control-request-method": "POST", **host})  # fmt: skip
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://example.com"
    assert pre.headers["access-control-allow-methods"] == "GET,POST"
    assert pre.headers["access-control-max-age"] == "300"
    got = httpx.get(f"{base}/?kind=string", headers={"origin": "https://example.com", **host})
    assert got.headers["access-control-allow-origin"] == "https://example.com"
    assert got.headers["access-control-expose-headers"] == "x-custom"
    other = httpx.get(f"{base}/?kind=string", headers={"origin": "https://evil.example", **host})
    assert "access-control-allow-origin" not in other.headers


def test_url_config_api(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": URL_APP})
    created = client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    with pytest.raises(client.exceptions.ResourceConflictException) as exc:
        client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert "FunctionUrlConfig exists for this Lambda function" in str(exc.value)
    got = client.get_function_url_config(FunctionName=name)
    assert got["InvokeMode"] == "BUFFERED"
    assert got["FunctionUrl"] == created["FunctionUrl"]
    listed = client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in listed] == [created["FunctionUrl"]]
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.update_function_url_config(FunctionName=name, InvokeMode="RESPONSE_STREAM")
    assert "RESPONSE_STREAM" in str(exc.value)
    client.delete_function_url_config(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.get_function_url_config(FunctionName=name)
    assert "The resource you requested does not exist." in str(exc.value)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        client.create_function_url_config(FunctionName="no-such-fn", AuthType="NONE")
    assert "Function does not exist" in str(exc.value)
