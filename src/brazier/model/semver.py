"""Semantic versions (semver.org 2.0.0) and npm-style ranges, for brazier's layer versions.

Beyond Lambda: a layer version may carry a semver (set through its Description, see
:func:`semver_from_description`) and a function may name a layer by a range instead of a number.
The grammar is the small, familiar subset of npm's, one comparator per range:

=========== =========================================================
``=1.4.2``  exactly 1.4.2 (a bare ``1.4.2`` means the same)
``^1.4.2``  >=1.4.2 <2.0.0 (``^0.4.2``: <0.5.0; ``^0.0.3``: <0.0.4)
``^1.4``    >=1.4.0 <2.0.0
``~1.4.2``  >=1.4.2 <1.5.0 (``~1.4`` the same as ``1.4.x``; ``~1`` as ``1.x``)
``1.x``     >=1.0.0 <2.0.0 (also ``1``, ``1.*``, ``1.4.x``, ``1.4``, and ``x``/``*`` for any)
=========== =========================================================

Pre-releases (``1.5.0-rc.1``) only match an exact range: a range never drifts onto a pre-release,
as in npm. Build metadata (``+abc``) is kept but ignored for ordering and equality. Ordering is
semver.org's precedence (numeric identifiers numerically, a pre-release below its release).

Everything here is pure and raises :class:`ValueError` on bad input; the services translate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"0|[1-9]\d*"
_VERSION = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_WILD = r"[xX*]"
_RANGE = re.compile(
    rf"(?P<op>[=^~]?)(?P<major>{_NUM}|{_WILD})"
    rf"(?:\.(?P<minor>{_NUM}|{_WILD}))?(?:\.(?P<patch>{_NUM}|{_WILD}))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
# What the wire accepts after ``:layer:NAME:`` besides a number (see api/wire.py). Looser than
# ``_RANGE`` on purpose: the service parses it and answers with a precise error.
RANGE_WIRE_PATTERN = r"[=^~]?[0-9xX*]+(\.[0-9xX*]+){0,2}(-[0-9A-Za-z.-]+)?"

DESCRIPTION_PREFIX = "semver:"


@dataclass(frozen=True, slots=True, order=False)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        out = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            out += "-" + ".".join(self.pre)
        return out + (f"+{self.build}" if self.build else "")

    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """A sort key with semver precedence (build metadata ignored)."""
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.pre)
        # A release sorts above every pre-release of the same triple.
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, pre)


def parse_version(text: str) -> SemVer:
    m = _VERSION.fullmatch(text)
    if m is None:
        raise ValueError(f"not a semantic version: {text!r}")
    pre = tuple(m.group("pre").split(".")) if m.group("pre") else ()
    if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre):
        raise ValueError(f"not a semantic version (leading zero): {text!r}")
    return SemVer(
        int(m.group("major")), int(m.group("minor")), int(m.group("patch")), pre,
        m.group("build") or "",
    )  # fmt: skip


def semver_from_description(description: str) -> SemVer | None:
    """The semver a Description declares: it starts with ``semver:X.Y.Z`` followed by the end or
    whitespace (``"semver:1.4.2 numpy 2.1 for py3.12"``). None when it does not start with
    ``semver:``; ``ValueError`` when it does but the version is not valid semver."""
    if not description.startswith(DESCRIPTION_PREFIX):
        return None
    token = description[len(DESCRIPTION_PREFIX) :].split(maxsplit=1)
    return parse_version(token[0] if token else "")


@dataclass(frozen=True, slots=True)
class Range:
    """``lo <= v < hi`` (``hi`` None: unbounded), or exactly ``exact``."""

    text: str
    lo: SemVer | None = None
    hi: SemVer | None = None
    exact: SemVer | None = None

    def matches(self, v: SemVer) -> bool:
        if self.exact is not None:
            return v.key() == self.exact.key()
        if v.pre:
            return False
        if self.lo is not None and v.key() < self.lo.key():
            return False
        return self.hi is None or v.key() < self.hi.key()

    def best(self, candidates: list[SemVer]) -> SemVer | None:
        """The highest matching version, or None."""
        found = [v for v in candidates if self.matches(v)]
        return max(found, key=SemVer.key) if found else None


def _num(part: str | None) -> int | None:
    return None if part is None or part in "xX*" else int(part)


def parse_range(text: str) -> Range:
    m = _RANGE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a semver range: {text!r}")
    op = m.group("op")
    major, minor, patch = _num(m.group("major")), _num(m.group("minor")), _num(m.group("patch"))
    if major is None and (minor is not None or patch is not None):
        raise ValueError(f"not a semver range: {text!r}")
    if minor is None and patch is not None:
        raise ValueError(f"not a semver range: {text!r}")
    if m.group("pre") is not None or (op in ("", "=") and patch is not None):
        if patch is None or op not in ("", "="):
            raise ValueError(f"a pre-release needs an exact version: {text!r}")
        return Range(text, exact=parse_version(text.lstrip("=")))
    if major is None:
        return Range(text)  # x, *: anything released
    lo = SemVer(major, minor or 0, patch or 0)
    if op == "^":
        if major > 0 or minor is None:
            hi = SemVer(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            hi = SemVer(0, minor + 1, 0)
        else:
            hi = SemVer(0, 0, (patch or 0) + 1)
        return Range(text, lo, hi)
    if op == "~" and minor is not None:
        return Range(text, lo, SemVer(major, minor + 1, 0))
    # 1, 1.x, ~1 (and =1, =1.4 read as x-ranges)
    if minor is None:
        return Range(text, lo, SemVer(major + 1, 0, 0))
    return Range(text, lo, SemVer(major, minor + 1, 0))
