"""The brazier:egress tag through the API: validated at CreateFunction and TagResource (a bad
value leaves the previous policy), and applied to the function's next environments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Internet, needs_root
from support import call, lambda_client, make_zip, running_server, wait_active

pytestmark = [pytest.mark.sandbox, needs_root]
ROLE = "arn:aws:iam::000000000000:role/r"
FETCH = """
import urllib.request
def handler(event, context):
    try:
        with urllib.request.urlopen(event["url"], timeout=3) as r:
            return r.read().decode()
    except Exception as e:
        return "error: " + repr(getattr(e, "reason", e))
"""


def _create(client: Any, name: str, tags: dict[str, str]) -> Any:
    return client.create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": FETCH})}, Tags=tags,
    )  # fmt: skip


def test_egress_tag_is_validated_and_applied(tmp_path: Path, internet: Internet) -> None:
    with running_server(tmp_path / "data", args=("--egress", "internet")) as srv:
        client = lambda_client(srv.url)
        errors = client.exceptions.InvalidParameterValueException
        for bad in ("everything", "10.0.0.1/8", "1.2.3.4:99999", "", "1.2.3.4 1.2.3.4"):
            with pytest.raises(errors) as exc:
                _create(client, "f", {"brazier:egress": bad})
            assert "brazier:egress" in exc.value.response["Error"]["Message"], bad
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_function(FunctionName="f")  # nothing was created

        arn = _create(client, "f", {"brazier:egress": "none"})["FunctionArn"]
        wait_active(client, "f")
        url = f"http://{internet.address}/"
        _, out = call(client, "f", {"url": url})
        assert out.startswith("error:"), out
        with pytest.raises(errors):
            client.tag_resource(Resource=arn, Tags={"brazier:egress": "internet 1.2.3.4"})
        assert client.list_tags(Resource=arn)["Tags"] == {"brazier:egress": "none"}
        _, out = call(client, "f", {"url": url})
        assert out.startswith("error:"), out

        client.tag_resource(Resource=arn, Tags={"brazier:egress": f"{internet.address}/32:80"})
        _, out = call(client, "f", {"url": url})
        assert out == "hello from the test internet"
        client.untag_resource(Resource=arn, TagKeys=["brazier:egress"])  # the server default
        _, out = call(client, "f", {"url": url})
        assert out == "hello from the test internet"
