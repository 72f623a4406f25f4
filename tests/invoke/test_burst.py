"""A burst of cold starts (issue 11, item 6): every answer is a 200 or Lambda's 429, never a 5xx,
and no zygote is taken for dead and replaced. Timings are ``make bench``'s (suite ``burst``)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from burstload import burst, zygotes_replaced

from .conftest import ROLE
from support import call, lambda_client, make_zip, running_server, wait_active

SLEEP_1S = make_zip(
    {"app.py": "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 1\n"}
)
LIMIT = 400
BURST = 2000


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_burst_of_cold_starts_gets_only_200s_and_429s(tmp_path: Path) -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < BURST + 512:
        pytest.skip(f"{BURST} connections need a hard open files limit above {BURST + 512}")
    with running_server(tmp_path / "data", args=("--account-concurrency", str(LIMIT))) as srv:
        client = lambda_client(srv.url)
        for name in ("burst", "after"):
            client.create_function(
                FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                Code={"ZipFile": SLEEP_1S}, MemorySize=128, Timeout=60,
            )  # fmt: skip
            wait_active(client, name)

        report = burst(srv.url, "burst", BURST, {})

        assert report.bad == 0, str(report.summary())
        assert report.statuses[200] >= 1, report.summary()
        assert set(report.reasons) <= {"ConcurrentInvocationLimitExceeded"}, report.summary()
        assert zygotes_replaced(srv.log) == 0
        # /health answered throughout (its latency is a figure of make bench, and
        # test_health_pacing.py checks the mechanism: a loaded host's figures vary too much).
        assert report.health_failures == 0 and len(report.health_ms) >= 10, report.summary()
        assert sorted(report.health_ms)[len(report.health_ms) // 2] < 100, report.summary()
        # The server still starts environments afterwards (its pools kept refilling).
        out, body = call(client, "after", {})
        assert "FunctionError" not in out and body == 1
    assert "Traceback" not in srv.log.read_text(errors="replace")


@pytest.mark.timeout(300)
def test_a_server_out_of_descriptors_throttles_instead_of_failing(tmp_path: Path) -> None:
    """A hard open files limit of 1,024 holds 64 environments: a burst of 250 (below the account
    concurrency) gets 429s for the rest, where it used to fail with EMFILE (500)."""
    with running_server(tmp_path / "data", open_files=(1024, 1024)) as srv:
        client = lambda_client(srv.url)
        client.create_function(
            FunctionName="fd", Runtime="python3.11", Role=ROLE, Handler="app.handler",
            Code={"ZipFile": SLEEP_1S}, MemorySize=128, Timeout=60,
        )  # fmt: skip
        wait_active(client, "fd")

        report = burst(srv.url, "fd", 250, {})

        assert report.bad == 0, str(report.summary())
        assert report.statuses[429] >= 1, str(report.summary())
        assert set(report.reasons) == {"ConcurrentInvocationLimitExceeded"}
        assert zygotes_replaced(srv.log) == 0
    assert "Traceback" not in srv.log.read_text(errors="replace")
