"""Lambda's memory semantics (issue 12 item 3, decision 0022): the memory limit is MemorySize,
/tmp is a disk of EphemeralStorage.Size (ENOSPC past it) that is not counted as memory."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from support import Deploy, call

MIB = 1 << 20

# Allocates 400 MB in 4 MiB steps, touching every page, and logs the wall clock after every step
# past 96 MiB: the last line is the moment just before the allocation that crossed the limit.
GREEDY = """
import time
def handler(event, context):
    keep, total = [], 0
    while total < 400 * 2**20:
        keep.append(bytearray(b"x" * (4 * 2**20)))
        total += 4 * 2**20
        if total > 96 * 2**20:
            print("at", total >> 20, repr(time.time()), flush=True)
    return total
"""

TMP_APP = """
import errno, os, time
def handler(event, context):
    op = event["op"]
    if op == "fill":  # write event["mb"] MiB to /tmp in 1 MiB writes; stop at ENOSPC
        chunk, written = b"t" * 2**20, 0
        try:
            with open("/tmp/fill-" + str(time.time_ns()), "wb") as f:
                for _ in range(event["mb"]):
                    written += f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            return {"written": written, "errno": errno.errorcode.get(e.errno)}
        keep = bytearray(event.get("then_mb", 0) * 2**20)
        for i in range(0, len(keep), 4096):  # touch every page: resident, charged
            keep[i] = 1
        return {"written": written, "errno": None, "kept": len(keep)}
    if op == "mark":
        with open("/tmp/marker", "w") as f:
            f.write(event["value"])
        return {"ok": True}
    if op == "read":
        with open("/tmp/marker") as f:
            marker = f.read()
        st = os.statvfs("/tmp")
        fstype = next(line.split(" - ")[1].split()[0]
                      for line in open("/proc/self/mountinfo")
                      if line.split()[4] == "/tmp")
        return {"marker": marker, "fstype": fstype, "size": st.f_blocks * st.f_frsize,
                "free": st.f_bavail * st.f_frsize, "uid": os.getuid(),
                "mode": oct(os.stat("/tmp").st_mode & 0o7777), "files": sorted(os.listdir("/tmp"))}
    raise ValueError(op)
"""


def _max_memory_used(tail: str) -> int:
    found = re.search(r"Max Memory Used: (\d+) MB", tail)
    assert found, tail
    return int(found.group(1))


def test_allocating_past_memory_size_is_out_of_memory_within_a_second(
    client: Any, deploy: Deploy
) -> None:
    """The limit is MemorySize alone (not MemorySize + EphemeralStorage as with a tmpfs /tmp):
    400 MB in a 128 MB function is killed, as Runtime.OutOfMemory, promptly."""
    name = deploy({"app.py": GREEDY}, MemorySize=128, Timeout=30)
    out, body = call(client, name, {}, LogType="Tail")
    answered = time.time()
    assert out["FunctionError"] == "Unhandled", body
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "Error Type: Runtime.OutOfMemory" in tail
    steps = re.findall(r"at (\d+) ([\d.]+)", tail)
    assert steps, tail
    last_mb, last_at = int(steps[-1][0]), float(steps[-1][1])
    assert last_mb <= 128  # killed at the limit: with ~10 MiB of interpreter, below 128 MiB
    print(f"out of memory answered {answered - last_at:.3f} s after the last step")  # -s shows
    assert answered - last_at < 1.0, f"answered {answered - last_at:.3f} s after the crossing"


def test_a_full_tmp_does_not_take_memory(client: Any, deploy: Deploy) -> None:
    """500 MB written to a 512 MB /tmp by a 128 MB function, then 100 MB allocated: /tmp's page
    cache is reclaimed, not counted against MemorySize; Max Memory Used leaves it out."""
    name = deploy({"app.py": TMP_APP}, MemorySize=128, Timeout=60)
    out, body = call(client, name, {"op": "fill", "mb": 500, "then_mb": 100}, LogType="Tail")
    assert "FunctionError" not in out, body
    assert body == {"written": 500 * MIB, "errno": None, "kept": 100 * MIB}
    used = _max_memory_used(base64.b64decode(out["LogResult"]).decode())
    assert 100 <= used <= 128


def test_writing_past_ephemeral_storage_is_enospc(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": TMP_APP}, MemorySize=128, EphemeralStorage={"Size": 600}, Timeout=60)
    out, body = call(client, name, {"op": "fill", "mb": 700}, LogType="Tail")
    assert "FunctionError" not in out, body
    assert body["errno"] == "ENOSPC"
    # All of the 600 MiB, less the file's own extent blocks.
    assert 599 * MIB <= body["written"] <= 600 * MIB
    used = _max_memory_used(base64.b64decode(out["LogResult"]).decode())
    assert used < 64  # the page cache of 600 MiB of /tmp is not memory used


def test_tmp_is_a_disk_of_its_size_kept_across_warm_invokes(client: Any, deploy: Deploy) -> None:
    name = deploy({"app.py": TMP_APP}, MemorySize=128, Timeout=10)
    out, body = call(client, name, {"op": "mark", "value": "kept"})
    assert body == {"ok": True}
    out, body = call(client, name, {"op": "read"}, LogType="Tail")
    assert "Init Duration" not in base64.b64decode(out["LogResult"]).decode()  # warm
    assert body["marker"] == "kept"
    assert body["fstype"] == "ext4"
    assert body["free"] == 512 * MIB - 4096  # exactly EphemeralStorage, less the marker's block
    assert body["mode"] == "0o1777"
    assert body["files"] == ["marker"]  # no lost+found
