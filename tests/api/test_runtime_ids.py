"""Runtime identifiers: Lambda's exact refusal of one outside its enum (item 7 of issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from support import HELLO_PY, wait_active

ROLE = "arn:aws:iam::000000000000:role/lambda-role"

# Recorded from AWS Lambda on 2026-12-01 (test_lambda_api.snapshot.json,
# test_create_lambda_exceptions: invalid_runtime_exc and uppercase_runtime_exc).
RECORDED_ENUM = (
    "[nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x,"
    " java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9,"
    " java17, nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2,"
    " java8.al2]"
)


def recorded(value: str) -> str:
    return (
        f"Value {value} at 'runtime' failed to satisfy constraint: Member must satisfy enum"
        f" value set: {RECORDED_ENUM} or be a valid ARN"
    )


def _create(client: Any, name: str, runtime: str) -> Any:
    return client.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": HELLO_PY},
    )


@pytest.mark.parametrize("runtime", ["non-existent-runtime", "PYTHON3.9"])
def test_create_with_an_invalid_runtime_answers_lambdas_text(
    client: Any, fname: str, runtime: str
) -> None:
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        _create(client, fname, runtime)
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Message"] == recorded(runtime)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=fname)


def test_update_configuration_with_an_invalid_runtime_answers_lambdas_text(
    client: Any, fname: str
) -> None:
    _create(client, fname, "python3.11")
    wait_active(client, fname)
    with pytest.raises(client.exceptions.InvalidParameterValueException) as exc:
        client.update_function_configuration(FunctionName=fname, Runtime="python3.99")
    assert exc.value.response["Error"]["Message"] == recorded("python3.99")
    assert client.get_function_configuration(FunctionName=fname)["Runtime"] == "python3.11"
