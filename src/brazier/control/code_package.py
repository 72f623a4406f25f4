"""Deployment packages (function code and layer zips): inspect and extract hostile input safely.

Everything here treats the zip as hostile. The rules, and why:

* **Sizes are measured, never trusted.** Every member is decompressed (which also checks its CRC)
  with a running total that stops as soon as the real total passes ``max_unzipped``. Declared sizes
  only bound what :mod:`zipfile` emits per member; a member that lies ends in a CRC or EOF error.
  There is no compression-ratio limit: Lambda has none, and the measured total is the real limit
  (a ratio rule would reject legitimate sparse files and still need the total check).
* **Only STORED and DEFLATED members.** :mod:`zipfile` hands bzip2 and lzma input to the
  decompressor without an output bound, so one 4 KiB bzip2 read can expand to gigabytes in memory.
  Every mainstream packager (zip, jar, Python, Windows, 7-Zip defaults) writes deflate.
* **At most ``max_entries`` members** (default 100,000). Lambda documents no limit; ours bounds the
  parse itself (``zipfile`` builds an object per central record: ~0.5 KB and ~6 us each, so a
  50 MB central directory of 1M empty records would cost 500 MB and seconds). It is checked on
  the raw bytes *before* :mod:`zipfile` parses anything.
* **Names stay inside the root.** Backslashes are treated as separators (old Windows tools write
  them), ``.`` and empty components are dropped, and absolute names, ``..``, drive letters, NUL
  bytes, over-long names and more than :data:`MAX_DEPTH` levels are rejected. Two members that
  normalise to the same path are rejected instead of one silently overwriting the other; so is a
  member below a file or a symlink (which is how "write through a symlink" is stopped). A
  directory entry naming the root itself (``./``, as written by bsdtar) is ignored.
* **Symlinks must stay inside.** A symlink's target is resolved against the other links in the
  package (a purely lexical check is fooled by ``a -> .`` plus ``b -> a/..``); absolute or
  escaping targets, and loops, are rejected. Extraction creates symlinks last, after every file.
* **Modes are normalised** to 0644/0755 for files (the executable bit is kept, so ``bootstrap``
  stays runnable) and 0755 for directories; devices, fifos and sockets are rejected.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Literal

from brazier.model.errors import InvalidParameterValueException, RequestEntityTooLargeException

MAX_ZIPPED = 52_428_800
MAX_UNZIPPED = 262_144_000
MAX_ENTRIES = 100_000
MAX_DEPTH = 128
_MAX_NAME_BYTES = 4095  # PATH_MAX minus the NUL
_MAX_COMPONENT_BYTES = 255  # NAME_MAX
_MAX_LINK_HOPS = 40  # what Linux allows before ELOOP
_CHUNK = 1 << 16
# /var/task is root-owned drwxr-xr-x: code is world-readable inside the sandbox by design.
_DIR_MODE, _EXEC_MODE, _FILE_MODE = 0o755, 0o755, 0o644
# What zipfile raises on bad input (RuntimeError: encryption). Our own errors are none of these.
_READ_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError,
    struct.error,
)  # fmt: skip
_ALLOWED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})

CORRUPT = "Could not unzip uploaded file. Please check your file, then try to upload again."
EMPTY = "Uploaded file must be a non-empty zip"

_Kind = Literal["file", "dir", "link"]
_Parts = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """What a validated package holds. ``sha256_b64`` is Lambda's ``CodeSha256``."""

    sha256_b64: str
    sha256_hex: str
    size: int
    unzipped_size: int
    entries: int
    has_bootstrap: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: _Parts
    kind: _Kind
    executable: bool


def check_zip_size(n: int) -> None:
    """Raise 413 when a directly uploaded zip is over Lambda's 50 MB limit."""
    if n > MAX_ZIPPED:
        raise RequestEntityTooLargeException(f"Zipped size must be smaller than {MAX_ZIPPED} bytes")


