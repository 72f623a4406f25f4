"""Interpreter discovery: the newest matching interpreter, found once; misses looked for again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from brazier.sandbox import RuntimeUnavailable
from brazier.sandbox.discovery import Discovery, interpreter_at


def _fake_python(root: Path, version: str) -> Path:
    minor = ".".join(version.split(".")[:2])
    exe = root / version / "bin" / f"python{minor}"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return exe


def test_newest_patch_release_wins_and_is_remembered(tmp_path: Path) -> None:
    _fake_python(tmp_path, "3.12.1")
    newest = _fake_python(tmp_path, "3.12.10")
    found = Discovery((tmp_path,), bin_dirs=())
    exe = interpreter_at(Path("/usr/bin/true"))
    launch = found.launch("python3.12", exe)
    assert launch.zygote.path == Path(os.path.realpath(newest))
    # Found once: the cold-start path does not walk the directories again (~0.2 ms each time).
    newest.unlink()
    assert found.launch("python3.12", exe).zygote.path == launch.zygote.path


def test_a_missing_runtime_is_looked_for_again(tmp_path: Path) -> None:
    found = Discovery((tmp_path,), bin_dirs=())
    with pytest.raises(RuntimeUnavailable, match=r"python3\.13"):
        found.python("3.13")
    exe = _fake_python(tmp_path, "3.13.2")  # installed while the server runs
    assert found.python("3.13").path == Path(os.path.realpath(exe))
