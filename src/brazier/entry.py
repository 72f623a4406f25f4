"""The ``brazier`` command: the server and operator commands here, HTTP client commands in cli/."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from brazier import __version__
from brazier.cli.main import client_commands
from brazier.model.logs import DEFAULT_RETENTION_DAYS
from brazier.model.settings import Settings
from brazier.runtimes_admin import runtimes
from brazier.sandbox.cgroup_delegation import DelegationError, delegate
from brazier.sandbox.cgroup_mode import CgroupMode, detect


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Brazier: a self-hosted AWS Lambda."""


@main.command()
def version() -> None:
    """Print brazier's version."""
    click.echo(f"brazier {__version__}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9000, show_default=True, type=int)
@click.option("--data-dir", default="./.brazier", show_default=True, type=click.Path())
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))  # fmt: skip
@click.option("--auth", type=click.Choice(["sigv4", "none"]), default=None,
              help="Default: sigv4 on a non-loopback address, none on loopback.")  # fmt: skip
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--account-id", default="000000000000", show_default=True)
@click.option("--account-concurrency", default=1000, show_default=True, type=int,
              help="Concurrent executions per account before Invoke answers 429.")  # fmt: skip
@click.option("--idle-ttl", default=600.0, show_default=True, type=float,
              help="Seconds an idle environment is kept before it is reaped.")  # fmt: skip
@click.option("--log-retention-days", default=DEFAULT_RETENTION_DAYS, show_default=True,
              type=click.IntRange(min=0),
              help="Days function log events are kept (0: forever); swept hourly.")  # fmt: skip
@click.option("--prewarm-runtimes", default="all", show_default=True,
              help="Runtimes ready at start: all, none, or a comma list.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate (chain) to serve HTTPS; needs --tls-key.")  # fmt: skip
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM private key of --tls-cert.")  # fmt: skip
@click.option("--read-timeout", default=None, type=click.FloatRange(min=0.1),
              help="Seconds a client may take to send a request's head, or to send more of its"
                   " body (default 10).")  # fmt: skip
def server(
    host: str,
    port: int,
    data_dir: str,
    log_level: str,
    auth: str | None,
    region: str,
    account_id: str,
    account_concurrency: int,
    idle_ttl: float,
    log_retention_days: int,
    prewarm_runtimes: str,
    tls_cert: str | None,
    tls_key: str | None,
    read_timeout: float | None,
) -> None:
    """Run the brazier server (the Lambda API) until SIGTERM or SIGINT."""
    import uvicorn

    from brazier.api import limits
    from brazier.api.connections import ConnectionLimits, protocol_class
    from brazier.app import build_app

    try:
        settings = Settings(
            data_dir=Path(data_dir).resolve(),
            host=host,
            port=port,
            auth=auth,  # type: ignore[arg-type]
            region=region,
            account_id=account_id,
            log_level=log_level,
            account_concurrency=account_concurrency,
            idle_ttl_seconds=idle_ttl,
            log_retention_days=log_retention_days,
            prewarm_runtimes=(
                None
                if prewarm_runtimes == "all"
                else tuple(r for r in prewarm_runtimes.split(",") if r and r != "none")
            ),
            tls_cert=Path(tls_cert).resolve() if tls_cert else None,
            tls_key=Path(tls_key).resolve() if tls_key else None,
        )
        _check_tls(settings.tls_cert, settings.tls_key)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _prepare_cgroups()
    if settings.plaintext_off_loopback:
        logging.getLogger("brazier").warning(
            "serving plain HTTP on %s: signed requests can be read and replayed within their"
            " 5 minutes (with unsigned X-Amz-* headers added); use --tls-cert/--tls-key",
            host,
        )
    _presize_fd_table(_raise_open_files_limit(account_concurrency))
    connections = ConnectionLimits(
        head_timeout=read_timeout or limits.HEADER_TIMEOUT,
        body_timeout=read_timeout or limits.BODY_IDLE_TIMEOUT,
        body_rate_grace=read_timeout or limits.BODY_RATE_GRACE,
        max_connections=_connection_cap(account_concurrency),
    )
    config = uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_class(connections),
        timeout_keep_alive=limits.KEEP_ALIVE_TIMEOUT,
        log_level=log_level,
        access_log=log_level == "debug",
        lifespan="on",
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # that was installed before it started. Make that handler a plain exit, so a clean shutdown
    # exits 0 (what service managers expect) rather than dying of the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.Server(config).run()


def _check_tls(cert: Path | None, key: Path | None) -> None:
    """Load the pair once up front, so a bad file is a usage error rather than a traceback."""
    if cert is None or key is None:
        return
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}") from exc


