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
* **At most ``max_entries`` paths** (default 100,000, files and directories, implied parents
  included: they cost inodes too). Lambda documents no limit; ours bounds the parse itself
  (``zipfile`` builds an object per central record: ~0.5 KB and ~6 us each, so a 50 MB central
  directory of 1M empty records would cost 500 MB and seconds). A bound on the record count is
  checked on the raw bytes *before* :mod:`zipfile` parses anything. Validation is linear in the
  total length of the names (worst case, 100k names 128 levels deep: about 5 s).
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


class _Node:
    """A path in the package. A trie (not a set of path tuples) keeps time and memory linear in
    the length of the names: prefix tuples would be quadratic in the nesting depth."""

    __slots__ = ("children", "explicit", "kind", "target")

    def __init__(self, kind: _Kind, *, explicit: bool) -> None:
        self.kind: _Kind = kind
        self.explicit = explicit  # named by an entry, not only implied by a deeper name
        self.children: dict[str, _Node] = {}
        self.target = ""  # symlinks only


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: _Parts
    kind: _Kind
    executable: bool
    node: _Node


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
        entries, root = _plan(infos, max_entries)
        total = 0

        def count(n: int) -> None:
            nonlocal total
            total += n
            if total > max_unzipped:
                raise InvalidParameterValueException(
                    f"Unzipped size must be smaller than {max_unzipped} bytes"
                )

        links = [e for e in entries if e.kind == "link"]
        for e in links:
            e.node.target = _read_link(zf, e, count)
        for e in links:
            _check_link(e, root)

        if dest is None:
            for e in entries:
                if e.kind != "link":
                    _stream(zf, e.info, None, count)
        else:
            _write(zf, dest, entries, root, count=count)

    digest = hashlib.sha256(data).digest()
    bootstrap = root.children.get("bootstrap")
    return PackageInfo(
        sha256_b64=base64.b64encode(digest).decode("ascii"),
        sha256_hex=digest.hex(),
        size=len(data),
        unzipped_size=total,
        entries=len(infos),
        has_bootstrap=bootstrap is not None and bootstrap.kind != "dir",
    )


def _too_many(limit: int) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"Uploaded zip must contain at most {limit} entries (files and directories, implied or not)"
    )


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


def _plan(infos: list[zipfile.ZipInfo], max_entries: int) -> tuple[list[_Entry], _Node]:
    """Validate names and types from the central directory; return the entries and the tree."""
    entries: list[_Entry] = []
    root = _Node("dir", explicit=True)
    nodes = 0
    last_dir: _Parts = ()
    last_node = root
    for info in infos:
        name = _member_name(info)
        kind, executable = _kind(info, name)
        parts = _normalise(name, info)
        if not parts:
            if kind == "dir":
                continue  # "./" names the root itself: nothing to create
            raise _bad_name(info, "names the package root")
        if parts[:-1] == last_dir:  # zips list a directory's files together
            node = last_node
        else:
            node = root
            for comp in parts[:-1]:
                child = node.children.get(comp)
                if child is None:
                    child = node.children[comp] = _Node("dir", explicit=False)
                    nodes += 1
                elif child.kind != "dir":
                    raise _bad_name(info, "lies below a file or symlink")
                node = child
            last_dir, last_node = parts[:-1], node
        last = node.children.get(parts[-1])
        if last is None:
            last = node.children[parts[-1]] = _Node(kind, explicit=True)
            nodes += 1
        elif last.explicit:
            if kind == "dir" and last.kind == "dir":
                continue  # a repeated directory entry overwrites nothing
            raise _bad_name(info, "is a duplicate")
        elif kind != "dir":
            raise _bad_name(info, "collides with a directory")
        else:
            last.explicit = True
        if nodes > max_entries:  # implied directories cost inodes too
            raise _too_many(max_entries)
        entries.append(_Entry(info, parts, kind, executable, last))
    return entries, root


def _member_name(info: zipfile.ZipInfo) -> str:
    """Refuse members we cannot read safely; return the name as a Linux unzip would write it
    (the raw bytes when the UTF-8 flag is missing)."""
    if info.flag_bits & 0x1:
        raise InvalidParameterValueException("Uploaded zip must not contain encrypted entries")
    if info.compress_type not in _ALLOWED_METHODS:
        raise InvalidParameterValueException(
            f"Uploaded zip entry {_show(info)} uses an unsupported compression method "
            f"({info.compress_type}); only stored and deflated entries are supported"
        )
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
    parts = tuple([p for p in name.split("/") if p and p != "."])
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
    # A UTF-8 character is at most 4 bytes: only long components need encoding to be measured.
    if (
        parts
        and max(map(len, parts)) > 63
        and max(len(os.fsencode(p)) for p in parts) > _MAX_COMPONENT_BYTES
    ):
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


def _check_link(link: _Entry, root: _Node) -> None:
    """Reject a link unless its target resolves inside the root, following the package's links.

    The walk keeps a stack of tree nodes; ``None`` stands for a path the package does not hold
    (or a file), through which the walk continues lexically, which is the conservative choice.
    """
    hops = 0

    def fail(why: str) -> InvalidParameterValueException:
        return InvalidParameterValueException(f"Uploaded zip entry {_show(link.info)} {why}")

    def resolve(base: list[_Node | None], path: str) -> list[_Node | None]:
        nonlocal hops
        cur = list(base)
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not cur:
                    raise fail("is a symlink escaping the package")
                cur.pop()
                continue
            parent = cur[-1] if cur else root
            child = parent.children.get(comp) if parent is not None else None
            if child is not None and child.kind == "link":
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise fail("is part of a symlink loop")
                cur = resolve(cur, child.target)
            else:
                cur.append(child if child is not None and child.kind == "dir" else None)
        return cur

    start: list[_Node | None] = []
    node = root
    for comp in link.parts[:-1]:
        node = node.children[comp]
        start.append(node)
    resolve(start, link.node.target)


def _write(
    zf: zipfile.ZipFile,
    dest: Path,
    entries: list[_Entry],
    root: _Node,
    *,
    count: Callable[[int], None],
) -> None:
    todo = [(str(dest), root)]
    while todo:  # parents before children
        path, node = todo.pop()
        for name, child in node.children.items():
            if child.kind == "dir":
                p = os.path.join(path, name)
                os.mkdir(p, _DIR_MODE)
                os.chmod(p, _DIR_MODE)  # mkdir's mode was masked by the umask
                todo.append((p, child))
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
    for e in entries:
        if e.kind == "link":
            os.symlink(e.node.target, dest.joinpath(*e.parts))


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
