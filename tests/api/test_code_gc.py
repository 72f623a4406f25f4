"""Code nobody refers to is collected; Code.Location links end with their function's code.

Each test runs its own server: the collector sweeps the whole data dir, and the counts below
must not see other tests' functions.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import ServerProcess, call, lambda_client, make_zip, running_server, wait_active

ROLE = "arn:aws:iam::000000000000:role/r"


def code_bytes(data: Path) -> int:
    """Bytes of every regular file under the code store (blobs, trees, shared files), each
    inode counted once."""
    seen: set[int] = set()
    total = 0
    for dirpath, _dirs, names in os.walk(data / "code"):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue  # collected while we walk
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def settle(data: Path, below: int, timeout: float = 10.0) -> int:
    """Wait for the collector (it runs 0.5 s after code is released)."""
    deadline = time.monotonic() + timeout
    size = code_bytes(data)
    while size >= below and time.monotonic() < deadline:
        time.sleep(0.1)
        size = code_bytes(data)
    return size


def big_zip(seed: int) -> bytes:
    """~2 MB of incompressible code, different each time."""
    return make_zip(
        {
            "app.py": f"def handler(event, context):\n    return {{'seed': {seed}}}\n",
            "blob.bin": os.urandom(2_000_000),
        }
    )


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(tmp_path / "data") as s:
        yield s


@pytest.fixture
def lam(srv: ServerProcess) -> Any:
    return lambda_client(srv.url)


def test_create_delete_cycles_leave_no_code_behind(srv: ServerProcess, lam: Any) -> None:
    for i in range(20):
        lam.create_function(
            FunctionName="cycle",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": big_zip(i)},
        )
        wait_active(lam, "cycle")
        lam.delete_function(FunctionName="cycle")
    left = settle(srv.data_dir, below=1 << 20)
    assert left < 1 << 20, f"{left} bytes of code left after 20 create/delete cycles"


def test_replaced_code_is_collected_and_live_code_kept(srv: ServerProcess, lam: Any) -> None:
    lam.create_function(
        FunctionName="keep",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": big_zip(1)},
    )
    wait_active(lam, "keep")
    for i in range(2, 6):
        lam.update_function_code(FunctionName="keep", ZipFile=big_zip(i))
        wait_active(lam, "keep")
    # One version's code remains: its zip (~2 MB) and its tree (~2 MB).
    left = settle(srv.data_dir, below=5_000_000)
    assert left < 5_000_000
    _, payload = call(lam, "keep")
    assert payload == {"seed": 5}


def test_published_version_keeps_its_code(srv: ServerProcess, lam: Any) -> None:
    lam.create_function(
        FunctionName="pub",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": big_zip(1)},
        Publish=True,
    )
    wait_active(lam, "pub")
    lam.update_function_code(FunctionName="pub", ZipFile=big_zip(2))
    wait_active(lam, "pub")
    time.sleep(1.0)  # a collection ran (0.5 s after the update)
    assert call(lam, "pub", Qualifier="1")[1] == {"seed": 1}
    assert call(lam, "pub")[1] == {"seed": 2}


def test_a_running_environment_keeps_its_tree(srv: ServerProcess, lam: Any) -> None:
    """Deleting a function while it runs: the invocation still reads its files."""
    code = make_zip(
        {
            "app.py": (
                "import time\n"
                "def handler(event, context):\n"
                "    time.sleep(2)\n"
                "    return open('data.txt').read()\n"
            ),
            "data.txt": "still here",
        }
    )
    lam.create_function(
        FunctionName="busy",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": code},
        Timeout=10,
    )
    wait_active(lam, "busy")
    out: dict[str, Any] = {}

    def invoke() -> None:
        out["reply"] = lambda_client(srv.url).invoke(FunctionName="busy")

    t = threading.Thread(target=invoke)
    t.start()
    time.sleep(0.8)  # the handler is sleeping now
    lam.delete_function(FunctionName="busy")
    t.join(30)
    reply = out["reply"]
    assert "FunctionError" not in reply
    assert reply["Payload"].read() == b'"still here"'


def test_code_location_ends_with_the_code(srv: ServerProcess, lam: Any) -> None:
    lam.create_function(
        FunctionName="loc",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": big_zip(1)},
        Publish=True,
    )
    wait_active(lam, "loc")
    latest = lam.get_function(FunctionName="loc")["Code"]["Location"]
    v1 = lam.get_function(FunctionName="loc", Qualifier="1")["Code"]["Location"]
    assert httpx.get(latest).status_code == 200

    lam.update_function_code(FunctionName="loc", ZipFile=big_zip(2))
    wait_active(lam, "loc")
    assert httpx.get(latest).status_code == 404  # $LATEST holds other code now
    assert httpx.get(v1).status_code == 200  # version 1 still holds it

    # Another owner in a valid link's query does not pass the signature check.
    forged = v1.replace("%3A1&", "%3A%24LATEST&")
    assert forged != v1
    assert httpx.get(forged).status_code == 403

    lam.delete_function(FunctionName="loc")
    assert httpx.get(v1).status_code == 404


def test_layer_content_location_ends_with_the_version(srv: ServerProcess, lam: Any) -> None:
    out = lam.publish_layer_version(LayerName="lay", Content={"ZipFile": big_zip(1)})
    loc = out["Content"]["Location"]
    assert httpx.get(loc).status_code == 200
    lam.delete_layer_version(LayerName="lay", VersionNumber=out["Version"])
    assert httpx.get(loc).status_code == 404
    left = settle(srv.data_dir, below=1 << 20)
    assert left < 1 << 20  # no function used it: its zip is gone too


def test_a_deleted_layer_version_in_use_keeps_its_content(srv: ServerProcess, lam: Any) -> None:
    layer = make_zip({"python/helper.py": "VALUE = 'from the layer'\n"})
    out = lam.publish_layer_version(LayerName="used", Content={"ZipFile": layer})
    lam.create_function(
        FunctionName="uses",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={
            "ZipFile": make_zip(
                {"app.py": "import helper\ndef handler(e, c):\n    return helper.VALUE\n"}
            )
        },
        Layers=[out["LayerVersionArn"]],
    )
    wait_active(lam, "uses")
    lam.delete_layer_version(LayerName="used", VersionNumber=out["Version"])
    time.sleep(1.0)  # a collection ran
    lam.update_function_configuration(FunctionName="uses", MemorySize=256)  # a new environment
    wait_active(lam, "uses")
    assert call(lam, "uses")[1] == "from the layer"
