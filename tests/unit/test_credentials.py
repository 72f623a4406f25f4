"""The operator's access keys in <data_dir>/credentials.json."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from brazier.store.credentials import CredentialStore, CredentialStoreError, KeyRecord

ACCOUNT = "123456789012"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "credentials.json"


def test_empty_when_the_file_does_not_exist(path: Path) -> None:
    store = CredentialStore(path)
    assert store.list() == []
    assert store.get("AKIAANYTHING0000000") is None
    assert not path.exists()


def test_create_makes_aws_shaped_keys(path: Path) -> None:
    store = CredentialStore(path)
    key = store.create(ACCOUNT, "ci runner")
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key.access_key_id)
    assert len(key.secret_access_key) == 40
    assert key.account_id == ACCOUNT
    assert key.description == "ci runner"
    assert key.created.endswith("+00:00")
    assert store.get(key.access_key_id) == key
    assert store.list() == [key]


def test_keys_are_distinct(path: Path) -> None:
    store = CredentialStore(path)
    keys = [store.create(ACCOUNT) for _ in range(20)]
    assert len({k.access_key_id for k in keys}) == 20
    assert len({k.secret_access_key for k in keys}) == 20
    assert {k.access_key_id for k in store.list()} == {k.access_key_id for k in keys}


def test_rejects_a_bad_account_id(path: Path) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        CredentialStore(path).create("12345")
    assert not path.exists()


def test_delete(path: Path) -> None:
    store = CredentialStore(path)
    a, b = store.create(ACCOUNT), store.create("000000000000")
    assert store.delete(a.access_key_id) is True
    assert store.delete(a.access_key_id) is False
    assert store.get(a.access_key_id) is None
    assert store.list() == [b]


def test_persists_across_instances(path: Path) -> None:
    key = CredentialStore(path).create(ACCOUNT, "persisted")
    again = CredentialStore(path)
    assert again.get(key.access_key_id) == key
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["keys"][0]["secret_access_key"] == key.secret_access_key


def test_file_is_private_and_replaced_atomically(path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        store = CredentialStore(path)
        store.create(ACCOUNT)
        first_inode = path.stat().st_ino
        store.create(ACCOUNT)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != first_inode  # a new file renamed over, never rewritten in place
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_sees_changes_made_by_another_instance(path: Path) -> None:
    reader, writer = CredentialStore(path), CredentialStore(path)
    assert reader.list() == []
    key = writer.create(ACCOUNT)
    assert reader.get(key.access_key_id) == key
    writer.delete(key.access_key_id)
    assert reader.get(key.access_key_id) is None


def test_sees_keys_created_by_another_process(path: Path) -> None:
    store = CredentialStore(path)
    existing = store.create(ACCOUNT)
    assert store.get(existing.access_key_id) == existing  # cache warmed
    script = (
        "import sys; from pathlib import Path;"
        "from brazier.store.credentials import CredentialStore;"
        "print(CredentialStore(Path(sys.argv[1])).create('111111111111').access_key_id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=True, capture_output=True, text=True
    )
    new_id = out.stdout.strip()
    found = store.get(new_id)
    assert isinstance(found, KeyRecord)
    assert found.account_id == "111111111111"
    assert store.get(existing.access_key_id) == existing


def test_get_is_served_from_memory_until_the_file_changes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CredentialStore(path)
    key = store.create(ACCOUNT)
    store.get(key.access_key_id)
    reads = 0
    real_read = CredentialStore._read

    def counting_read(self: CredentialStore) -> dict[str, KeyRecord]:
        nonlocal reads
        reads += self is store
        return real_read(self)

    monkeypatch.setattr(CredentialStore, "_read", counting_read)
    for _ in range(5):
        assert store.get(key.access_key_id) == key
    assert reads == 0
    CredentialStore(path).create(ACCOUNT)
    store.get(key.access_key_id)
    assert reads == 1


def test_a_corrupt_file_is_reported(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CredentialStoreError, match="not a brazier credentials file"):
        CredentialStore(path).get("AKIA")
