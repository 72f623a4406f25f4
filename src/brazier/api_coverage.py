"""``brazier api-coverage``: which operations of the installed botocore Lambda model this
brazier serves (issue 15 item 7)."""

from __future__ import annotations

import json

import botocore.session
import click


def coverage() -> tuple[str, list[str], list[str]]:
    """(model version, operations served, operations not served), names sorted."""
    from brazier.api import lambda_api  # noqa: F401 - registers every operation handler
    from brazier.api.operations import HANDLERS

    model = botocore.session.get_session().get_service_model("lambda")
    served = set(HANDLERS)
    names = sorted(model.operation_names)
    return (
        str(model.api_version),
        [n for n in names if n in served],
        [n for n in names if n not in served],
    )


@click.command("api-coverage")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
def api_coverage(as_json: bool) -> None:
    """Print the Lambda operations brazier implements and those it does not."""
    version, served, missing = coverage()
    if as_json:
        doc = {"model": version, "implemented": served, "not_implemented": missing}
        click.echo(json.dumps(doc, indent=1))
        return
    total = len(served) + len(missing)
    click.echo(f"Lambda API model {version}: {len(served)} of {total} operations implemented")
    for name in served:
        click.echo(f"  + {name}")
    for name in missing:
        click.echo(f"  - {name}")
