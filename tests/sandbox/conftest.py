"""Helpers for the sandbox suite: real sandboxes, as root."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from brazier.sandbox import LinuxSandboxFactory, Sandbox, SandboxSpec, open_sandbox_factory

T = TypeVar("T")
INIT_DIR = Path(__file__).resolve().parents[2] / "src" / "brazier" / "_sandbox_init"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes need root")


def run(fn: Callable[[LinuxSandboxFactory], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        async with open_sandbox_factory(**kw) as factory:
            return await fn(factory)

    return asyncio.run(main())


def code_dir(tmp_path: Path, script: str, name: str = "bootstrap") -> Path:
    d = tmp_path / "task"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    (d / name).write_text(textwrap.dedent(script).lstrip())
    os.chmod(d / name, 0o755)
    return d


def spec(code: Path, **kw: Any) -> SandboxSpec:
    return SandboxSpec(runtime=kw.pop("runtime", "provided.al2023"), code_dir=code,
                       handler=kw.pop("handler", "h"), **kw)  # fmt: skip


async def output(sbx: Sandbox) -> str:
    out = b""
    while chunk := await sbx.read_output():
        out += chunk
    return out.decode()


async def json_lines(sbx: Sandbox) -> dict[str, Any]:
    """Run to the end; merge the JSON objects the bootstrap printed, one per line."""
    text = await output(sbx)
    result: dict[str, Any] = {"_raw": text}
    for line in text.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def init_dir_with(tmp_path: Path, name: str, source: str) -> Path:
    """A copy of _sandbox_init with an extra (fake runtime) module."""
    d = tmp_path / "init"
    shutil.copytree(INIT_DIR, d, ignore=shutil.ignore_patterns("__pycache__"))
    (d / name).write_text(textwrap.dedent(source).lstrip())
    os.chmod(tmp_path, 0o755)
    return d
