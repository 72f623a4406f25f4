"""scripts/system-deps.sh: quick when everything is there (apt, for real, on this Debian), and
on a dnf host (Fedora/RHEL, with stand-ins for rpm and dnf on PATH): the right names, the needed
ones in one transaction, an optional one that the distribution lacks skipped with a message."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import ROOT

SCRIPT = ROOT / "scripts" / "system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="a Debian host")
def test_on_this_debian_everything_is_there_and_it_is_quick() -> None:
    for which in ("run", "dev"):
        start = time.monotonic()
        proc = subprocess.run([BASH, SCRIPT, which], capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "" and proc.stderr == ""  # nothing to install: silent
        assert took < 2.0, took


def test_an_unknown_set_is_a_usage_error() -> None:
    proc = subprocess.run([BASH, SCRIPT, "all"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def fake_dnf_host(tmp_path: Path, installed: set[str], unavailable: set[str]) -> Path:
    """A PATH with the script's tools and rpm/dnf stand-ins that log what they are asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "grep", "awk", "cat"):
        real = shutil.which(tool)
        assert real is not None
        (bin_dir / tool).symlink_to(real)
    log = tmp_path / "dnf.log"
    (bin_dir / "rpm").write_text(
        "#!/bin/bash\n# rpm -q --quiet NAME\n"
        f'case " {" ".join(sorted(installed))} " in *" $3 "*) exit 0;; esac\nexit 1\n'
    )
    (bin_dir / "dnf").write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        f'for p in "$@"; do case " {" ".join(sorted(unavailable))} " in *" $p "*) exit 1;; esac; done\n'
    )
    for f in ("rpm", "dnf"):
        (bin_dir / f).chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("id") is None, reason="coreutils")
def test_on_a_dnf_host_it_installs_fedora_names(tmp_path: Path) -> None:
    bin_dir = fake_dnf_host(tmp_path, installed={"python3", "gcc"}, unavailable={"glibc-static"})
    proc = subprocess.run(
        [BASH, SCRIPT, "run"], capture_output=True, text=True, check=False,
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    if proc.returncode == 1 and "run as root" in proc.stderr:
        pytest.skip("installing needs root")
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "dnf.log").read_text().splitlines()
    # The needed ones in one transaction, then each optional one on its own.
    assert calls == ["install -y -q libseccomp e2fsprogs nftables", "install -y -q glibc-static"]
    assert "glibc-static is not available here; going on without it" in proc.stderr


def test_on_a_dnf_host_with_everything_it_does_nothing(tmp_path: Path) -> None:
    names = {"python3", "libseccomp", "e2fsprogs", "nftables", "gcc", "glibc-static", "curl", "autoconf",
             "automake", "libtool", "cmake", "gcc-c++", "make", "wrk"}  # fmt: skip
    bin_dir = fake_dnf_host(tmp_path, installed=names, unavailable=set())
    proc = subprocess.run(
        [BASH, SCRIPT, "dev"], capture_output=True, text=True, check=False,
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "dnf.log").exists()
