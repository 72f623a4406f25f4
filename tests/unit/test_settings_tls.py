"""TLS in the server settings: both files or neither, the scheme of the links handed out, and
when plain HTTP is worth a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from brazier.model.settings import Settings


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    for kw in ({"tls_cert": tmp_path / "c"}, {"tls_key": tmp_path / "k"}):
        with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
            Settings(data_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_base_url_scheme_follows_tls(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path, port=9443)
    assert plain.base_url == "http://127.0.0.1:9443"
    tls = Settings(data_dir=tmp_path, port=9443, tls_cert=tmp_path / "c", tls_key=tmp_path / "k")
    assert tls.base_url == "https://127.0.0.1:9443"


@pytest.mark.parametrize(
    ("host", "tls", "warn"),
    [("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False),
     ("0.0.0.0", False, True), ("10.1.2.3", False, True), ("0.0.0.0", True, False)],
)  # fmt: skip
def test_plain_http_off_loopback_is_flagged(
    tmp_path: Path, host: str, tls: bool, warn: bool
) -> None:
    files = {"tls_cert": tmp_path / "c", "tls_key": tmp_path / "k"} if tls else {}
    settings = Settings(data_dir=tmp_path, host=host, **files)  # type: ignore[arg-type]
    assert settings.plaintext_off_loopback is warn
