"""Content-addressed storage for code packages, and their extracted trees.

Layout under ``root``::

    sha256/ab/abcdef...   the zip, named by the sha256 of its bytes, mode 0444
    trees/abcdef.../      the extracted package (a cache: rebuilt from the blob on demand)
    .../.tmp-*            work in progress; removed by :meth:`BlobStore.sweep_temp` after a crash

Every file or tree appears by one ``rename`` after it is complete, so a reader never sees half of
one. Blobs are fsynced (file, then directory) before ``put`` returns; trees are not, because they
are derived data and fsyncing every file of a 250 MB package would cost seconds. After a power loss
a tree may be damaged: :meth:`BlobStore.delete_tree` and rebuild if in doubt.

Digests are validated (64 lowercase hex digits) before they touch a path, so a digest can never
name anything outside ``root``. Entries in ``root`` that do not look like ours are never deleted.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_HEX = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"


class BlobNotFoundError(LookupError):
    """No blob with that digest. Internal: metadata points at code that is gone."""


def _check(digest: str) -> str:
    if not isinstance(digest, str) or not _HEX.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return digest


def _tmp_name() -> str:
    return f"{_TMP}{os.getpid()}-{secrets.token_hex(8)}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Remove a file, symlink or directory tree; missing is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


class BlobStore:
    """Blobs by sha256 and their extracted trees. Safe for concurrent use by threads and processes
    sharing ``root``: every publish is a rename, and losing a race to an identical result is fine.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "sha256"
        self._trees = root / "trees"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._trees.mkdir(parents=True, exist_ok=True)

    # -- blobs ---------------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        _check(digest)
        return self._blobs / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256 hex digest. Idempotent.

        When the blob already exists only its mtime is refreshed, so a ``gc`` with a grace period
        does not remove a blob that someone has just put again.
        """
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.is_file():
            try:
                os.utime(final)
            except FileNotFoundError:
                pass  # deleted concurrently: fall through and write it again
            else:
                return digest
        shard = final.parent
        if not shard.is_dir():
            shard.mkdir(exist_ok=True)
            _fsync_dir(self._blobs)
        tmp = shard / _tmp_name()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            with open(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # A concurrent put of the same digest may have won: replacing it with identical bytes
            # is harmless, and rename is atomic either way.
            os.rename(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        _fsync_dir(shard)
        return digest

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading. Raises :class:`BlobNotFoundError`."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(digest) from exc

    def read(self, digest: str) -> bytes:
        """The blob's bytes. Raises :class:`BlobNotFoundError`."""
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        """Remove the blob and its tree. Idempotent."""
        _remove(self.path(digest))
        self.delete_tree(digest)

    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (temp files and foreign names skipped)."""
        for shard in self._blobs.iterdir():
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for p in shard.iterdir():
                if _HEX.fullmatch(p.name) and p.name[:2] == shard.name:
                    yield p.name

    # -- trees ---------------------------------------------------------------------------------

    def tree_path(self, digest: str) -> Path:
        """Where the extracted tree of ``digest`` lives (whether or not it exists)."""
        return self._trees / _check(digest)

    def ensure_tree(self, digest: str, extract: Callable[[Path], None]) -> Path:
        """Return the tree of ``digest``, calling ``extract(dest)`` to build it if missing.

        ``extract`` must create the directory ``dest`` (which does not exist yet) and fill it; for
        a zip that is ``lambda dest: extract_zip(data, dest)``. The result is published by one
        rename. Concurrent callers may both extract; the loser's rename fails against the
        winner's non-empty tree and its copy is removed. If ``extract`` raises, nothing remains.
        """
        final = self.tree_path(digest)
        if final.is_dir():
            return final
        staging = self._trees / _tmp_name()
        staging.mkdir(mode=0o700)
        try:
            built = staging / "tree"
            extract(built)
            self._share_files(built)
            try:
                os.rename(built, final)
            except OSError:
                if not final.is_dir():
                    raise  # not a lost race
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def _share_files(self, tree: Path) -> None:
        """Store identical files once across every unpacked package (functions and layers):
        each regular file becomes a hard link to ``files/<sha256>-<mode>`` (the mode is part of
        the key, so an executable and a plain copy of the same bytes never share an inode).
        Trees are read-only to sandboxes and never modified, so sharing inodes is safe."""
        files = self.root / "files"
        files.mkdir(exist_ok=True)
        for dirpath, _dirs, names in os.walk(tree):
            for name in names:
                path = Path(dirpath) / name
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode):
                    continue
                digest = hashlib.sha256()
                with path.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                shared = files / f"{digest.hexdigest()}-{stat.S_IMODE(st.st_mode):o}"
                _link_shared(path, shared)

    def delete_tree(self, digest: str) -> None:
        """Remove the extracted tree. Idempotent. The tree vanishes in one rename first, so a
        reader never sees a half-deleted tree as complete."""
        self._discard_tree(self.tree_path(digest))

    def _discard_tree(self, path: Path) -> None:
        doomed = self._trees / _tmp_name()
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    # -- housekeeping --------------------------------------------------------------------------

    def sweep_temp(self, *, min_age: float = 0.0) -> int:
        """Remove temp files and directories older than ``min_age`` seconds; return how many.

        Called at startup, with the default, when no other process uses ``root``. When several
        processes share ``root``, pass a ``min_age`` longer than any put or extraction takes.
        """
        cutoff = time.time() - min_age
        dirs = [self._trees, *(p for p in self._blobs.iterdir() if p.is_dir())]
        removed = 0
        for d in dirs:
            for p in d.iterdir():
                if p.name.startswith(_TMP) and _mtime(p) <= cutoff:
                    _remove(p)
                    removed += 1
        return removed

    def gc(
        self, keep: Set[str], *, keep_trees: Set[str] = frozenset(), min_age: float = 0.0
    ) -> GcResult:
        """Remove every blob and tree whose digest is not in ``keep`` (trees also survive when in
        ``keep_trees``: an environment still runs from them), then every shared file no tree
        links to any more. Returns what was removed.

        Items younger than ``min_age`` seconds survive, so a blob put (or put again) just before
        its metadata commits is not lost; otherwise the caller must include in-flight digests in
        ``keep``. An invalid digest in ``keep`` raises ``ValueError`` rather than risk deleting
        what it was meant to protect.
        """
        for d in (*keep, *keep_trees):
            _check(d)
        cutoff = time.time() - min_age
        blobs = trees = files = freed = 0
        for digest in list(self.digests()):
            p = self.path(digest)
            if digest not in keep and _mtime(p) <= cutoff:
                freed += _size(p)
                _remove(p)
                blobs += 1
        for p in list(self._trees.iterdir()):
            name = p.name
            unused = _HEX.fullmatch(name) and name not in keep and name not in keep_trees
            if unused and _mtime(p) <= cutoff:
                self._discard_tree(p)
                trees += 1
        shared = self.root / "files"
        if shared.is_dir():
            for entry in os.scandir(shared):
                # A shared file is linked from ``files/`` and from every tree holding it: a link
                # count of one means no tree (nor merged /opt directory) uses it any more.
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_mtime <= cutoff:
                    freed += st.st_size
                    _remove(Path(entry.path))
                    files += 1
        return GcResult(blobs=blobs, trees=trees, files=files, bytes_freed=freed)


@dataclass(frozen=True, slots=True)
class GcResult:
    """What one :meth:`BlobStore.gc` removed. ``bytes_freed`` counts blobs and shared files
    (tree entries are links to shared files)."""

    blobs: int
    trees: int
    files: int
    bytes_freed: int

    @property
    def removed(self) -> int:
        return self.blobs + self.trees + self.files


def _size(p: Path) -> int:
    try:
        return p.lstat().st_size
    except FileNotFoundError:
        return 0


def _link_shared(path: Path, shared: Path) -> None:
    """Make ``path`` a link to ``shared`` (or ``shared`` a link to ``path`` when it is the first
    copy). ``gc`` may remove an unused shared file at any moment: then try again."""
    for _ in range(8):
        try:
            os.link(path, shared)  # first copy: it becomes the shared one
            return
        except FileExistsError:
            pass
        tmp = path.with_name(f".{path.name}.{_tmp_name()}")
        try:
            os.link(shared, tmp)
        except FileNotFoundError:
            continue  # collected between the two links: this copy becomes the shared one
        os.replace(tmp, path)
        return
    # Still racing after several tries: keep the private copy (correct, only not shared).


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone already: never counted as old
