"""Start and stop ``brazier server`` like a well-behaved service.

Start: check what would fail later (root, the data dir, its lock, the port), each as ONE line
with its fix and exit status 1; bind the port; start the engine; then announce "listening".
Stop (SIGTERM or SIGINT, once): stop accepting, give in-flight requests ``shutdown_grace``
seconds, end the rest with a ServiceException (api/drain.py), close the engine, exit 0. A second
signal ends the grace period at once. Helper processes (zygotes, the log writer) run in their
own sessions, so a terminal's Ctrl-C reaches the server only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn

from brazier.api.drain import Drain
from brazier.model.settings import Settings

log = logging.getLogger("brazier")

LOCK_FILE = "server.lock"


class StartupError(Exception):
    """Why the server cannot start here, and what to do about it: one line."""


@dataclass(frozen=True, slots=True)
class ServeOptions:
    settings: Settings
    read_timeout: float | None
    shutdown_grace: float


def check_root() -> None:
    if os.geteuid() != 0:
        raise StartupError(
            "brazier server must run as root (it creates namespaces, cgroups and mounts for its"
            " sandboxes): run it with sudo, or as the systemd unit"
        )


def lock_data_dir(data_dir: Path) -> int:
    """Create ``data_dir`` and hold ``<data_dir>/server.lock`` (flock) for the process's life.
    Returns the lock's descriptor (close-on-exec: no helper process inherits it)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StartupError(
            f"cannot use data dir {data_dir}: {exc.strerror}; choose a writable --data-dir"
            " (BRAZIER_DATA_DIR) or fix its permissions"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StartupError(
            f"another brazier server (pid {holder}) is using data dir {data_dir}: stop it"
            " first, or give this server its own --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def prepare_cgroups() -> str:
    """Log the host's cgroup mode once; on v2 move into the delegated subtree's leaf, or stop
    with the command that gives brazier one (decision 0023)."""
    from brazier.sandbox.cgroup_delegation import DelegationError, delegate
    from brazier.sandbox.cgroup_mode import CgroupMode, detect

    mode = detect()
    if mode is CgroupMode.V2:
        try:
            delegate()
        except DelegationError as e:
            raise StartupError(str(e)) from None
    return mode.value


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts (so a busy port costs nothing)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host!r}: {exc.strerror}; check --host") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"cannot listen on {where}: the port is in use (by another brazier or another"
                f" program: `ss -ltnp 'sport = :{port}'` shows which); stop it or choose another"
                " --port (BRAZIER_PORT)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError(
                f"cannot listen on {where}: no interface of this machine has {host}; check --host"
            ) from None
        raise StartupError(f"cannot listen on {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def startup_failure(exc: BaseException) -> StartupError:
    """One line for an engine that failed to start (an ExceptionGroup from its task groups)."""
    first = next(_leaves(exc), exc)
    return StartupError(f"cannot start: {first}")


class _Stopper:
    """The SIGINT/SIGTERM handler, from before start to exit: a signal during start-up ends it
    after start-up; while serving, the first one starts the drain, a second one cuts it short."""

    def __init__(self) -> None:
        self.requested = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None  # once serving
        self.drain: Drain | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.handle)

    def handle(self, sig: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        if first:
            log.info("brazier shutting down (%s)", signal.Signals(sig).name)
        if self.server is not None:
            self.server.handle_exit(sig, frame)
        if self.loop is not None and self.drain is not None:
            action = self.drain.begin if first else self.drain.expire
            self.loop.call_soon_threadsafe(action)


def run(opts: ServeOptions) -> int:
    """Serve until SIGTERM/SIGINT. Returns the exit status; start-up failures print one line."""
    stopper = _Stopper()
    stopper.install()
    try:
        check_root()
        lock = lock_data_dir(opts.settings.data_dir)
        sock = bind(opts.settings.host, opts.settings.port)
        cgroup_mode = prepare_cgroups()
    except StartupError as exc:
        print(f"brazier: {exc}", file=sys.stderr)
        return 1
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(opts, sock, stopper, cgroup_mode))
    except StartupError as exc:
        print(f"brazier: {exc}", file=sys.stderr)
        return 1
    finally:
        sock.close()
        os.close(lock)
    return 0


async def _serve(
    opts: ServeOptions, sock: socket.socket, stopper: _Stopper, cgroup_mode: str
) -> None:
    from brazier import open_files
    from brazier.api import limits
    from brazier.api.connections import ConnectionLimits, protocol_class
    from brazier.app import build_server

    settings = opts.settings
    open_files.presize_fd_table(open_files.raise_open_files_limit(settings.account_concurrency))
    connections = ConnectionLimits(
        head_timeout=opts.read_timeout or limits.HEADER_TIMEOUT,
        body_timeout=opts.read_timeout or limits.BODY_IDLE_TIMEOUT,
        body_rate_grace=opts.read_timeout or limits.BODY_RATE_GRACE,
        max_connections=open_files.connection_cap(settings.account_concurrency),
    )
    try:
        built = build_server(settings)
    except Exception as exc:  # a data dir brazier cannot open: unreadable, corrupt, too new
        raise StartupError(f"cannot open the data in {settings.data_dir}: {exc}") from None
    drain = Drain(built.app, opts.shutdown_grace)
    config = uvicorn.Config(
        drain,
        loop="none",
        http=protocol_class(connections),
        timeout_keep_alive=limits.KEEP_ALIVE_TIMEOUT,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        lifespan="off",
        # A backstop: the drain answers what is left at the grace period's end.
        timeout_graceful_shutdown=int(opts.shutdown_grace) + 5,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
    )
    server = _Uvicorn(config)
    stopper.loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(built.running())
        except Exception as exc:  # an ExceptionGroup from the engine's task groups, usually
            raise startup_failure(exc) from None
        if stopper.requested:
            return
        stopper.server, stopper.drain = server, drain
        log.info(
            "brazier listening on %s (auth %s, data in %s, cgroup mode %s)",
            settings.base_url,
            settings.effective_auth,
            settings.data_dir,
            cgroup_mode,
        )
        try:
            await server.serve(sockets=[sock])
        finally:
            stopper.server = None
    if drain.stopped:
        log.warning("%d request(s) ended past the shutdown grace period", drain.stopped)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its own signal handling (``_Stopper`` owns the signals) and
    without its start-up message (brazier says "listening" itself, once the engine runs)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        pass