def inspect_zip(
    data: bytes, *, max_unzipped: int = MAX_UNZIPPED, max_entries: int = MAX_ENTRIES
) -> PackageInfo:
    """Validate ``data`` completely (names, links, every CRC, real sizes) without writing."""
    return _process(data, None, max_unzipped=max_unzipped, max_entries=max_entries)


def extract_zip(
    data: bytes, dest: Path, *, max_unzipped: int = MAX_UNZIPPED, max_entries: int = MAX_ENTRIES
) -> PackageInfo:
    """Validate ``data`` and extract it into the new directory ``dest``, all or nothing.

    ``dest`` must not exist (``FileExistsError``). The package is written into a sibling temp
    directory and renamed onto ``dest`` at the end; on any failure the temp directory is removed.
    A concurrent creator of ``dest`` makes the final rename fail with ``OSError`` (a rename onto an
    existing *empty* directory would replace it, which is harmless). ``OSError`` from the
    filesystem propagates untranslated: it is the server's fault, not the caller's.
    """
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(str(dest))
    tmp = dest.parent / f".tmp-{secrets.token_hex(8)}"
    os.mkdir(tmp, 0o700)  # private while incomplete
    try:
        info = _process(data, tmp, max_unzipped=max_unzipped, max_entries=max_entries)
        os.chmod(tmp, _DIR_MODE)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _process(data: bytes, dest: Path | None, *, max_unzipped: int, max_entries: int) -> PackageInfo:
    if not data:
        raise InvalidParameterValueException(EMPTY)
    if _central_records_bound(data, max_entries) > max_entries:
        raise _too_many(max_entries)
    try:
        zf = zipfile.ZipFile(BytesIO(data))
    except _READ_ERRORS as exc:
        raise InvalidParameterValueException(CORRUPT) from exc
    with zf:
        infos = zf.infolist()
        if not infos:
            raise InvalidParameterValueException(EMPTY)
        if len(infos) > max_entries:
            raise _too_many(max_entries)
        entries, dirs = _plan(infos)
        total = 0

        def count(n: int) -> None:
            nonlocal total
            total += n
            if total > max_unzipped:
                raise InvalidParameterValueException(
                    f"Unzipped size must be smaller than {max_unzipped} bytes"
                )

        links: dict[_Parts, str] = {}
        for e in entries:
            if e.kind == "link":
                links[e.parts] = _read_link(zf, e, count)
        for parts, target in links.items():
            _check_link(parts, target, links)

        if dest is None:
            for e in entries:
                if e.kind != "link":
                    _stream(zf, e.info, None, count)
        else:
            _write(zf, dest, entries, dirs, links, count=count)

    digest = hashlib.sha256(data).digest()
    root_bootstrap = any(e.parts == ("bootstrap",) and e.kind != "dir" for e in entries)
    return PackageInfo(
        sha256_b64=base64.b64encode(digest).decode("ascii"),
        sha256_hex=digest.hex(),
        size=len(data),
        unzipped_size=total,
        entries=len(infos),
        has_bootstrap=root_bootstrap,
    )


def _too_many(limit: int) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Uploaded zip must contain at most {limit} entries")


def _central_records_bound(data: bytes, limit: int) -> int:
    """An upper bound on the central records :mod:`zipfile` would parse, from the raw bytes.

    Every record zipfile accepts starts with ``PK\\x01\\x02``, so counting that signature bounds
    the parse. The whole-buffer count is the fast path; stored nested archives can carry stray
    signatures, so past ``limit`` we count only inside the central directory span, located the
    same way as ``zipfile._EndRecData`` does (it ends where the (zip64) end record starts).
    """
    sig = b"PK\x01\x02"
    fast = data.count(sig)
    if fast <= limit:
        return fast
    end = len(data) - 22
    if not (end >= 0 and data.startswith(b"PK\x05\x06", end) and data.endswith(b"\0\0")):
        end = data.rfind(b"PK\x05\x06", max(len(data) - (1 << 16) - 22, 0))
        if end < 0 or end + 22 > len(data):
            return fast  # zipfile will refuse it anyway
    (size_cd,) = struct.unpack_from("<L", data, end + 12)
    loc = end
    z64 = end - 20 - 56
    if (
        z64 >= 0
        and data.startswith(b"PK\x06\x07", end - 20)
        and data.startswith(b"PK\x06\x06", z64)
    ):
        (size_cd,) = struct.unpack_from("<Q", data, z64 + 40)
        loc = z64
    return data.count(sig, max(loc - size_cd, 0), loc)


