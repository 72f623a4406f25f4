"""Functions, code and policies survive a clean restart and a kill -9."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support import HELLO_PY, ServerProcess, lambda_client, wait_active
from test_functions import create


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_state_survives_restart(tmp_path: Path, how: str) -> None:
    srv = ServerProcess(tmp_path / "data").start()
    try:
        _populate(srv, how)
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()
    srv2 = ServerProcess(tmp_path / "data", port=srv.port).start()
    try:
        _check(srv2)
    finally:
        srv2.stop()


def _populate(srv: ServerProcess, how: str) -> None:
    client = lambda_client(srv.url)
    create(client, "keep-me", Tags={"t": "1"})
    wait_active(client, "keep-me")
    client.update_function_configuration(
        FunctionName="keep-me", Environment={"Variables": {"AB": "b"}}
    )
    client.add_permission(
        FunctionName="keep-me", StatementId="s", Action="lambda:InvokeFunction", Principal="*"
    )
    create(client, "pending-at-crash")
    if how == "kill9":
        srv.kill9()
    else:
        assert srv.stop() == 0


def _check(srv2: ServerProcess) -> None:
    client = lambda_client(srv2.url)
    cfg = wait_active(client, "keep-me")
    assert cfg["Environment"] == {"Variables": {"AB": "b"}}
    assert client.list_tags(Resource=cfg["FunctionArn"])["Tags"] == {"t": "1"}
    assert '"Sid":"s"' in client.get_policy(FunctionName="keep-me")["Policy"]
    loc = client.get_function(FunctionName="keep-me")["Code"]["Location"]
    assert httpx.get(loc).content == HELLO_PY
    # Work interrupted by the crash is resumed: the function settles.
    assert wait_active(client, "pending-at-crash")["State"] == "Active"


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = ServerProcess(tmp_path / "data").start()
        assert srv.stop(sig) == 0
        assert "Traceback" not in srv.log.read_text()
