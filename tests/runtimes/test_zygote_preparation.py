"""What a zygote does before it forks, to keep its environments small (docs/decisions/0006).

Each runs on every python3.X interpreter the machine has: the rehearsal of the runtime leaves no
state behind, and pymalloc's statistics parse and the holes get filled.
"""

from __future__ import annotations

import pytest

from .conftest import PYTHONS, run_snippet

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
    assert run_snippet(python, REHEARSAL).strip() == "ok"


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
    before, after, fillers = map(int, run_snippet(python, FILL).split())
    # What stays free after the fill is the untouched tail of the pools the fillers opened.
    assert after < before
    assert fillers >= before - after