def _plan(infos: list[zipfile.ZipInfo]) -> tuple[list[_Entry], set[_Parts]]:
    """Validate names and types from the central directory; return entries and all directories."""
    entries: list[_Entry] = []
    kinds: dict[_Parts, _Kind] = {}  # includes implicit parent directories
    explicit: set[_Parts] = set()
    for info in infos:
        if info.flag_bits & 0x1:
            raise InvalidParameterValueException("Uploaded zip must not contain encrypted entries")
        if info.compress_type not in _ALLOWED_METHODS:
            raise InvalidParameterValueException(
                f"Uploaded zip entry {_show(info)} uses an unsupported compression method "
                f"({info.compress_type}); only stored and deflated entries are supported"
            )
        name = _raw_name(info)
        kind, executable = _kind(info, name)
        parts = _normalise(name, info)
        if not parts:
            if kind == "dir":
                continue  # "./" names the root itself: nothing to create
            raise _bad_name(info, "names the package root")
        if parts in explicit:
            if kind == "dir" and kinds[parts] == "dir":
                continue  # a repeated directory entry overwrites nothing
            raise _bad_name(info, "is a duplicate")
        for i in range(len(parts) - 1, 0, -1):  # deepest first: stop at a known directory,
            ancestor = parts[:i]  # whose own ancestors were all checked when it was added
            known = kinds.get(ancestor)
            if known == "dir":
                break
            if known is not None:
                raise _bad_name(info, "lies below a file or symlink")
            kinds[ancestor] = "dir"
        if kinds.get(parts, kind) != kind:
            raise _bad_name(info, "collides with a directory")
        kinds[parts] = kind
        explicit.add(parts)
        entries.append(_Entry(info, parts, kind, executable))
    return entries, {p for p, k in kinds.items() if k == "dir"}


def _raw_name(info: zipfile.ZipInfo) -> str:
    """The name as a Linux unzip would write it (raw bytes when the UTF-8 flag is missing)."""
    name = info.orig_filename  # zipfile truncates ``filename`` at NUL; this keeps it
    if not info.flag_bits & 0x800:
        name = name.encode("cp437").decode("utf-8", "surrogateescape")
    return name


def _kind(info: zipfile.ZipInfo, name: str) -> tuple[_Kind, bool]:
    mode = info.external_attr >> 16
    fmt = stat.S_IFMT(mode)
    if name.endswith(("/", "\\")):
        if fmt not in (0, stat.S_IFDIR):
            raise _bad_name(info, "is a directory name with a non-directory type")
        return "dir", False
    if fmt in (0, stat.S_IFREG):  # 0: no unix mode (e.g. made on Windows)
        return "file", bool(mode & 0o111)
    if fmt == stat.S_IFDIR:
        return "dir", False
    if fmt == stat.S_IFLNK:
        return "link", False
    raise _bad_name(info, "is a special file (device, fifo or socket)")


def _normalise(name: str, info: zipfile.ZipInfo) -> _Parts:
    if "\0" in name:
        raise _bad_name(info, "contains a NUL byte")
    if len(os.fsencode(name)) > _MAX_NAME_BYTES:
        raise _bad_name(info, "is too long")
    name = name.replace("\\", "/")
    if name.startswith("/"):
        raise _bad_name(info, "is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if (
        parts
        and len(parts[0]) >= 2
        and parts[0][1] == ":"
        and parts[0][0].isascii()
        and parts[0][0].isalpha()
    ):
        raise _bad_name(info, "starts with a drive letter")
    if ".." in parts:
        raise _bad_name(info, "escapes the package root")
    if len(parts) > MAX_DEPTH:
        raise _bad_name(info, f"is nested deeper than {MAX_DEPTH} levels")
    if any(len(os.fsencode(p)) > _MAX_COMPONENT_BYTES for p in parts):
        raise _bad_name(info, "has a path component longer than 255 bytes")
    return parts


