"""What a function sees at ``/opt``: its layers extracted and merged in order.

Lambda extracts each layer into ``/opt`` in the order the function lists them, so a later layer
overwrites the files of an earlier one. Brazier builds that directory once per ordered list of
layer digests and mounts it read-only:

* each layer zip is extracted once into its content-addressed tree (``BlobStore.ensure_tree``);
* the merged directory ``<blob root>/layers-merged/<key>`` (``key`` = sha256 of the ordered
  digests) holds **hard links** to the files of those trees, never copies: identical files are
  stored once, and building a merged tree of 250 MB costs only metadata;
* it is built in a temp directory beside it and published by one ``rename``, so a reader never
  sees half of one; a concurrent builder of the same key loses the rename and drops its copy.

Conflicts between layers are resolved as "the later entry wins": a later file or symlink replaces
an earlier file, symlink or whole directory at that path; a later directory replaces an earlier
file or symlink and merges into an earlier directory. Hard-linked files are shared with the layer
trees, which is safe because both are only ever mounted read-only and never written after build.

Everything here blocks on the filesystem: call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

MERGED_DIR = "layers-merged"


def merged_key(digests: Sequence[str]) -> str:
    """The content address of the merge of ``digests`` in this order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _clear(path: str) -> None:
    """Remove whatever is at ``path`` (file, symlink or directory tree); missing is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _overlay(src: str, dst: str) -> None:
    """Hard-link the tree ``src`` onto the directory ``dst``, the later entry winning."""
    with os.scandir(src) as entries:
        for entry in entries:
            target = os.path.join(dst, entry.name)
            if entry.is_dir(follow_symlinks=False):
                if not os.path.isdir(target) or os.path.islink(target):
                    _clear(target)
                    os.mkdir(target, 0o755)
                    os.chmod(target, 0o755)  # noqa: S103 - /opt is world-readable, like /var/task
                _overlay(entry.path, target)
            else:
                _clear(target)
                # follow_symlinks=False: link a symlink itself (linkat without AT_SYMLINK_FOLLOW).
                os.link(entry.path, target, follow_symlinks=False)


def merge_trees(trees: Sequence[Path], root: Path) -> Path:
    """Return the merged directory of ``trees`` (in order) under ``root/layers-merged``, building
    it if missing. ``trees`` are the per-layer trees, named by their digests. Idempotent; safe
    against concurrent builders of the same merge (threads or processes sharing ``root``)."""
    base = root / MERGED_DIR
    base.mkdir(exist_ok=True)
    final = base / merged_key([t.name for t in trees])
    if final.is_dir():
        return final
    tmp = base / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
    os.mkdir(tmp, 0o700)  # private while incomplete
    try:
        for tree in trees:
            _overlay(str(tree), str(tmp))
        os.chmod(tmp, 0o755)  # noqa: S103 - see above: mounted read-only, world-readable
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise  # not a lost race
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def tree_size(path: Path) -> int:
    """Bytes a tree holds as the function sees it: regular files' sizes plus symlinks' target
    lengths (what ``code_package`` counts for a zip). A hard-linked file counts at each path:
    the limit is on what the function gets, not on disk use."""
    total = 0
    todo = [str(path)]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
    return total
