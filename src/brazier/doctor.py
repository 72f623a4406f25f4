"""``brazier doctor``: can this host run brazier's sandboxes, and if not, what to do about it.

Every check looks at the real host the way the server will use it (a namespace is unshared in a
throw-away child, brazier's own seccomp program is loaded in one, a cgroup is created and removed
in the caller's own subtree) and gives one :class:`Finding`: OK, WARN (brazier runs, with less)
or FAIL (sandboxes cannot run here), what was found, and the fix. The command exits 1 when any
check FAILs, 0 otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import enum
import functools
import json
import math
import os
import platform
import resource
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from brazier import config

_CLONE = {
    "mount": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "pid": 0x20000000,
    "net": 0x40000000,
}
_CLONE_NEWUSER = 0x10000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_NOBODY = 65534  # an unprivileged uid for the user-namespace probe (it owns nothing)
# The v1 controllers a sandbox needs; freezer and cpuacct only where the v2 core files are absent.
_V1_NEEDED = ("memory", "cpu", "pids")
_V1_WITHOUT_V2 = ("cpuacct", "freezer")
_V2_NEEDED = ("memory", "cpu", "pids")
_SYSTEMD = Path("/run/systemd/system")  # present when systemd is the init (sd_booted)
_LOOP_CONTROL = Path("/dev/loop-control")
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class Level(enum.Enum):
    OK = "OK"
    WARN = "WARN"  # brazier runs, with less than it could
    FAIL = "FAIL"  # sandboxes cannot run here


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: Level
    what: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level.value, "what": self.what, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    data_dir: Path  # whose installed runtimes count
    account_concurrency: int  # the environments the open files limit must allow


Check = Callable[[DoctorOptions], Iterator[Finding]]


def _install_hint(apt: str, dnf: str) -> str:
    """The install command of this host's package manager (both when neither is found)."""
    if shutil.which("apt-get"):
        return f"apt-get install {apt}"
    if shutil.which("dnf"):
        return f"dnf install {dnf}"
    return f"install {apt} (Debian/Ubuntu) or {dnf} (Fedora/RHEL)"