def _read_link(zf: zipfile.ZipFile, e: _Entry, count: Callable[[int], None]) -> str:
    chunks: list[bytes] = []
    _stream(zf, e.info, chunks.append, count, limit=_MAX_NAME_BYTES)
    raw = b"".join(chunks)
    if not raw or b"\0" in raw or b"\\" in raw:
        raise _bad_name(e.info, "is a symlink with an invalid target")
    if raw.startswith(b"/"):
        raise _bad_name(e.info, "is a symlink with an absolute target")
    return raw.decode("utf-8", "surrogateescape")


def _check_link(parts: _Parts, target: str, links: dict[_Parts, str]) -> None:
    """Reject ``target`` unless it resolves inside the root, following the package's own links."""
    hops = 0

    def resolve(base: list[str], path: str) -> list[str]:
        nonlocal hops
        cur = list(base)
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not cur:
                    raise InvalidParameterValueException(
                        f"Uploaded zip entry {'/'.join(parts)!r} is a symlink escaping the package"
                    )
                cur.pop()
                continue
            cur.append(comp)
            nxt = links.get(tuple(cur))
            if nxt is not None:
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise InvalidParameterValueException(
                        f"Uploaded zip entry {'/'.join(parts)!r} is part of a symlink loop"
                    )
                cur = resolve(cur[:-1], nxt)
        return cur

    resolve(list(parts[:-1]), target)


def _write(
    zf: zipfile.ZipFile,
    dest: Path,
    entries: list[_Entry],
    dirs: set[_Parts],
    links: dict[_Parts, str],
    *,
    count: Callable[[int], None],
) -> None:
    for d in sorted(dirs):  # parents sort before their children
        p = dest.joinpath(*d)
        os.mkdir(p, _DIR_MODE)
        os.chmod(p, _DIR_MODE)  # mkdir's mode was masked by the umask
    # O_EXCL|O_NOFOLLOW: never overwrite, never follow. Defence in depth: names are unique, no
    # entry lies below a file or link, and no symlink exists yet.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for e in entries:
        if e.kind == "dir":
            _stream(zf, e.info, None, count)  # data on a directory entry: check it, drop it
        elif e.kind == "file":
            fd = os.open(dest.joinpath(*e.parts), flags, 0o600)
            with open(fd, "wb") as f:
                _stream(zf, e.info, f.write, count)
                os.fchmod(f.fileno(), _EXEC_MODE if e.executable else _FILE_MODE)
    # Last, so no write can ever meet a symlink we created.
    for parts, target in links.items():
        os.symlink(target, dest.joinpath(*parts))


def _stream(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    sink: Callable[[bytes], object] | None,
    count: Callable[[int], None],
    limit: int | None = None,
) -> None:
    """Decompress one member in chunks (checking its CRC at EOF), counting every real byte."""
    seen = 0
    try:
        with zf.open(info) as src:
            while chunk := src.read(_CHUNK):
                count(len(chunk))
                seen += len(chunk)
                if limit is not None and seen > limit:
                    raise _bad_name(info, "is a symlink with an over-long target")
                if sink is not None:
                    sink(chunk)
        if seen != info.file_size:  # zipfile checks the CRC at EOF but not the declared size
            raise zipfile.BadZipFile(f"size mismatch for {info.orig_filename!r}")
    except _READ_ERRORS as exc:
        raise InvalidParameterValueException(CORRUPT) from exc


def _show(info: zipfile.ZipInfo) -> str:
    return repr(info.orig_filename[:200])


def _bad_name(info: zipfile.ZipInfo, why: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Uploaded zip entry {_show(info)} {why}")
