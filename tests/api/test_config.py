"""Server options from flags, BRAZIER_* environment variables and a TOML file (flags > env > file
> defaults); the data dir every command agrees on; errors that name the key and the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from service_support import Job, brazier_as_nobody, clean_env, run_brazier

import brazier

from support import create_key, free_port, lambda_client


def _toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _listening_on(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _server_without_port_flag(tmp_path: Path, env: dict[str, str], *args: str) -> Job:
    log = tmp_path / f"server-{len(list(tmp_path.glob('server-*')))}.log"
    return Job(("--prewarm-runtimes", "none", *args), env, log, port=False)


def _help_lines_without_text(text: str) -> list[str]:
    """Option lines of click's help that carry no help text (on their line or the next)."""
    lines = text.split("Options:")[1].splitlines()
    bare = []
    for i, ln in enumerate(lines):
        if not ln.startswith("  -") or ln.strip() == "-h, --help  Show this message and exit.":
            continue
        has_text = "  " in ln.strip()
        continued = i + 1 < len(lines) and lines[i + 1].startswith(" " * 10)
        if not has_text and not continued:
            bare.append(ln)
    return bare


def test_each_option_has_an_env_var_a_flag_and_help() -> None:
    from brazier.config import SERVER_OPTIONS

    names = [o.name for o in SERVER_OPTIONS]
    assert len(set(names)) == len(names)
    out = run_brazier("server", "--help", env=clean_env())
    assert out.returncode == 0
    flat = "".join(out.stdout.split())
    for opt in SERVER_OPTIONS:
        assert opt.flag in out.stdout
        assert f"env{opt.env}" in flat
    for cmd in (("server",), ("keys", "create"), ("keys", "list"), ("keys", "delete"),
                ("runtimes",), ("runtimes", "install"), ("invoke",), ("logs",),
                ("layers", "sbom")):  # fmt: skip
        text = run_brazier(*cmd, "--help", env=clean_env()).stdout
        assert _help_lines_without_text(text) == [], cmd


def test_version_flag() -> None:
    for flag in ("--version", "-V"):
        out = run_brazier(flag, env=clean_env())
        assert out.returncode == 0
        assert out.stdout.strip() == f"brazier {brazier.__version__}"


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    data = tmp_path / "from-file"
    cfg = _toml(tmp_path / "brazier.toml", f'port = {file_port}\ndata_dir = "from-file"\n'
                                           'log-level = "warning"\n')  # fmt: skip
    # The file alone: its port, and its data dir relative to the file.
    job = _server_without_port_flag(tmp_path, clean_env(), "--config", str(cfg))
    try:
        _wait(lambda: _listening_on(file_port), job)
        assert (data / "server.lock").exists()
    finally:
        job.ctrl_c()
        assert job.wait() == 0
    # The environment beats the file.
    env = clean_env(BRAZIER_PORT=str(env_port), BRAZIER_CONFIG=str(cfg))
    job = _server_without_port_flag(tmp_path, env)
    try:
        _wait(lambda: _listening_on(env_port), job)
        assert not _listening_on(file_port)
    finally:
        job.ctrl_c()
        assert job.wait() == 0
    # A flag beats the environment.
    job = _server_without_port_flag(tmp_path, env, "--port", str(flag_port))
    try:
        _wait(lambda: _listening_on(flag_port), job)
        assert not _listening_on(env_port)
    finally:
        job.ctrl_c()
        assert job.wait() == 0


