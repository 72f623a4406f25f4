"""What a zygote does before it forks, to keep its environments small (docs/decisions/0006).

Each runs on every python3.X interpreter the machine has: the rehearsal of the runtime leaves no
state behind, pymalloc's statistics parse and the holes get filled, and the runtime client
reaches a numeric Runtime API address without the resolver.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from .conftest import PYTHONS, SANDBOX_INIT


def _run(python: str, code: str) -> str:
    script = f"import sys\nsys.path.insert(0, {str(SANDBOX_INIT)!r})\n" + textwrap.dedent(code)
    argv = [python, "-I", "-S", "-B", "-c", script]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


REHEARSAL = """
import glob, logging, os, shutil, socket, tempfile  # what rehearse() imports on first use
import python_runtime as pr

calls = []
real = pr._rehearsal_handler
pr._rehearsal_handler = lambda event, context: calls.append(event) or real(event, context)

def state():
    root = logging.getLogger()
    return {
        "environ": dict(os.environ),
        "handlers": list(root.handlers),
        "level": root.level,
        "converter": logging.Formatter.converter,
        "rehearsal_modules": [m for m in sys.modules if m.startswith("_brazier_rehearsal")],
        "path": list(sys.path),
        "importer_cache": sorted(sys.path_importer_cache),
        "globals": (pr._request_id, pr._tenant_id),
        "leftovers": glob.glob(os.path.join(tempfile.gettempdir(), "brazier-rehearsal-*")),
    }

before = state()
pr.rehearse(rounds=7)
after = state()
for key in before:
    assert before[key] == after[key], (key, before[key], after[key])
assert after["leftovers"] == []
assert calls == [{"k": [1.5]}] * 7, calls
print("ok")
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_rehearsal_runs_the_invoke_path_and_leaves_nothing_behind(python: str) -> None:
    assert _run(python, REHEARSAL).strip() == "ok"


FILL = """
import zygote

before = zygote._free_blocks()
assert sorted(before) == list(range(16, 513, 16)), before
zygote._fill_allocator_holes()
after = zygote._free_blocks()
print(sum(before.values()), sum(after.values()), len(zygote._FILLERS))
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_fill_allocator_holes(python: str) -> None:
    before, after, fillers = map(int, _run(python, FILL).split())
    # What stays free after the fill is the untouched tail of the pools the fillers opened.
    assert after < before
    assert fillers >= before - after


CONNECT = """
import socket, threading
from _brazier_rt_http import _RuntimeConnection

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
port = server.getsockname()[1]
accepted = []
accept = lambda: [accepted.append(server.accept()) for _ in range(2)]
threading.Thread(target=accept, daemon=True).start()

real = socket.getaddrinfo
resolved = []
socket.getaddrinfo = lambda *a, **k: resolved.append(a[0]) or real(*a, **k)
_RuntimeConnection(f"127.0.0.1:{port}")._connect().close()
assert resolved == [], resolved  # a numeric address: no resolver
_RuntimeConnection(f"localhost:{port}")._connect().close()
assert resolved == ["localhost"], resolved  # a name still resolves
print("ok")
"""


@pytest.mark.parametrize("python", PYTHONS)
def test_numeric_runtime_api_address_skips_the_resolver(python: str) -> None:
    assert _run(python, CONNECT).strip() == "ok"
