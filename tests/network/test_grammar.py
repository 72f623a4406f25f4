"""The brazier:egress grammar (model/egress.py) and the server's egress settings."""

from __future__ import annotations

import ipaddress

import pytest
from click.testing import CliRunner

from brazier.entry import main
from brazier.model.egress import (
    EGRESS_INTERNET,
    EGRESS_NONE,
    MAX_RULES,
    EgressRule,
    parse_egress,
)
from brazier.model.settings import Settings
from brazier.sandbox.network.config import SLOTS_PER_BLOCK, NetworkConfig, addresses


def test_keywords_and_rule_lists() -> None:
    assert parse_egress("internet") == EGRESS_INTERNET
    assert parse_egress(" none ") == EGRESS_NONE
    p = parse_egress("10.0.0.0/8:5432 203.0.113.7, 198.51.100.0/24:443")
    assert p.kind == "rules"
    assert set(p.rules) == {
        EgressRule(ipaddress.IPv4Network("10.0.0.0/8"), 5432),
        EgressRule(ipaddress.IPv4Network("203.0.113.7/32"), None),
        EgressRule(ipaddress.IPv4Network("198.51.100.0/24"), 443),
    }
    assert parse_egress(str(p)) == p  # round trip


@pytest.mark.parametrize(
    "bad",
    ["", " ", "all", "Internet", "10.0.0.1/8", "10.0.0.0/33", "1.2.3.4:0", "1.2.3.4:65536",
     "1.2.3.4:http", "::1", "2001:db8::/32", "1.2.3.4,,5.6.7.8", "1.2.3.4 1.2.3.4",
     "internet 1.2.3.4", ",1.2.3.4", " ".join(f"10.0.{i // 256}.{i % 256}" for i in range(MAX_RULES + 1))],
)  # fmt: skip
def test_bad_values_name_the_tag(bad: str) -> None:
    with pytest.raises(ValueError, match="brazier:egress"):
        parse_egress(bad)


def test_settings_and_network_config_refuse_bad_values(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="brazier:egress"):
        Settings(data_dir=tmp_path, egress="everywhere")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow-host-port"):
        Settings(data_dir=tmp_path, allow_host_ports=(0,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="/19 or larger"):
        NetworkConfig(range=ipaddress.IPv4Network("100.72.0.0/20"))
    blocks = NetworkConfig().blocks
    assert len(blocks) == 8
    assert SLOTS_PER_BLOCK == 2048
    assert addresses(blocks[1], 1) == ("100.72.32.5", "100.72.32.6")


def test_server_refuses_a_bad_egress_option() -> None:
    r = CliRunner().invoke(main, ["server", "--egress", "everywhere"])
    assert r.exit_code == 2
    assert "brazier:egress" in r.output
    r = CliRunner().invoke(main, ["server", "--allow-host-port", "70000"])
    assert r.exit_code == 2
