"""The ``brazier`` command: the server and operator commands here, HTTP client commands in cli/."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from brazier import __version__, config
from brazier.api_coverage import api_coverage
from brazier.cli.main import client_commands
from brazier.doctor import doctor_command
from brazier.model.settings import Settings
from brazier.runtimes_admin import runtimes

if TYPE_CHECKING:
    from brazier.serve import ServeOptions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="brazier",
                      message="%(prog)s %(version)s")  # fmt: skip
def main() -> None:
    """Brazier: a self-hosted AWS Lambda."""


def _network_settings(egress: str, allow_host_ports: tuple[int, ...]) -> dict[str, Any]:
    """Settings fields of the egress options (decision 0025)."""
    return {
        "egress": None if egress == "off" else egress,
        "allow_host_ports": tuple(allow_host_ports),
    }


@main.command()
def version() -> None:
    """Print brazier's version."""
    click.echo(f"brazier {__version__}")


@main.command()
@config.click_options(config.SERVER_OPTIONS)
def server(config_file: str | None, **flags: object) -> None:
    """Run the brazier server (the Lambda API) until SIGTERM or SIGINT.

    Every option is also read from BRAZIER_<OPTION> (BRAZIER_PORT, BRAZIER_DATA_DIR...) and from
    the TOML file --config names (default /etc/brazier/brazier.toml when present); flags win over
    the environment, which wins over the file."""
    from brazier import serve

    try:
        values = config.load(config.SERVER_OPTIONS, flags, config_file)
    except config.ConfigError as exc:
        config.fail(exc)
    opts = _serve_options(values)
    logging.basicConfig(
        level=opts.settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if opts.settings.plaintext_off_loopback:
        logging.getLogger("brazier").warning(
            "serving plain HTTP on %s: signed requests can be read and replayed within their"
            " 5 minutes (with unsigned X-Amz-* headers added); use --tls-cert/--tls-key",
            opts.settings.host,
        )
    sys.exit(serve.run(opts))


def _serve_options(values: dict[str, Any]) -> ServeOptions:
    """The resolved option values as settings; a value Settings refuses is a usage error."""
    from brazier.serve import ServeOptions

    prewarm = values["prewarm_runtimes"]
    try:
        settings = Settings(
            data_dir=Path(values["data_dir"]).resolve(),
            host=values["host"],
            port=values["port"],
            auth=values["auth"],
            region=values["region"],
            account_id=values["account_id"],
            log_level=values["log_level"],
            account_concurrency=values["account_concurrency"],
            idle_ttl_seconds=values["idle_ttl"],
            log_retention_days=values["log_retention_days"],
            prewarm_runtimes=(
                None
                if prewarm == "all"
                else tuple(r for r in prewarm.split(",") if r and r != "none")
            ),
            tls_cert=Path(values["tls_cert"]).resolve() if values["tls_cert"] else None,
            tls_key=Path(values["tls_key"]).resolve() if values["tls_key"] else None,
            async_retry_delays=_delays(values["async_retry_delays"]),
            sqs_endpoint=values["sqs_endpoint"] or values["aws_endpoint"],
            **_network_settings(values["egress"], values["allow_host_port"]),
        )
        _check_tls(settings.tls_cert, settings.tls_key)
    except ValueError as exc:
        config.fail(config.ConfigError(str(exc)))
    return ServeOptions(settings, values["read_timeout"], values["shutdown_grace"])


def _delays(text: str) -> tuple[float, ...]:
    """``--async-retry-delays 60,120`` -> (60.0, 120.0); ValueError on anything else."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f"--async-retry-delays takes seconds separated by commas: {text!r}"
        ) from None


def _check_tls(cert: Path | None, key: Path | None) -> None:
    """Load the pair once up front, so a bad file is a usage error rather than a traceback."""
    if cert is None or key is None:
        return
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}") from exc


@main.group()
def keys() -> None:
    """Manage the access keys the server accepts (in the data dir)."""


def _creds(data_dir: str | None, config_file: str | None, *, create: bool = False) -> Any:
    """The key store of the data dir the server uses. Only ``keys create`` makes the folder: a
    mistyped --data-dir is an error, not a new empty key store."""
    from brazier.app import credentials_for

    try:
        where = config.data_dir(data_dir, config_file)
    except config.ConfigError as exc:
        config.fail(exc)
    if create:
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            click.echo(f"brazier: cannot create data dir {where}: {exc.strerror}", err=True)
            sys.exit(1)
    elif not where.is_dir():
        click.echo(
            f"brazier: no data dir at {where} (a server creates it when it starts);"
            " check --data-dir / BRAZIER_DATA_DIR",
            err=True,
        )
        sys.exit(1)
    return credentials_for(where)


def _data_dir_opt(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                     help=config.DATA_DIR.help_text())(f)  # fmt: skip
    return config.config_option(f)


@keys.command("create")
@_data_dir_opt
@click.option("--account-id", default="000000000000", show_default=True,
              help="The account the key signs as.")  # fmt: skip
@click.option("--description", default="", help="A note kept with the key.")
def keys_create(
    data_dir: str | None, config_file: str | None, account_id: str, description: str
) -> None:
    """Create an access key; prints it as JSON (the secret is shown only here)."""
    rec = _creds(data_dir, config_file, create=True).create(account_id, description)
    click.echo(json.dumps({
        "AccessKeyId": rec.access_key_id,
        "SecretAccessKey": rec.secret_access_key,
        "AccountId": rec.account_id,
    }, indent=2))  # fmt: skip


@keys.command("list")
@_data_dir_opt
def keys_list(data_dir: str | None, config_file: str | None) -> None:
    """List access keys (without secrets)."""
    for rec in _creds(data_dir, config_file).list():
        click.echo(f"{rec.access_key_id}\t{rec.account_id}\t{rec.created}\t{rec.description}")


@keys.command("delete")
@_data_dir_opt
@click.argument("access_key_id")
def keys_delete(data_dir: str | None, config_file: str | None, access_key_id: str) -> None:
    """Delete an access key."""
    if not _creds(data_dir, config_file).delete(access_key_id):
        click.echo(f"no such key: {access_key_id}", err=True)
        sys.exit(1)


main.add_command(runtimes)
main.add_command(doctor_command)
main.add_command(api_coverage)
for _cmd in client_commands():
    main.add_command(_cmd)
