"""The CLI's AWS setup comes from botocore's session, as ``aws``'s does (AWS_ENDPOINT_URL_LAMBDA,
AWS_ENDPOINT_URL, profiles in AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE), flags
winning; and ``brazier invoke``'s exit status: 0 done, 1 the function failed, 2 usage errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_support import Job, clean_env, run_brazier

from support import ServerProcess, create_key, free_port, lambda_client, make_zip, wait_active

pytestmark = pytest.mark.sandbox

ECHO = make_zip({
    "app.py": "def handler(event, context):\n"
              "    if event.get('fail'):\n"
              "        raise ValueError('asked to fail')\n"
              "    return {'got': event}\n",
})  # fmt: skip
DEAD = f"http://127.0.0.1:{free_port()}"  # nothing listens there


def _deploy(client: Any, name: str) -> None:
    client.create_function(
        FunctionName=name, Runtime="python3.12", Handler="app.handler", Code={"ZipFile": ECHO},
        Role="arn:aws:iam::111122223333:role/r",
    )  # fmt: skip
    wait_active(client, name)


@pytest.fixture(scope="module")
def echo(server: ServerProcess) -> str:
    name = "cli-setup-echo"
    _deploy(lambda_client(server.url), name)
    return name


def test_endpoint_from_aws_endpoint_url_lambda(server: ServerProcess, echo: str) -> None:
    out = run_brazier("invoke", echo, '{"a": 1}', env=clean_env(AWS_ENDPOINT_URL_LAMBDA=server.url))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"got": {"a": 1}}


def test_endpoint_from_aws_endpoint_url(server: ServerProcess, echo: str) -> None:
    out = run_brazier("invoke", echo, '{"b": 2}', env=clean_env(AWS_ENDPOINT_URL=server.url))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"got": {"b": 2}}
    # The service-specific variable wins over the global one, as in botocore.
    env = clean_env(AWS_ENDPOINT_URL=DEAD, AWS_ENDPOINT_URL_LAMBDA=server.url)
    assert run_brazier("invoke", echo, env=env).returncode == 0


def test_endpoint_flag_wins_over_the_environment(server: ServerProcess, echo: str) -> None:
    env = clean_env(AWS_ENDPOINT_URL_LAMBDA=DEAD)
    out = run_brazier("invoke", echo, "--endpoint-url", server.url, env=env)
    assert out.returncode == 0, out.stderr
    out = run_brazier("invoke", echo, env=env)
    assert out.returncode == 1
    assert DEAD in out.stderr and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Job, Path]]:
    where = tmp_path_factory.mktemp("sigv4")
    job = Job(("--data-dir", str(where / "d"), "--auth", "sigv4", "--prewarm-runtimes", "none"),
              clean_env(), where / "server.log").wait_healthy()  # fmt: skip
    yield job, where / "d"
    job.ctrl_c()
    job.wait()


def test_profile_gives_credentials_region_and_endpoint(
    signed_server: tuple[Job, Path], tmp_path: Path
) -> None:
    """A profile in AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, picked with AWS_PROFILE or
    --profile: the server (auth sigv4) accepts only the key of the profile that has it."""
    job, data_dir = signed_server
    key = create_key(data_dir)
    client = lambda_client(
        job.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"],
        region="eu-west-1",
    )  # fmt: skip
    _deploy(client, "profiled")
    config = tmp_path / "config"
    config.write_text(
        f"[profile dev]\nregion = eu-west-1\nendpoint_url = {job.url}\n"
        f"[profile other]\nregion = eu-west-1\nendpoint_url = {job.url}\n"
    )
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[dev]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
        "[other]\naws_access_key_id = AKIANOTAKEYOFTHIS000\naws_secret_access_key = nope\n"
    )
    base = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    out = run_brazier("invoke", "profiled", '{"p": 1}', env=clean_env(**base, AWS_PROFILE="dev"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"got": {"p": 1}}
    out = run_brazier("invoke", "profiled", "--profile", "dev", env=clean_env(**base))
    assert out.returncode == 0, out.stderr
    # The flag beats AWS_PROFILE; the other profile's key is refused.
    env = clean_env(**base, AWS_PROFILE="dev")
    out = run_brazier("invoke", "profiled", "--profile", "other", env=env)
    assert out.returncode == 1
    assert "UnrecognizedClientException" in out.stderr or "Signature" in out.stderr, out.stderr
    # The region signs too: us-east-1 is not where the function lives.
    out = run_brazier("invoke", "profiled", "--region", "us-east-1", env=env)
    assert out.returncode == 1
    assert "ResourceNotFoundException" in out.stderr, out.stderr


def test_invoke_exit_status(server: ServerProcess, echo: str) -> None:
    env = clean_env(AWS_ENDPOINT_URL_LAMBDA=server.url)
    ok = run_brazier("invoke", echo, "{}", env=env)
    assert ok.returncode == 0, ok.stderr
    failed = run_brazier("invoke", echo, '{"fail": true}', env=env)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)  # the function's error payload, printed
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail"
    missing = run_brazier("invoke", "no-such-function", env=env)
    assert missing.returncode == 1
    assert "ResourceNotFoundException" in missing.stderr
    for usage in (
        ("invoke",),  # no FUNCTION
        ("invoke", echo, "{not json"),
        ("invoke", echo, "--no-such-flag"),
        ("invoke", echo, "--profile", "no-such-profile"),
    ):
        out = run_brazier(*usage, env=env)
        assert out.returncode == 2, (usage, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
