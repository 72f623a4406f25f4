"""Presigned links for ``GetFunction``'s ``Code.Location``, served by brazier itself.

Lambda hands out a presigned S3 URL valid for 10 minutes; brazier signs ``/_brazier/code/<sha>``
with an HMAC of the digest, the owner's ARN (a function version or a layer version) and the expiry
under a server secret kept in the data dir. The link serves the zip only while that owner still
has that code: deleting the function or version, or replacing its code, ends it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlencode

VALIDITY_SECONDS = 600


class CodeUrlSigner:
    def __init__(
        self, secret: bytes, base_url: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._base = base_url.rstrip("/")
        self._clock = clock

    def _mac(self, sha: str, owner: str, expires: int) -> str:
        message = f"{sha}\n{owner}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url_for(self, sha: str, owner: str) -> str:
        """A link to the zip ``sha`` of ``owner`` (a qualified function or layer version ARN)."""
        expires = int(self._clock()) + VALIDITY_SECONDS
        mac = self._mac(sha, owner, expires)
        query = urlencode({"Owner": owner, "Expires": expires, "Signature": mac})
        return f"{self._base}/_brazier/code/{sha}?{query}"

    def check(self, sha: str, owner: str, expires: str, signature: str) -> bool:
        """True when the link was signed here and has not expired."""
        try:
            when = int(expires)
        except ValueError:
            return False
        if when < self._clock():
            return False
        # As bytes: compare_digest refuses a str with non-ASCII characters (TypeError).
        given = signature.encode("utf-8", "replace")
        return hmac.compare_digest(self._mac(sha, owner, when).encode(), given)