def _in_child(probe: Callable[[], int]) -> int:
    """Run ``probe`` in a forked child (so whatever it changes dies with it): its return value,
    an errno, or 255 when it raised something else."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its result is its exit status
        code = 255
        try:
            code = probe()
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _unshare(flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if libc.unshare(ctypes.c_int(flags)) == 0 else ctypes.get_errno()


def _errtext(code: int) -> str:
    return os.strerror(code) if 0 < code < 255 else "failed"


# -- the checks ---------------------------------------------------------------------------------


def check_root(opts: DoctorOptions) -> Iterator[Finding]:
    if os.geteuid() == 0:
        yield Finding("root", Level.OK, "running as root")
        return
    yield Finding(
        "root",
        Level.FAIL,
        f"running as uid {os.geteuid()}: sandboxes need root (namespaces, mounts, cgroups)",
        "run brazier as root: sudo brazier server, or the systemd unit contrib/brazier.service",
    )


def check_kernel(opts: DoctorOptions) -> Iterator[Finding]:
    yield Finding("kernel", Level.OK, f"{platform.system()} {platform.release()}")


def check_namespaces(opts: DoctorOptions) -> Iterator[Finding]:
    if os.geteuid() != 0:
        return  # unsharing needs CAP_SYS_ADMIN: the root check already says what to do
    codes = {name: _in_child(functools.partial(_unshare, flag)) for name, flag in _CLONE.items()}
    failed = {name: code for name, code in codes.items() if code}
    if failed:
        listed = ", ".join(f"{n} ({_errtext(c)})" for n, c in failed.items())
        yield Finding(
            "namespaces",
            Level.FAIL,
            f"cannot create {listed} namespaces",
            "use a kernel with CONFIG_NAMESPACES and its PID/NET/IPC/UTS/CGROUP options; in a"
            " container, run it privileged (or with CAP_SYS_ADMIN and no seccomp profile)",
        )
    else:
        yield Finding("namespaces", Level.OK, f"{', '.join(_CLONE)} namespaces usable")

    def unprivileged_userns() -> int:
        os.setgroups([])
        os.setresgid(_NOBODY, _NOBODY, _NOBODY)
        os.setresuid(_NOBODY, _NOBODY, _NOBODY)
        return _unshare(_CLONE_NEWUSER)

    code = _in_child(unprivileged_userns)
    if code == 0:
        yield Finding("user-namespaces", Level.OK, "unprivileged user namespaces usable")
    else:
        yield Finding(
            "user-namespaces",
            Level.WARN,
            f"an unprivileged user cannot create a user namespace ({_errtext(code)}): each"
            " environment runs as its own host uid, seen inside as that uid rather than 993",
            "sysctl -w user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1"
            " where the kernel has it; on Ubuntu 24.04+ also"
            " kernel.apparmor_restrict_unprivileged_userns=0)",
        )


def check_seccomp(opts: DoctorOptions) -> Iterator[Finding]:
    fix_lib = _install_hint("libseccomp2", "libseccomp")
    try:
        from brazier.sandbox.seccomp import build_filter_bpf

        bpf = build_filter_bpf()
    except Exception as exc:
        why = f"libseccomp cannot compile the policy: {exc}"
        yield Finding("seccomp", Level.FAIL, why, fix_lib)
        return

    def load() -> int:
        # SAFETY: a throw-away child that exits right after; the filter dies with it.
        libc = ctypes.CDLL(None, use_errno=True)
        program = ctypes.create_string_buffer(bpf, len(bpf))

        class SockFprog(ctypes.Structure):
            _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

        prog = SockFprog(len(bpf) // 8, ctypes.cast(program, ctypes.c_void_p))
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return ctypes.get_errno()
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            return ctypes.get_errno()
        return 0

    code = _in_child(load)
    if code == 0:
        yield Finding("seccomp", Level.OK, f"brazier's filter ({len(bpf) // 8} instructions) loads")
    else:
        yield Finding(
            "seccomp",
            Level.FAIL,
            f"the kernel refuses brazier's seccomp filter ({_errtext(code)})",
            "use a kernel with CONFIG_SECCOMP_FILTER (every distribution kernel has it); in a"
            " container, run it with seccomp=unconfined",
        )


def _probe_cgroup(parent: Path) -> str | None:
    """Create and remove a cgroup under ``parent`` (named as a factory's, so that a leftover is
    swept like one): None when that works, else why not."""
    probe = parent / f"brazier-{os.getpid()}-doctor"
    try:
        # SAFETY: a cgroup of our own, in the caller's own subtree, removed at once.
        probe.mkdir()
    except FileExistsError:
        pass
    except OSError as exc:
        return exc.strerror or str(exc)
    with contextlib.suppress(OSError):
        probe.rmdir()
    return None


def check_cgroups(opts: DoctorOptions) -> Iterator[Finding]:
    from brazier.sandbox.cgroup_mode import CgroupMode, detect
    from brazier.sandbox.cgroups import cgroup_mounts, own_cgroups

    mode = detect()
    v1, _ = cgroup_mounts()
    own = own_cgroups()
    if mode is CgroupMode.V2:
        yield from check_v2(Path("/sys/fs/cgroup") / own.get("unified", ""))
        return
    needed = _V1_NEEDED + (() if mode is CgroupMode.HYBRID else _V1_WITHOUT_V2)
    missing = [c for c in needed if c not in v1]
    if missing:
        yield Finding(
            "cgroups",
            Level.FAIL,
            f"cgroup {mode.value}: the {', '.join(missing)} controller(s) are not mounted",
            "boot with the unified hierarchy (systemd.unified_cgroup_hierarchy=1), or mount the"
            " v1 controllers brazier needs: memory, cpu, pids",
        )
        return
    if os.geteuid() != 0:
        return
    refused = {c: why for c in needed if (why := _probe_cgroup(v1[c] / own.get(c, "")))}
    if refused:
        listed = ", ".join(f"{c} ({why})" for c, why in refused.items())
        yield Finding(
            "cgroups",
            Level.FAIL,
            f"cgroup {mode.value}: cannot create a cgroup in this process's own {listed}",
            "run brazier where its cgroups are writable: as root on the host, or in a container"
            " with a writable cgroup mount",
        )
        return
    yield Finding(
        "cgroups", Level.OK, f"cgroup {mode.value}: {', '.join(needed)} writable in own cgroups"
    )


def _delegated(own: Path, systemd: Path) -> bool:
    """Whether this cgroup was handed to us: systemd marks a delegated one with an xattr; without
    systemd, whoever runs us owns the tree."""
    if not systemd.is_dir():
        return True
    for attr in ("trusted.delegate", "user.delegate"):
        with contextlib.suppress(OSError):
            if os.getxattr(own, attr):
                return True
    return False


def check_v2(own: Path, systemd: Path = _SYSTEMD) -> Iterator[Finding]:
    """The unified hierarchy, from our own cgroup ``own`` (``systemd``: sd_booted's marker)."""
    try:
        available = set((own / "cgroup.controllers").read_text().split())
    except OSError as exc:
        yield Finding(
            "cgroups",
            Level.FAIL,
            f"cgroup v2: cannot read {own}: {exc.strerror}",
            "mount cgroup2 at /sys/fs/cgroup (in a container: --cgroupns=private with a"
            " writable cgroup mount)",
        )
        return
    missing = [c for c in _V2_NEEDED if c not in available]
    if missing:
        yield Finding(
            "cgroups",
            Level.FAIL,
            f"cgroup v2: the {', '.join(missing)} controller(s) are not available in {own}",
            "run brazier with a delegated cgroup: the systemd unit contrib/brazier.service"
            " (Delegate=yes), or systemd-run --scope -p Delegate=yes brazier server",
        )
        return
    if not os.access(own / "cgroup.subtree_control", os.W_OK):
        yield Finding(
            "cgroups",
            Level.FAIL,
            f"cgroup v2: {own} is not writable",
            "run as root with a delegated cgroup: contrib/brazier.service (Delegate=yes), or"
            " systemd-run --scope -p Delegate=yes brazier server",
        )
        return
    if not _delegated(own, systemd):
        yield Finding(
            "cgroups",
            Level.WARN,
            f"cgroup v2: {own} is not delegated to brazier; systemd may undo what it sets there",
            "start it with the systemd unit contrib/brazier.service (Delegate=yes), or by hand"
            " with systemd-run --scope -p Delegate=yes brazier server",
        )
        return
    yield Finding(
        "cgroups", Level.OK, f"cgroup v2: {', '.join(_V2_NEEDED)} available, {own} delegated"
    )


def check_tmp_disks(opts: DoctorOptions) -> Iterator[Finding]:
    """Each environment's /tmp is a loop-mounted ext4 image: /dev/loop-control and mkfs.ext4."""
    if os.geteuid() != 0:
        return  # only root opens /dev/loop-control: the root check already says what to do
    try:
        fd = os.open(_LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        yield Finding(
            "loop-devices",
            Level.WARN,
            f"cannot open {_LOOP_CONTROL} ({exc.strerror}): /tmp falls back to memory (tmpfs),"
            " counted in the function's memory",
            "modprobe loop (and add loop to /etc/modules-load.d); in a container, pass"
            " --device /dev/loop-control and the /dev/loopN devices",
        )
    else:
        os.close(fd)
        yield Finding("loop-devices", Level.OK, f"{_LOOP_CONTROL} usable: /tmp on disk images")
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    mkfs = shutil.which("mkfs.ext4", path=path)
    if mkfs is None:
        yield Finding(
            "e2fsprogs",
            Level.WARN,
            "mkfs.ext4 not found: /tmp falls back to memory (tmpfs)",
            _install_hint("e2fsprogs", "e2fsprogs"),
        )
    else:
        yield Finding("e2fsprogs", Level.OK, f"{mkfs} present")


def open_files_needed(account_concurrency: int) -> int:
    """The open files limit for ``account_concurrency`` environments and the server's floor of
    client connections (that many plus the control-plane reserve): the budget it plans by."""
    from brazier.api.limits import MAX_CONNECTIONS_EXTRA
    from brazier.sandbox import connection_capacity, files_for_environments
    from brazier.sandbox.base import ENVIRONMENT_FILES_SHARE, SERVER_RESERVED_FILES

    connections = account_concurrency + MAX_CONNECTIONS_EXTRA
    need = max(
        files_for_environments(account_concurrency),
        math.ceil((connections + SERVER_RESERVED_FILES) / (1 - ENVIRONMENT_FILES_SHARE)),
    )
    while connection_capacity(need) < connections:  # float rounding at the boundary
        need += 1
    return need


def open_files_minimum() -> int:
    """Below this the server cannot hold its own files and one environment."""
    from brazier.sandbox import files_for_environments
    from brazier.sandbox.base import SERVER_RESERVED_FILES

    return SERVER_RESERVED_FILES + files_for_environments(1)


def check_open_files(opts: DoctorOptions) -> Iterator[Finding]:
    """The server raises its soft limit to the hard one at start: the hard limit is what counts."""
    from brazier.sandbox import environment_capacity

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard
    if hard == resource.RLIM_INFINITY:
        try:
            limit = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            limit = 1 << 20
    need = open_files_needed(opts.account_concurrency)
    fix = (
        f"raise it to at least {need}: ulimit -n {need} in the shell that starts brazier, or"
        " LimitNOFILE=1048576 in its systemd unit (contrib/brazier.service has it)"
    )
    if limit < open_files_minimum():
        yield Finding(
            "open-files",
            Level.FAIL,
            f"the open files limit ({limit}) is too low for the server's own files and one"
            f" environment (at least {open_files_minimum()})",
            fix,
        )
    elif limit < need:
        yield Finding(
            "open-files",
            Level.WARN,
            f"the open files limit ({limit}) allows about {environment_capacity(limit)}"
            f" environments, fewer than the account concurrency ({opts.account_concurrency},"
            f" which needs {need})",
            fix,
        )
    else:
        yield Finding(
            "open-files",
            Level.OK,
            f"open files limit {limit} (soft {soft}; {need} needed for"
            f" {opts.account_concurrency} environments)",
        )


def check_runtimes(opts: DoctorOptions) -> Iterator[Finding]:
    from brazier.sandbox.discovery import Discovery

    report = Discovery.default(opts.data_dir).report()
    available = [s for s in report if s.available]
    missing = [s.runtime for s in report if not s.available]
    names = ", ".join(f"{s.runtime} ({s.version})" if s.version else s.runtime for s in available)
    yield Finding("runtimes", Level.OK, f"available: {names}")
    if missing:
        yield Finding(
            "runtimes-missing",
            Level.WARN,
            f"missing: {', '.join(missing)} (functions on these are Failed, InvalidRuntime)",
            "brazier runtimes install ID (e.g. brazier runtimes install nodejs22.x)",
        )


def check_native_helpers(opts: DoctorOptions) -> Iterator[Finding]:
    from brazier.sandbox import native

    for helper in native.status():
        name = f"native-{helper.name}"
        if helper.path is not None:
            yield Finding(name, Level.OK, f"{helper.purpose}: {helper.path}")
        elif helper.buildable:
            yield Finding(name, Level.OK, f"{helper.purpose}: {helper.reason}")
        else:
            yield Finding(name, Level.WARN, f"{helper.purpose}: {helper.reason}", helper.fix)


CHECKS: tuple[Check, ...] = (
    check_root,
    check_kernel,
    check_namespaces,
    check_seccomp,
    check_cgroups,
    check_tmp_disks,
    check_open_files,
    check_runtimes,
    check_native_helpers,
)


def run_checks(opts: DoctorOptions, checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        try:
            findings.extend(check(opts))
        except Exception as exc:
            name = check.__name__.removeprefix("check_").replace("_", "-")
            findings.append(
                Finding(name, Level.FAIL, f"the check itself failed: {type(exc).__name__}: {exc}")
            )
    return findings


def can_run_sandboxes(findings: list[Finding]) -> bool:
    return all(f.level is not Level.FAIL for f in findings)


def _default_concurrency() -> int:
    from brazier.model.settings import Settings

    field = {f.name: f for f in dataclasses.fields(Settings)}["account_concurrency"]
    assert isinstance(field.default, int)
    return field.default


@click.command("doctor")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help=config.DATA_DIR.help_text())  # fmt: skip
@config.config_option
@click.option("--account-concurrency", default=None, type=click.IntRange(min=1),
              help="Environments the open files limit must allow"
                   " (default: the server's).")  # fmt: skip
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def doctor_command(
    data_dir: str | None, config_file: str | None, account_concurrency: int | None, output: str
) -> None:
    """Check that this host can run brazier's sandboxes; print each finding with its fix.

    Exits 1 when sandboxes cannot run here (a FAIL), 0 otherwise."""
    try:
        resolved = config.data_dir(data_dir, config_file)
    except config.ConfigError as exc:
        config.fail(exc)
    opts = DoctorOptions(
        data_dir=resolved,
        account_concurrency=account_concurrency or _default_concurrency(),
    )
    findings = run_checks(opts)
    ok = can_run_sandboxes(findings)
    if output == "json":
        click.echo(json.dumps({"ok": ok, "findings": [f.as_json() for f in findings]}, indent=2))
    else:
        width = max(len(f.check) for f in findings)
        for f in findings:
            click.echo(f"{f.level.value:<4}  {f.check:<{width}}  {f.what}")
            if f.fix:
                click.echo(f"{'':<4}  {'':<{width}}  fix: {f.fix}")
        verdict = "brazier can run sandboxes here" if ok else "brazier cannot run sandboxes here"
        click.echo(verdict, err=not ok)
    sys.exit(0 if ok else 1)
