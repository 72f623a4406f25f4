"""Server configuration from four places, one table of options: flags > env > file > defaults.

Every option of ``brazier server`` is defined once, in ``SERVER_OPTIONS``. From that one entry it
gets its flag (``--data-dir``), its environment variable (``BRAZIER_DATA_DIR``), its key in the
TOML file (``data_dir``, or ``data-dir``) and its help text. The file is ``--config PATH``, else
``$BRAZIER_CONFIG``, else ``/etc/brazier/brazier.toml`` when it exists. A key the table does not
know, or a value of the wrong type, is a ``ConfigError`` naming the key and where it came from.

The data dir default depends on who runs brazier: ``/var/lib/brazier`` for root (the systemd
unit's ``StateDirectory``), ``$XDG_DATA_HOME/brazier`` (``~/.local/share/brazier``) otherwise;
``keys`` and ``runtimes`` resolve it the same way, so they find the server's data.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from brazier.model.logs import DEFAULT_RETENTION_DAYS

ENV_PREFIX = "BRAZIER_"
CONFIG_ENV = "BRAZIER_CONFIG"
SYSTEM_CONFIG = Path("/etc/brazier/brazier.toml")
SYSTEM_DATA_DIR = Path("/var/lib/brazier")
DEFAULT_SHUTDOWN_GRACE = 10.0


class ConfigError(Exception):
    """A value brazier cannot use; the message names the option and where it came from."""


def default_data_dir(env: Mapping[str, str], euid: int) -> Path:
    """``/var/lib/brazier`` for root, ``$XDG_DATA_HOME/brazier`` for anyone else."""
    if euid == 0:
        return SYSTEM_DATA_DIR
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        return Path(xdg) / "brazier"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share" / "brazier"


def _data_dir_default() -> str:
    return str(default_data_dir(os.environ, os.geteuid()))


@dataclass(frozen=True, slots=True)
class Option:
    """One configurable value: its flag, env var and file key all derive from ``name``."""

    name: str  # the Python name: data_dir
    type: click.ParamType[Any]
    default: object  # a value, None (unset), or a callable giving the value
    help: str
    shown_default: str | None = None  # for help text, when ``default`` is a callable
    multiple: bool = False  # a repeatable flag; its type gives a tuple, the values are joined

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def default_value(self) -> object:
        return self.default() if callable(self.default) else self.default

    def help_text(self) -> str:
        shown = self.shown_default or (None if self.default is None else str(self.default))
        default = f"; default {shown}" if shown else ""
        return f"{self.help} [env {self.env}{default}]"


_PATH = click.Path(dir_okay=False, exists=True)


class PortList(click.ParamType):  # type: ignore[type-arg]
    """``5432`` or ``5432,6379``: TCP ports, as a tuple."""

    name = "port[,port...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        ports: list[int] = []
        for given in str(value).split(","):
            part = given.strip()
            if not part.isdigit() or not 0 < int(part) < 65536:
                self.fail(f"{part!r} is not a TCP port (1-65535)", param, ctx)
            ports.append(int(part))
        return tuple(ports)


PORT_LIST = PortList()

DATA_DIR = Option(
    "data_dir",
    click.Path(file_okay=False),
    _data_dir_default,
    "Where brazier keeps functions, code, logs and keys.",
    shown_default="/var/lib/brazier for root, else $XDG_DATA_HOME/brazier",
)

SERVER_OPTIONS: tuple[Option, ...] = (
    Option("host", click.STRING, "127.0.0.1", "Address to listen on."),
    Option("port", click.IntRange(1, 65535), 9000, "TCP port to listen on."),
    DATA_DIR,
    Option("log_level", click.Choice(["debug", "info", "warning", "error"]), "info",
           "How much the server logs."),
    Option("auth", click.Choice(["sigv4", "none"]), None,
           "Request authentication.", shown_default="sigv4 off loopback, none on loopback"),
    Option("region", click.STRING, "us-east-1", "The region the server answers as."),
    Option("account_id", click.STRING, "000000000000",
           "The account of unsigned requests (auth none)."),
    Option("account_concurrency", click.IntRange(min=1), 1000,
           "Concurrent executions per account before Invoke answers 429."),
    Option("idle_ttl", click.FloatRange(min=0, min_open=True), 600.0,
           "Seconds an idle environment is kept before it is reaped."),
    Option("log_retention_days", click.IntRange(min=0), DEFAULT_RETENTION_DAYS,
           "Days function log events are kept (0: forever); swept hourly."),
    Option("prewarm_runtimes", click.STRING, "all",
           "Runtimes ready at start: all, none, or a comma list."),
    Option("tls_cert", _PATH, None, "PEM certificate (chain) to serve HTTPS; needs --tls-key."),
    Option("tls_key", _PATH, None, "PEM private key of --tls-cert."),
    Option("read_timeout", click.FloatRange(min=0.1), None,
           "Seconds a client may take to send a request's head, or more of its body.",
           shown_default="10"),
    # Async invocations (decision 0026).
    Option("async_retry_delays", click.STRING, "60,120",
           "Seconds before a failed Event invoke's 2nd and 3rd attempts."),
    Option("aws_endpoint", click.STRING, None,
           "URL of an AWS-compatible server for every AWS service brazier calls."),
    Option("sqs_endpoint", click.STRING, None,
           "URL of the SQS-compatible server for destinations and DLQs.",
           shown_default="--aws-endpoint"),
    # Functions' network (decision 0025).
    Option("egress", click.STRING, "internet",
           "Default network policy of functions: internet, none, or a comma list of"
           " CIDR[:port]; off gives environments loopback only."),
    Option("allow_host_port", PORT_LIST, (),
           "TCP ports of this host's loopback that functions may reach at"
           " host.brazier.internal (repeatable, or a comma list).", shown_default="none",
           multiple=True),
    Option("shutdown_grace", click.FloatRange(min=0), DEFAULT_SHUTDOWN_GRACE,
           "Seconds in-flight invocations get to finish on SIGTERM/SIGINT before they are"
           " ended with a ServiceException."),
)  # fmt: skip

_BY_KEY: Mapping[str, Option] = {o.name: o for o in SERVER_OPTIONS}

F = TypeVar("F", bound=Callable[..., Any])


def config_option(f: F) -> F:
    """``--config PATH``: the TOML file the options come from (after flags and env)."""
    return click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), default=None,
        help=f"TOML file of options (keys as in the flags, data_dir = ...). [env {CONFIG_ENV};"
             f" default {SYSTEM_CONFIG} when present]",
    )(f)  # fmt: skip


def click_options(options: tuple[Option, ...]) -> Callable[[F], F]:
    """The flags of ``options``, each defaulting to None (unset) so the other sources apply."""

    def decorate(f: F) -> F:
        for opt in reversed(options):
            f = click.option(opt.flag, opt.name, type=opt.type, default=None,
                             multiple=opt.multiple, help=opt.help_text())(f)  # fmt: skip
        return config_option(f)

    return decorate


@dataclass(frozen=True, slots=True)
class ConfigFile:
    path: Path | None  # None: no file
    values: Mapping[str, Any]


def read_config_file(explicit: str | None, env: Mapping[str, str]) -> ConfigFile:
    """The file ``--config`` or ``$BRAZIER_CONFIG`` names (it must exist), else the system one
    when present; ``BRAZIER_CONFIG=`` (set, empty) reads none. Keys are checked against
    ``SERVER_OPTIONS``; values are checked later."""
    if not explicit and env.get(CONFIG_ENV) == "":
        return ConfigFile(None, {})
    named = explicit or env.get(CONFIG_ENV) or None
    path = Path(named) if named else SYSTEM_CONFIG
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"config file {path} does not exist") from None
        return ConfigFile(None, {})
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _BY_KEY or not key.islower():
            known = ", ".join(sorted(_BY_KEY))
            raise ConfigError(f"{path}: unknown key {key!r} (known keys: {known})")
        if name in values:
            raise ConfigError(f"{path}: key {key!r} given twice (as - and _)")
        values[name] = value
    return ConfigFile(path, values)


_TOML_KINDS: Mapping[type, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
}


def _python_type(t: click.ParamType[Any]) -> type:
    if isinstance(t, click.types.IntParamType):
        return int
    if isinstance(t, click.types.FloatParamType):
        return float
    return str


def _from_file(opt: Option, value: Any, path: Path) -> Any:
    want = _python_type(opt.type)
    if opt.multiple and isinstance(value, list):
        value = ",".join(str(v) for v in value)  # port = [5432, 6379] as "5432,6379"
    if isinstance(value, bool) or not isinstance(value, _TOML_KINDS[want]):
        kind = {int: "an integer", float: "a number", str: "a string"}[want]
        raise ConfigError(
            f"{path}: {opt.name} must be {kind}, not {type(value).__name__} {value!r}"
        )
    if isinstance(opt.type, click.Path) and not Path(str(value)).is_absolute():
        value = str(path.parent / str(value))  # relative to the file, not to the working dir
    return _convert(opt, value, f"{path}: {opt.name}")


def _convert(opt: Option, value: object, where: str) -> object:
    try:
        return opt.type.convert(value, None, None)
    except click.BadParameter as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def resolve(
    options: tuple[Option, ...],
    flags: Mapping[str, object],
    env: Mapping[str, str],
    file: ConfigFile,
) -> dict[str, Any]:
    """Each option's value: the flag if given (not None), else its env var if set and not empty,
    else the file's key, else its default. Flags are already converted by click."""
    out: dict[str, Any] = {}
    for opt in options:
        flag = flags.get(opt.name)
        if opt.multiple and flag:  # one tuple per use of the flag
            out[opt.name] = tuple(item for given in flag for item in given)  # type: ignore[attr-defined]
        elif not opt.multiple and flag is not None:
            out[opt.name] = flag
        elif env.get(opt.env):
            out[opt.name] = _convert(opt, env[opt.env], opt.env)
        elif opt.name in file.values and file.path is not None:
            out[opt.name] = _from_file(opt, file.values[opt.name], file.path)
        else:
            out[opt.name] = opt.default_value()
    return out


def load(
    options: tuple[Option, ...],
    flags: Mapping[str, object],
    config_file: str | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``resolve`` with the process's environment and the config file it names."""
    env = os.environ if env is None else env
    return resolve(options, flags, env, read_config_file(config_file, env))


def data_dir(flag: str | None, config_file: str | None) -> Path:
    """The data dir of ``keys``, ``runtimes`` and any operator command: as the server's."""
    return Path(load((DATA_DIR,), {"data_dir": flag}, config_file)["data_dir"]).resolve()


def fail(exc: ConfigError) -> None:
    """One line on stderr and exit status 2 (a usage error)."""
    click.echo(f"brazier: {exc}", err=True)
    raise SystemExit(2)
