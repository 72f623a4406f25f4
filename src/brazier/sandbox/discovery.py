"""Which interpreter runs which Lambda runtime on this machine.

python3.X: the newest ``<root>/3.X.*/bin/python3.X`` under each search root (default: pyenv's
``$PYENV_ROOT/versions`` or ``/root/.pyenv/versions``), then ``/usr/bin/python3.X`` and
``/usr/local/bin/python3.X``. nodejsNN.x: a ``node`` on PATH (or ``/usr/bin/node``) whose major
version is NN. provided.*: no interpreter; the zygote that forks it uses ``exec_interpreter``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from brazier.model.runtimes import RuntimeFamily, lookup

from .errors import RuntimeUnavailable


@dataclass(frozen=True, slots=True)
class Interpreter:
    path: Path  # realpath of the executable
    prefix: Path | None  # a directory to bind read-only at the same path; None if under /usr


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one runtime: which zygote forks it and what PID 1 becomes."""

    runtime: str
    zygote: Interpreter  # the python that forks the environment
    mode: str  # "python" or "exec"
    exec_candidates: tuple[str, ...] = ()
    exec_args: tuple[str, ...] = ()
    extra_prefix: Path | None = None  # e.g. node's prefix when not under /usr
    python_minor: str = ""
    prestart: bool = False  # the runtime can be started before the function (see factory)


def default_python_roots() -> tuple[Path, ...]:
    root = os.environ.get("PYENV_ROOT")
    return (Path(root) / "versions",) if root else (Path("/root/.pyenv/versions"),)


def _version_key(p: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", p.name))


def interpreter_at(path: Path) -> Interpreter:
    real = Path(os.path.realpath(path))
    prefix = real.parent.parent
    under_usr = prefix == Path("/usr") or Path("/usr") in prefix.parents
    return Interpreter(real, None if under_usr else prefix)


class Discovery:
    """Finds interpreters once and caches the answers (they do not change while we run)."""

    def __init__(
        self,
        python_roots: tuple[Path, ...],
        bin_dirs: tuple[Path, ...] = (Path("/usr/bin"), Path("/usr/local/bin")),
    ) -> None:
        self._python_roots = python_roots
        self._bin_dirs = bin_dirs
        self._node_major: dict[Path, int | None] = {}
        # What was found, per runtime family and version. Only hits are kept: a runtime that is
        # missing is looked for again (it may be installed while we run), and its error is rare.
        self._found: dict[tuple[str, str], Interpreter] = {}

    def python(self, minor: str) -> Interpreter:
        found = self._found.get(("python", minor))
        if found is None:
            found = self._found["python", minor] = self._find_python(minor)
        return found

    def _find_python(self, minor: str) -> Interpreter:
        exe = f"python{minor}"
        for root in self._python_roots:
            found = [
                d / "bin" / exe
                for d in root.glob(f"{minor}.*")
                if re.fullmatch(rf"{re.escape(minor)}\.\d+", d.name) and (d / "bin" / exe).is_file()
            ]
            if found:
                return interpreter_at(max(found, key=lambda p: _version_key(p.parent.parent)))
        for d in self._bin_dirs:
            if os.access(d / exe, os.X_OK):
                return interpreter_at(d / exe)
        where = ", ".join([f"{r}/{minor}.*/bin/{exe}" for r in self._python_roots])
        where += "".join(f", {d}/{exe}" for d in self._bin_dirs)
        raise RuntimeUnavailable(f"python{minor}", f"needs {where}, which this machine lacks")

    def node(self, major: int) -> Interpreter:
        found = self._found.get(("node", str(major)))
        if found is None:
            found = self._found["node", str(major)] = self._find_node(major)
        return found

    def _find_node(self, major: int) -> Interpreter:
        candidates = [shutil.which("node"), "/usr/bin/node"]
        seen: list[str] = []
        for c in candidates:
            if c is None or not os.access(c, os.X_OK):
                continue
            interp = interpreter_at(Path(c))
            found = self._major_of(interp.path)
            seen.append(f"{interp.path} is v{found}")
            if found == major:
                return interp
        detail = "; ".join(seen) or "no node on PATH or at /usr/bin/node"
        raise RuntimeUnavailable(f"nodejs{major}.x", f"needs node v{major} ({detail})")

    def _major_of(self, node: Path) -> int | None:
        if node not in self._node_major:
            try:
                out = subprocess.run(
                    [str(node), "--version"], capture_output=True, text=True, timeout=10, check=True
                ).stdout
                m = re.match(r"v(\d+)\.", out.strip())
                self._node_major[node] = int(m.group(1)) if m else None
            except (OSError, subprocess.SubprocessError):
                self._node_major[node] = None
        return self._node_major[node]

    def launch(self, runtime: str, exec_interpreter: Interpreter) -> Launch:
        info = lookup(runtime)
        if info is None:
            raise RuntimeUnavailable(runtime, "not a runtime brazier knows")
        if info.family is RuntimeFamily.PYTHON:
            return Launch(runtime, self.python(info.version), "python", python_minor=info.version)
        if info.family is RuntimeFamily.NODE:
            node = self.node(int(info.version))
            return Launch(
                runtime,
                exec_interpreter,
                "exec",
                exec_candidates=(str(node.path),),
                exec_args=("/var/runtime/node_runtime.mjs",),
                extra_prefix=node.prefix,
                prestart=True,
            )
        return Launch(runtime, exec_interpreter, "exec", ("/var/task/bootstrap", "/opt/bootstrap"))