def _wait(cond: Callable[[], bool], job: Job, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.proc.poll() is not None:
            raise AssertionError(f"server exited: {job.output()}")
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met: {job.output()}")


def _one_error_line(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = out.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_key_in_the_file_is_one_line_naming_key_and_file(tmp_path: Path) -> None:
    cfg = _toml(tmp_path / "brazier.toml", "prot = 9000\n")
    out = run_brazier("server", "--config", str(cfg), env=clean_env())
    assert out.returncode == 2
    _one_error_line(out, "'prot'", str(cfg))


def test_wrong_type_in_the_file_is_one_line_naming_key_and_file(tmp_path: Path) -> None:
    cfg = _toml(tmp_path / "brazier.toml", 'port = "9000"\n')
    out = run_brazier("server", "--config", str(cfg), env=clean_env())
    assert out.returncode == 2
    _one_error_line(out, "port", str(cfg), "integer")
    cfg = _toml(tmp_path / "brazier.toml", 'auth = "kerberos"\n')
    out = run_brazier("server", "--config", str(cfg), env=clean_env())
    assert out.returncode == 2
    _one_error_line(out, "auth", str(cfg), "kerberos")


def test_bad_env_value_and_missing_file_are_one_line(tmp_path: Path) -> None:
    out = run_brazier("server", env=clean_env(BRAZIER_PORT="ninety"))
    assert out.returncode == 2
    _one_error_line(out, "BRAZIER_PORT", "ninety")
    out = run_brazier("server", "--config", str(tmp_path / "nope.toml"), env=clean_env())
    assert out.returncode == 2
    _one_error_line(out, str(tmp_path / "nope.toml"), "does not exist")
    cfg = _toml(tmp_path / "broken.toml", "port = \n")
    out = run_brazier("server", "--config", str(cfg), env=clean_env())
    assert out.returncode == 2
    _one_error_line(out, str(cfg), "TOML")


def test_keys_run_anywhere_write_where_the_server_reads(tmp_path: Path) -> None:
    """BRAZIER_DATA_DIR (or the file's data_dir) is the same for `keys` and `server`, whatever
    folder each is started from."""
    data = tmp_path / "state"
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    env = clean_env(BRAZIER_DATA_DIR=str(data))
    made = run_brazier("keys", "create", "--account-id", "111122223333", env=env, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert not (elsewhere / ".brazier").exists()
    job = Job(("--prewarm-runtimes", "none", "--auth", "sigv4"), env, tmp_path / "s.log")
    try:
        job.wait_healthy()
        client = lambda_client(job.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        assert client.list_functions()["Functions"] == []
        listed = run_brazier("keys", "list", env=env, cwd=elsewhere)
        assert key["AccessKeyId"] in listed.stdout
    finally:
        job.ctrl_c()
        assert job.wait() == 0


def test_keys_list_does_not_create_a_mistyped_data_dir(tmp_path: Path) -> None:
    typo = tmp_path / "dta"
    out = run_brazier("keys", "list", "--data-dir", str(typo), env=clean_env())
    assert out.returncode == 1
    _one_error_line(out, str(typo))
    assert not typo.exists()
    out = run_brazier("keys", "delete", "AKIA0000", "--data-dir", str(typo), env=clean_env())
    assert out.returncode == 1
    assert not typo.exists()


def test_data_dir_default_for_root_is_var_lib() -> None:
    from brazier.config import SYSTEM_DATA_DIR, default_data_dir

    assert default_data_dir({"HOME": "/root"}, 0) == SYSTEM_DATA_DIR == Path("/var/lib/brazier")
    assert default_data_dir({"HOME": "/home/u", "XDG_DATA_HOME": "/x"}, 1000) == Path("/x/brazier")
    assert default_data_dir({"HOME": "/home/u", "XDG_DATA_HOME": "rel"}, 1000) == Path(
        "/home/u/.local/share/brazier"
    )


@pytest.mark.parametrize("xdg", [False, True])
def test_data_dir_default_for_a_user(request: pytest.FixtureRequest, xdg: bool) -> None:
    """Run by a non-root user, ``keys create`` writes under $XDG_DATA_HOME/brazier, else
    ~/.local/share/brazier."""
    # pytest's tmp_path sits under a 0700 folder: the user needs one it can reach.
    home = Path(tempfile.mkdtemp(prefix="brazier-home-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    home.chmod(0o755)
    os.chown(home, 65534, 65534)
    env = clean_env(HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    where = home / ".local" / "share" / "brazier"
    if xdg:
        env["XDG_DATA_HOME"] = str(home / "xdg")
        where = home / "xdg" / "brazier"
    out = brazier_as_nobody("keys", "create", env=env)
    assert out.returncode == 0, out.stderr
    assert (where / "credentials.json").exists()
    out = brazier_as_nobody("keys", "list", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads((where / "credentials.json").read_text())


def test_a_key_from_create_key_still_works(tmp_path: Path) -> None:
    """support.create_key passes --data-dir explicitly: the flag wins over everything."""
    key = create_key(tmp_path / "d")
    assert key["AccessKeyId"] in (tmp_path / "d" / "credentials.json").read_text()


def test_repeatable_and_list_options_from_every_source(tmp_path: Path) -> None:
    """--allow-host-port: repeated flags, a comma list in the env, a TOML list; a bad port is
    a ConfigError naming where it came from."""
    from brazier import config

    opts = config.SERVER_OPTIONS
    none = config.ConfigFile(None, {})
    by_flags = config.resolve(opts, {"allow_host_port": ((5432,), (6379,))}, {}, none)
    assert by_flags["allow_host_port"] == (5432, 6379)
    by_env = config.resolve(opts, {}, {"BRAZIER_ALLOW_HOST_PORT": "5432, 6379"}, none)
    assert by_env["allow_host_port"] == (5432, 6379)
    toml = tmp_path / "b.toml"
    toml.write_text('allow_host_port = [5432]\nasync_retry_delays = "1,2"\negress = "none"\n')
    by_file = config.resolve(opts, {}, {}, config.read_config_file(str(toml), {}))
    assert by_file["allow_host_port"] == (5432,)
    assert (by_file["async_retry_delays"], by_file["egress"]) == ("1,2", "none")
    assert config.resolve(opts, {}, {}, none)["allow_host_port"] == ()
    with pytest.raises(config.ConfigError, match=r"BRAZIER_ALLOW_HOST_PORT.*70000"):
        config.resolve(opts, {}, {"BRAZIER_ALLOW_HOST_PORT": "70000"}, none)
