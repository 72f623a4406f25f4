"""Resolving a function's Layers (Lambda's rules and texts) and brazier's semver ranges."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from brazier.control.layers import AddLayerVersionPermission, LayerService, PublishLayerVersion
from brazier.model.errors import AccessDeniedException, InvalidParameterValueException
from brazier.model.identity import Caller
from brazier.model.semver import parse_range, parse_version, semver_from_description

ME = Caller("111111111111", "us-east-1")
OTHER = Caller("222222222222", "us-east-1")
ZIP = io.BytesIO()
with zipfile.ZipFile(ZIP, "w") as _zf:
    _zf.writestr("python/m.py", "")


def arn(name: str, sel: object, account: str = ME.account) -> str:
    return f"arn:aws:lambda:us-east-1:{account}:layer:{name}:{sel}"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[LayerService]:
    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    from brazier.store.blobs import BlobStore
    from brazier.store.layers import SqliteLayerStore

    yield LayerService(SqliteLayerStore(db), BlobStore(tmp_path / "code"), code_url=str)
    db.close()


def pub(svc: LayerService, name: str, desc: str = "", runtimes: tuple[str, ...] | None = None,
        caller: Caller = ME) -> int:  # fmt: skip
    cmd = PublishLayerVersion(name, ZIP.getvalue(), description=desc, compatible_runtimes=runtimes)
    return asyncio.run(svc.publish(caller, cmd)).version


def resolve(
    svc: LayerService, *refs: str, runtime: str = "python3.12", caller: Caller = ME
) -> list[int]:
    return [r.layer.version for r in asyncio.run(svc.resolve_for_function(caller, refs, runtime))]


def refused(svc: LayerService, *refs: str, caller: Caller = ME) -> str:
    with pytest.raises(InvalidParameterValueException) as exc:
        resolve(svc, *refs, caller=caller)
    return exc.value.message


def test_numeric_references_and_lambda_rules(svc: LayerService) -> None:
    for _ in range(3):
        pub(svc, "a")
    pub(svc, "b")
    assert resolve(svc, arn("a", 2), arn("b", 1)) == [2, 1]
    assert (
        refused(svc, *[arn(f"x{i}", 1) for i in range(6)]) == "Cannot reference more than 5 layers."
    )
    assert refused(svc, "arn:aws:lambda:eu-west-1:111111111111:layer:a:1") == (
        "Layers are not in the same region as the function. Layers are expected to be in region"
        " us-east-1."
    )
    for second in (arn("a", 2), arn("a", 1), arn("a", "^1")):
        assert refused(svc, arn("a", 1), arn("b", 1), second) == (
            "Two different versions of the same layer are not allowed to be referenced in the"
            f" same function. {arn('a', 1)} and {second} are versions of the same layer."
        )
    assert refused(svc, arn("doesnotexist", 1)) == (
        f"Layer version {arn('doesnotexist', 1)} does not exist."
    )
    assert refused(svc, arn("a", 9)) == f"Layer version {arn('a', 9)} does not exist."


def test_semver_ranges_pick_the_highest_compatible(svc: LayerService) -> None:
    pub(svc, "s", "semver:1.4.2")  # 1
    pub(svc, "s", "semver:1.4.9 fixes")  # 2
    pub(svc, "s", "semver:1.6.0", ("nodejs20.x",))  # 3: not for python
    pub(svc, "s", "semver:1.7.0-rc.1")  # 4: pre-release
    pub(svc, "s", "semver:2.0.0")  # 5
    pub(svc, "s", "no semver")  # 6
    assert resolve(svc, arn("s", "^1.4")) == [2]
    assert resolve(svc, arn("s", "^1.4"), runtime="nodejs20.x") == [3]
    assert resolve(svc, arn("s", "~1.4.2")) == [2]
    assert resolve(svc, arn("s", "1.x")) == [2]
    assert resolve(svc, arn("s", "=1.4.2")) == [1]
    assert resolve(svc, arn("s", "1.7.0-rc.1")) == [4]
    assert resolve(svc, arn("s", "x")) == [5]
    assert resolve(svc, arn("s", 6)) == [6]  # numbers ignore the runtime and the semver
    assert refused(svc, arn("s", "^3")) == f"Layer version {arn('s', '^3')} does not exist."
    assert "Invalid semantic version range" in refused(svc, arn("s", "^1.x.2"))
    asyncio.run(svc.delete(ME, "s", 2))
    assert resolve(svc, arn("s", "^1.4")) == [1]  # deleted versions are not candidates


def test_duplicate_semver_refused_until_deleted(svc: LayerService) -> None:
    pub(svc, "d", "semver:1.0.0")
    with pytest.raises(Exception, match=r"already has semantic version 1\.0\.0 in version 1"):
        pub(svc, "d", "semver:1.0.0")
    asyncio.run(svc.delete(ME, "d", 1))
    assert pub(svc, "d", "semver:1.0.0") == 2  # the refused publish took no number


def test_other_accounts_need_a_grant(svc: LayerService) -> None:
    pub(svc, "shared", caller=OTHER)
    ref = arn("shared", 1, OTHER.account)
    assert refused(svc, ref) == f"Layer version {ref} does not exist."
    with pytest.raises(AccessDeniedException):
        asyncio.run(svc.get_by_arn(ME, ref))
    grant = AddLayerVersionPermission("shared", 1, "me", "lambda:GetLayerVersion", ME.account)
    asyncio.run(svc.add_permission(OTHER, grant))
    assert resolve(svc, ref) == [1]
    assert asyncio.run(svc.get_by_arn(ME, ref)).account == OTHER.account


def test_pinned_survives_deletion(svc: LayerService) -> None:
    pub(svc, "p")
    asyncio.run(svc.delete(ME, "p", 1))
    (r,) = asyncio.run(svc.pinned([arn("p", 1)]))
    assert r.arn == arn("p", 1) and r.code_size == len(ZIP.getvalue())
    assert svc.merged_tree([r]).is_dir()
    with pytest.raises(InvalidParameterValueException):
        asyncio.run(svc.pinned([arn("p", 2)]))


@pytest.mark.parametrize(
    ("rng", "yes", "no"),
    [
        ("^1.4", ["1.4.0", "1.9.9"], ["1.3.9", "2.0.0", "1.5.0-rc.1"]),
        ("^0.4.2", ["0.4.2", "0.4.9"], ["0.5.0", "0.4.1"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("~1.4.2", ["1.4.2", "1.4.7"], ["1.5.0", "1.4.1"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("1.x", ["1.0.0", "1.99.1"], ["0.9.0", "2.0.0"]),
        ("1.4.x", ["1.4.0"], ["1.5.0"]),
        ("*", ["0.0.1", "9.0.0"], ["1.0.0-alpha"]),
        ("=1.4.2", ["1.4.2", "1.4.2+build"], ["1.4.3"]),
        ("1.0.0-rc.2", ["1.0.0-rc.2"], ["1.0.0-rc.10", "1.0.0"]),
    ],
)
def test_range_semantics(rng: str, yes: list[str], no: list[str]) -> None:
    r = parse_range(rng)
    assert all(r.matches(parse_version(v)) for v in yes)
    assert not any(r.matches(parse_version(v)) for v in no)


def test_version_order_and_description() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0", "1.0.1"]
    assert sorted(order, key=lambda v: parse_version(v).key()) == order
    assert str(semver_from_description("semver:1.4.2 numpy for 3.12")) == "1.4.2"
    assert semver_from_description("numpy semver:1.4.2") is None
    for bad in ("semver:", "semver:1.4", "semver:01.2.3"):
        with pytest.raises(ValueError):
            semver_from_description(bad)
    for bad in ("^", "1.x.2", "^1.0.0-rc", "x.1", "~1.2.3.4"):
        with pytest.raises(ValueError):
            parse_range(bad)