def _raise_open_files_limit(environments: int) -> int:
    """Soft limit up to the hard one. Each environment holds ~11 descriptors in the server (its
    Runtime API listener and connection, its output pipe, its /tmp, the kernel files it keeps
    open): the usual soft limit of 1,024 would stop a server at ~90 environments. (Sandboxes set
    their own limit, 1,024, as Lambda's.) Warns when even the hard limit is too low for
    ``environments`` (the account concurrency). Returns the descriptors to plan for: enough for
    ``environments``, within the limit."""
    import resource

    from brazier.sandbox import environment_capacity, files_for_environments

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if hard == resource.RLIM_INFINITY:  # the kernel caps it at fs.nr_open
        try:
            want = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            want = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (OSError, ValueError):
            logging.getLogger(__name__).warning(
                "cannot raise the open files limit from %d: environments may run out", soft
            )
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    planned = files_for_environments(environments)
    if soft != resource.RLIM_INFINITY and soft < planned:
        logging.getLogger(__name__).warning(
            "the open files limit (%d) allows about %d environments, fewer than the account"
            " concurrency (%d): raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
            soft, environment_capacity(soft), environments,
        )  # fmt: skip
    return planned if soft == resource.RLIM_INFINITY else min(soft, planned)


def _connection_cap(account_concurrency: int) -> int:
    """Client connections open at once: the descriptors environments may not take (a quarter of
    the open files limit), and never fewer than the account concurrency plus room for
    control-plane calls. Past it, new connections are closed at once (api/connections.py)."""
    import resource

    from brazier.api import limits
    from brazier.sandbox import connection_capacity

    floor = account_concurrency + limits.MAX_CONNECTIONS_EXTRA
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return max(floor, connection_capacity(1 << 20))
    return max(floor, connection_capacity(soft))


def _presize_fd_table(descriptors: int) -> None:
    """Grow the process's descriptor table now to hold ``descriptors``, while the server has a
    single thread. The kernel grows it by doubling as environments open descriptors, and in a
    process with more than one thread every growth waits for an RCU grace period (10-20 ms
    here, ftrace: expand_files -> synchronize_rcu) inside whatever call opened the descriptor,
    with the event loop stopped: one cold start in a run of them took that much longer at each
    doubling. The table is ~8 bytes per slot (128 KiB for the default account concurrency)."""
    import fcntl

    if descriptors <= 64:
        return
    try:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        # The lowest free descriptor from ``descriptors - 1`` up: makes the table that large
        # without touching any descriptor in use; closed at once, the table stays.
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, descriptors - 1)
        os.close(high)
    except OSError:
        pass  # past the limit: the table grows as it used to
    finally:
        os.close(fd)


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


@main.group()
def keys() -> None:
    """Manage the access keys the server accepts (in the data dir)."""


def _creds(data_dir: str):  # type: ignore[no-untyped-def]
    from brazier.app import credentials_for

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return credentials_for(Path(data_dir))


_data_dir_opt = click.option("--data-dir", default="./.brazier", show_default=True)


@keys.command("create")
@_data_dir_opt
@click.option("--account-id", default="000000000000", show_default=True)
@click.option("--description", default="")
def keys_create(data_dir: str, account_id: str, description: str) -> None:
    """Create an access key; prints it as JSON (the secret is shown only here)."""
    rec = _creds(data_dir).create(account_id, description)
    click.echo(json.dumps({
        "AccessKeyId": rec.access_key_id,
        "SecretAccessKey": rec.secret_access_key,
        "AccountId": rec.account_id,
    }, indent=2))  # fmt: skip


@keys.command("list")
@_data_dir_opt
def keys_list(data_dir: str) -> None:
    """List access keys (without secrets)."""
    for rec in _creds(data_dir).list():
        click.echo(f"{rec.access_key_id}\t{rec.account_id}\t{rec.created}\t{rec.description}")


@keys.command("delete")
@_data_dir_opt
@click.argument("access_key_id")
def keys_delete(data_dir: str, access_key_id: str) -> None:
    """Delete an access key."""
    if not _creds(data_dir).delete(access_key_id):
        click.echo(f"no such key: {access_key_id}", err=True)
        sys.exit(1)


main.add_command(runtimes)
for _cmd in client_commands():
    main.add_command(_cmd)


def _prepare_cgroups() -> None:
    """Log the host's cgroup mode once; on v2 take the delegated subtree, or stop with the fix."""
    mode = detect()
    logging.getLogger("brazier").info("cgroup mode: %s", mode.value)
    if mode is CgroupMode.V2 and os.geteuid() == 0:
        try:
            delegate()
        except DelegationError as e:
            raise click.ClickException(str(e)) from None
