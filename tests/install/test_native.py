"""The native helpers as an installed wheel gets them: built on first use into a private cache
copy of ``_sandbox_init``, with gcc for real; and what brazier says when gcc is missing."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from brazier.sandbox import native

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc")


@pytest.fixture
def sources_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package's _sandbox_init as a wheel installs it: sources, no built helper."""
    pkg = tmp_path / "site-packages" / "_sandbox_init"
    shutil.copytree(
        native.PACKAGE_INIT_DIR, pkg,
        ignore=shutil.ignore_patterns("_brazier_init", "*.node", "__pycache__"),
    )  # fmt: skip
    monkeypatch.setattr(native, "PACKAGE_INIT_DIR", pkg)
    monkeypatch.setenv("BRAZIER_CACHE_DIR", str(tmp_path / "cache"))
    return pkg


@needs_gcc
def test_first_use_builds_into_a_private_copy_keyed_by_the_sources(sources_only: Path) -> None:
    first = native.init_dir()
    assert first.parent == sources_only.parent.parent / "cache" / "native"
    assert first.name == native.sources_digest(sources_only)
    for name in ("zygote.py", "node_runtime.mjs", "brazier_init.c"):
        assert (first / name).read_bytes() == (sources_only / name).read_bytes()
    init = first / "_brazier_init"
    assert init.read_bytes()[:4] == b"\x7fELF" and init.stat().st_mode & 0o111
    assert not first.stat().st_mode & 0o022 and not first.parent.stat().st_mode & 0o022
    built_at = init.stat().st_mtime_ns
    assert native.init_dir() == first  # the second use finds it
    assert init.stat().st_mtime_ns == built_at
    rows = {r.name: r for r in native.status()}
    assert rows["init"].path == init
    node = shutil.which("node")
    if node and native.node_headers():  # node loads the module built for it
        module = first / "_brazier_trace_env.node"
        out = subprocess.run(
            [node, "-e", f"console.log(typeof require({str(module)!r}).set)"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        assert out.stdout.strip() == "function"
    # New sources (an upgrade): a directory of their own.
    (sources_only / "zygote.py").write_text((sources_only / "zygote.py").read_text() + "\n# v2\n")
    assert native.init_dir() != first


@needs_gcc
def test_a_cache_others_may_write_is_not_used(
    sources_only: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = sources_only.parent.parent / "cache" / "native"
    root.mkdir(parents=True)
    root.chmod(0o777)
    with caplog.at_level(logging.WARNING, "brazier.sandbox.native"):
        assert native.init_dir() == sources_only  # the Python init, not someone else's binary
    assert "not ours alone" in caplog.text
    assert not list(root.iterdir())


def test_without_gcc_it_says_what_is_lost_and_what_to_install(
    sources_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no gcc, no apt-get, no dnf
    monkeypatch.setattr(native, "_warned", set())
    rows = {r.name: r for r in native.status()}
    assert rows["init"].path is None and not rows["init"].buildable
    assert "no gcc" in rows["init"].reason and "1.4 MiB" in rows["init"].reason
    assert rows["init"].fix == (
        "install gcc libc6-dev (Debian/Ubuntu) or gcc glibc-static (Fedora/RHEL)"
    )
    with caplog.at_level(logging.WARNING, "brazier.sandbox.native"):
        assert native.init_dir() == sources_only
        native.init_dir()
    lines = [r.getMessage() for r in caplog.records if "_brazier_init" in r.getMessage()]
    assert len(lines) == 1  # once per process
    assert "no gcc" in lines[0] and "gcc libc6-dev" in lines[0]
    assert not (tmp_path / "cache").exists()
