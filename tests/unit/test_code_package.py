"""Deployment packages are hostile input: every rejection rule of ``code_package``, extraction."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import struct
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from brazier.control.code_package import (
    CORRUPT,
    EMPTY,
    MAX_ZIPPED,
    PackageInfo,
    check_zip_size,
    extract_zip,
    inspect_zip,
)
from brazier.model.errors import InvalidParameterValueException, RequestEntityTooLargeException

Member = tuple[str, bytes] | tuple[str, bytes, int]


def mkzip(*members: Member, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, data[, st_mode]) members; st_mode goes into the unix external attributes."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which we want to build
        with zipfile.ZipFile(buf, "w") as zf:
            for m in members:
                info = zipfile.ZipInfo(m[0], (2020, 1, 1, 0, 0, 0))
                info.compress_type = method
                if len(m) == 3:
                    info.external_attr = m[2] << 16
                    info.create_system = 3
                zf.writestr(info, m[1])
    return buf.getvalue()


def link(name: str, target: str) -> tuple[str, bytes, int]:
    return (name, target.encode(), stat.S_IFLNK | 0o777)


def rejected(data: bytes, match: str, **kw: int) -> None:
    with pytest.raises(InvalidParameterValueException, match=match):
        inspect_zip(data, **kw)


def patch_sizes(data: bytes, usize: int) -> bytes:
    """Make a one-member zip lie about its uncompressed size (local and central headers)."""
    b = bytearray(data)
    assert b[:4] == b"PK\x03\x04"
    struct.pack_into("<L", b, 22, usize)
    cd = b.find(b"PK\x01\x02")
    struct.pack_into("<L", b, cd + 24, usize)
    return bytes(b)


# -- valid packages -------------------------------------------------------------------------------


def test_valid_nested_package_inspect_and_extract(tmp_path: Path) -> None:
    data = mkzip(
        ("bootstrap", b"#!/bin/sh\necho hi\n", stat.S_IFREG | 0o755),
        ("lib/", b"", stat.S_IFDIR | 0o755),
        ("lib/pkg/mod.py", b"X = 1\n", stat.S_IFREG | 0o644),
        ("lib/pkg/deeper/data.bin", bytes(range(256)) * 10),
        ("./dotted.txt", b"dot"),
        link("lib/current", "pkg/mod.py"),
    )
    info = inspect_zip(data)
    digest = hashlib.sha256(data).digest()
    expected = PackageInfo(
        sha256_b64=base64.b64encode(digest).decode(),
        sha256_hex=digest.hex(),
        size=len(data),
        unzipped_size=18 + 6 + 2560 + 3 + len("pkg/mod.py"),
        entries=6,
        has_bootstrap=True,
    )
    assert info == expected

    dest = tmp_path / "tree"
    assert extract_zip(data, dest) == expected
    assert (dest / "bootstrap").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (dest / "lib/pkg/deeper/data.bin").read_bytes() == bytes(range(256)) * 10
    assert (dest / "dotted.txt").read_bytes() == b"dot"
    assert os.readlink(dest / "lib/current") == "pkg/mod.py"
    assert (dest / "lib/current").read_bytes() == b"X = 1\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    for d in ("lib", "lib/pkg", "lib/pkg/deeper"):
        assert stat.S_IMODE((dest / d).stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib/pkg/mod.py").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no temp dir left


def test_executable_bit_preserved_and_modes_normalised(tmp_path: Path) -> None:
    data = mkzip(
        ("bootstrap", b"x", stat.S_IFREG | 0o700),
        ("private", b"x", stat.S_IFREG | 0o600),
        ("world", b"x", stat.S_IFREG | 0o777),
        ("setuid", b"x", stat.S_IFREG | stat.S_ISUID | 0o755),
        ("windows.txt", b"x"),  # no unix mode at all
    )
    extract_zip(data, tmp_path / "t")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "t").iterdir()}
    assert modes == {
        "bootstrap": 0o755,
        "private": 0o644,
        "world": 0o755,
        "setuid": 0o755,
        "windows.txt": 0o644,
    }


def test_root_directory_entry_and_repeated_dirs_are_ignored() -> None:
    data = mkzip(("./", b""), ("a/", b""), ("a/", b""), ("a/f", b"1"))
    info = inspect_zip(data)
    assert info.entries == 4
    assert not info.has_bootstrap


def test_bootstrap_directory_is_not_a_bootstrap() -> None:
    assert not inspect_zip(mkzip(("bootstrap/x", b"1"))).has_bootstrap


def test_stored_members_are_fine() -> None:
    assert inspect_zip(mkzip(("a", b"abc"), method=zipfile.ZIP_STORED)).unzipped_size == 3


def test_non_utf8_names_keep_their_raw_bytes(tmp_path: Path) -> None:
    data = mkzip(("cafX", b"1")).replace(b"cafX", b"caf\xe9")
    extract_zip(data, tmp_path / "t")
    assert os.listdir(bytes(tmp_path / "t")) == [b"caf\xe9"]


def test_typical_one_megabyte_package_is_fast(tmp_path: Path) -> None:
    members = [
        (f"pkg/m{i}.py", (f"def f{i}():\n    return {i}\n" * 200).encode()) for i in range(200)
    ]
    data = mkzip(*members)
    start = time.perf_counter()
    info = extract_zip(data, tmp_path / "t")
    elapsed = time.perf_counter() - start
    assert info.unzipped_size > 1_000_000
    assert elapsed < 1.0  # a few ms in practice; generous for loaded CI machines


# -- corrupt input ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"not a zip at all", b"PK\x03\x04garbage", b"\0" * 100])
def test_not_a_zip(data: bytes) -> None:
    rejected(data, CORRUPT)


def test_empty_input_and_empty_zip() -> None:
    rejected(b"", EMPTY)
    rejected(mkzip(), EMPTY)


def test_truncated_zip() -> None:
    data = mkzip(("a", os.urandom(5000)), ("b", b"x" * 100))
    for cut in (10, len(data) // 2, len(data) - 1):
        rejected(data[:cut], CORRUPT)


def test_bad_crc_is_found_by_decompressing() -> None:
    data = bytearray(mkzip(("a", b"hello world" * 10), method=zipfile.ZIP_STORED))
    data[30 + 1 + 5] ^= 0xFF  # a byte of the stored data, after the 30-byte header and the name
    rejected(bytes(data), CORRUPT)


def test_corrupt_deflate_stream() -> None:
    data = bytearray(mkzip(("a", os.urandom(2000))))
    for i in range(31, 60):
        data[i] ^= 0x55
    rejected(bytes(data), CORRUPT)


def test_encrypted_and_unsupported_compression_rejected() -> None:
    data = bytearray(mkzip(("a", b"x")))
    cd = data.find(b"PK\x01\x02")
    data[cd + 8] |= 0x1
    rejected(bytes(data), "encrypted")
    rejected(mkzip(("a", b"x" * 100), method=zipfile.ZIP_BZIP2), "compression method")
    rejected(mkzip(("a", b"x" * 100), method=zipfile.ZIP_LZMA), "compression method")


def test_failed_extraction_leaves_nothing(tmp_path: Path) -> None:
    good = mkzip(*[(f"f{i}", b"data" * 100) for i in range(5)], method=zipfile.ZIP_STORED)
    bad = bytearray(good)
    bad[good.rfind(b"data" * 100) + 10] ^= 0xFF  # in the last member: the others were written
    with pytest.raises(InvalidParameterValueException, match=CORRUPT):
        extract_zip(bytes(bad), tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_os_error_during_extraction_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "symlink", boom)
    with pytest.raises(OSError, match="disk on fire"):
        extract_zip(mkzip(("a", b"1"), link("l", "a")), tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_extract_refuses_existing_destination(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(FileExistsError):
        extract_zip(mkzip(("a", b"1")), tmp_path / "t")
    (tmp_path / "l").symlink_to(tmp_path / "missing")
    with pytest.raises(FileExistsError):
        extract_zip(mkzip(("a", b"1")), tmp_path / "l")


# -- size limits and bombs ----------------------------------------------------------------------


def test_check_zip_size() -> None:
    check_zip_size(MAX_ZIPPED)
    with pytest.raises(RequestEntityTooLargeException) as ei:
        check_zip_size(MAX_ZIPPED + 1)
    assert ei.value.message == "Zipped size must be smaller than 52428800 bytes"
    assert ei.value.status == 413


def test_default_oversize_message_is_lambdas() -> None:
    # A little over 250 MB of zeros deflates to about 250 KB, but we stop at the limit.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros", "w") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(251):
            f.write(chunk)
    rejected(buf.getvalue(), "^Unzipped size must be smaller than 262144000 bytes$")


def test_high_ratio_member_over_limit() -> None:
    data = mkzip(("zeros", b"\0" * 2_000_000))
    assert len(data) < 5000
    rejected(data, "Unzipped size must be smaller than 1000000 bytes", max_unzipped=1_000_000)
    assert inspect_zip(data, max_unzipped=2_000_000).unzipped_size == 2_000_000


def test_many_members_sum_over_limit() -> None:
    data = mkzip(*[(f"f{i}", b"\0" * 100_000) for i in range(20)])
    rejected(data, "Unzipped size", max_unzipped=1_000_000)


def test_declared_size_smaller_than_real_data_is_caught() -> None:
    # The headers say 10 bytes; zipfile stops there and the CRC of the prefix does not match.
    data = patch_sizes(mkzip(("bomb", b"\0" * 2_000_000)), 10)
    rejected(data, CORRUPT, max_unzipped=1_000_000)


def test_declared_size_larger_than_limit_real_total_stops_early() -> None:
    # The headers claim 4 GB: the running total, not the header, triggers the rejection.
    data = patch_sizes(mkzip(("bomb", b"\0" * 2_000_000)), 0xFFFF_FFF0)
    rejected(data, "Unzipped size", max_unzipped=1_000_000)
    # Under the limit, the lie surfaces as a corrupt archive (the stream ends early).
    rejected(data, CORRUPT, max_unzipped=10_000_000)


def test_too_many_entries() -> None:
    data = mkzip(*[(f"f{i}", b"") for i in range(11)])
    rejected(data, "at most 10 entries", max_entries=10)
    assert inspect_zip(data, max_entries=11).entries == 11


def test_implied_directories_count_as_entries() -> None:
    data = mkzip(("d1/d2/d3/d4/f", b""))
    rejected(data, "at most 4 entries", max_entries=4)
    assert inspect_zip(data, max_entries=5).entries == 1


def test_stray_central_signatures_in_stored_nested_zip_do_not_count() -> None:
    inner = mkzip(*[(f"f{i}", b"") for i in range(50)])
    outer = mkzip(("inner.zip", inner), ("b", b"1"), method=zipfile.ZIP_STORED)
    assert outer.count(b"PK\x01\x02") > 10
    assert inspect_zip(outer, max_entries=10).entries == 2


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../evil", "escapes"),
        ("a/../../x", "escapes"),
        ("a/b/../c", "escapes"),
        ("..\\x", "escapes"),
        ("a\\..\\..\\x", "escapes"),
        ("/abs", "absolute"),
        ("\\abs", "absolute"),
        ("//server/share", "absolute"),
        ("C:/x", "drive letter"),
        ("c:x", "drive letter"),
        (".", "root"),
        ("./", None),
        ("x" * 256, "longer than 255"),
        ("/".join(["d"] * 129) + "/f", "deeper"),
        ("a/" * 2100 + "f", "too long"),
    ],
)
def test_bad_names(name: str, why: str | None) -> None:
    data = mkzip((name, b"x"))
    if why is None:  # a directory entry for the root itself: ignored, but nothing else is in it
        assert inspect_zip(mkzip((name, b""), ("ok", b"1"))).entries == 2
    else:
        rejected(data, why)


def test_nul_byte_in_name() -> None:
    data = mkzip(("aXb", b"1")).replace(b"aXb", b"a\0b")
    rejected(data, "NUL")


@pytest.mark.parametrize(
    "members",
    [
        [("a", b"1"), ("a", b"2")],
        [("a", b"1"), ("./a", b"2")],
        [("a/b", b"1"), ("a//b", b"2")],
        [("a\\b", b"1"), ("a/b", b"2")],
    ],
)
def test_duplicates_rejected(members: list[Member]) -> None:
    rejected(mkzip(*members), "duplicate")


def test_file_and_directory_collisions() -> None:
    rejected(mkzip(("a", b"1"), ("a/b", b"2")), "below a file")
    rejected(mkzip(("a/b", b"2"), ("a", b"1")), "collides with a directory")
    rejected(mkzip(("a/", b""), ("a", b"1")), "duplicate")


@pytest.mark.parametrize("fmt", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
def test_special_files_rejected(fmt: int) -> None:
    rejected(mkzip(("dev", b"", fmt | 0o644)), "special file")


# -- symlinks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "why"),
    [
        ([link("l", "/etc/passwd")], "absolute target"),
        ([link("l", "../../x")], "escaping"),
        ([link("a/b/l", "../../../x")], "escaping"),
        ([link("l", "sub/../../x")], "escaping"),
        ([link("l", "..")], "escaping"),
        # Lexically "b/.." is the root, but b -> . so b/.. is the root's parent.
        ([link("b", "."), link("c", "b/..")], "escaping"),
        ([link("d", "x/y"), link("x/y", "../.."), ("f", b"1")], "escaping"),
        ([link("a", "b"), link("b", "a")], "loop"),
        ([link("l", "")], "invalid target"),
        ([link("l", "a\\..\\..\\x")], "invalid target"),
        ([("l", b"a\0b", stat.S_IFLNK | 0o777)], "invalid target"),
        ([("l", b"x" * 5000, stat.S_IFLNK | 0o777)], "over-long target"),
        ([link("l/", "x")], "non-directory type"),
    ],
)
def test_bad_symlinks(members: list[Member], why: str) -> None:
    rejected(mkzip(*members), why)


def test_symlink_then_write_through_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    cases: list[list[Member]] = [
        [link("a", str(outside)), ("a/pwned", b"x")],  # absolute: rejected anyway
        [link("a", "sub"), ("sub/", b""), ("a/pwned", b"x")],  # inside, but never write through
        [("a/pwned", b"x"), link("a", "sub")],  # the link after the file: same
    ]
    for members in cases:
        with pytest.raises(InvalidParameterValueException):
            extract_zip(mkzip(*members), tmp_path / "t")
        assert not (tmp_path / "t").exists()
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]


def test_good_symlinks_extracted_as_links(tmp_path: Path) -> None:
    data = mkzip(
        ("data/file", b"payload"),
        link("lib/l1", "../data/file"),
        link("lib/dir", "../data"),
        link("dangling", "does/not/exist"),
        link("chain", "lib/dir/file"),
        link("self", "."),
    )
    info = extract_zip(data, tmp_path / "t")
    t = tmp_path / "t"
    assert (t / "lib/l1").read_bytes() == b"payload"
    assert (t / "chain").read_bytes() == b"payload"
    assert (t / "lib/dir").is_symlink()
    assert os.readlink(t / "dangling") == "does/not/exist"
    assert info.entries == 6


def test_bootstrap_may_be_a_symlink() -> None:
    assert inspect_zip(
        mkzip(("bin/run", b"x", 0o100755), link("bootstrap", "bin/run"))
    ).has_bootstrap
