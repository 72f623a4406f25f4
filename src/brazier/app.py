"""The composition root: the one place that builds settings, store, services and edges."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp

from brazier.api.auth import make_authenticator, sandbox_callers_sign
from brazier.api.codeurls import CodeUrlSigner
from brazier.api.http import build_http_app
from brazier.api.operations import Services
from brazier.control.code_gc import CodeCollector, CodePins
from brazier.control.concurrency import ConcurrencyService
from brazier.control.event_config import EventConfigService
from brazier.control.functions import FunctionService
from brazier.control.layers import LayerService
from brazier.control.logs import LogService
from brazier.control.provisioned import ProvisionedService
from brazier.control.resources import ResourceService
from brazier.control.urls import UrlService
from brazier.control.versions import VersionService
from brazier.events.clock import SystemClock
from brazier.events.dispatcher import Dispatcher
from brazier.events.sqlite_queue import SqliteQueue
from brazier.events.sqs import SqsSender
from brazier.invoke.service import InvokeService
from brazier.model import runtimes
from brazier.model.egress import parse_egress
from brazier.model.settings import Settings
from brazier.sandbox import open_sandbox_factory
from brazier.sandbox.discovery import Discovery
from brazier.sandbox.network import HOST_NAME, NetworkConfig
from brazier.scheduler.base import Scheduler
from brazier.store.blobs import BlobStore
from brazier.store.credentials import CredentialStore
from brazier.store.layers import SqliteLayerStore
from brazier.store.logs import LogStore, metadata_group_owners
from brazier.store.sessions import SessionStore
from brazier.store.sqlite import SqliteStore
from brazier.worker.worker import LocalWorker

log = logging.getLogger("brazier")


def _server_secret(data_dir: Path) -> bytes:
    """A random key kept in the data dir, for signing code download links."""
    path = data_dir / "server.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return key


def _url_renderer(settings: Settings) -> Callable[[str, str], str]:
    """FunctionUrl as clients get it: the Host-routed form of AWS's https://<id>.lambda-url..."""

    def url_for(url_id: str, region: str) -> str:
        return f"http://{url_id}.lambda-url.{region}.localhost:{settings.port}/"

    return url_for


def credentials_for(data_dir: Path) -> CredentialStore:
    return CredentialStore(data_dir / "credentials.json")


def network_config(settings: Settings) -> NetworkConfig | None:
    """The sandboxes' egress (decision 0025), or None (loopback only) when not asked for."""
    if settings.egress is None:
        return None
    return NetworkConfig(
        default=parse_egress(settings.egress),
        allow_host_ports=settings.allow_host_ports,
        api_port=settings.port,  # functions call brazier at host.brazier.internal (0029)
    )


def function_endpoints(settings: Settings) -> dict[str, str]:
    """``AWS_ENDPOINT_URL_*`` of every function: brazier as reached from inside a sandbox, when
    environments have a network to reach it by (decision 0029)."""
    if settings.egress is None:
        return {}
    return {"AWS_ENDPOINT_URL_LAMBDA": f"http://{HOST_NAME}:{settings.port}"}


@dataclass(frozen=True, slots=True)
class BuiltServer:
    """The ASGI app and what runs behind it: ``running()`` starts the engine (log writer,
    sandboxes, background services) and stops it on exit. ``app`` also runs it as its ASGI
    lifespan, for servers that use one."""

    app: ASGIApp
    running: Callable[[], AbstractAsyncContextManager[None]]


def build_app(settings: Settings) -> ASGIApp:
    """Build the whole server for ``settings``. Resources open and close with the app's lifespan."""
    return build_server(settings).app


def build_server(settings: Settings) -> BuiltServer:
    """Build the whole server for ``settings``; nothing runs until ``running()`` is entered."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "metadata.db")
    logs = LogStore(
        data_dir / "logs.db",
        owners=metadata_group_owners(store.db),
        retention_days=settings.log_retention_days or None,
    )
    blobs = BlobStore(data_dir / "code")
    blobs.sweep_temp()
    code_urls = CodeUrlSigner(_server_secret(data_dir), settings.base_url)
    pins = CodePins()
    layer_store = SqliteLayerStore(store.db)
    layers = LayerService(layer_store, blobs, code_url=code_urls.url_for, pins=pins)
    # One registry of this host's runtimes for the control plane (a function whose runtime is
    # missing is Failed, InvalidRuntime) and the sandboxes; it looks in data_dir/runtimes first.
    discovery = Discovery.default(data_dir)
    functions = FunctionService(store, blobs, layers, pins=pins, runtimes=discovery)
    resources = ResourceService(store, account_concurrency=settings.account_concurrency)
    sessions = SessionStore()  # environments' credentials, in memory only (decision 0029)
    worker = LocalWorker(
        functools.partial(
            open_sandbox_factory,
            discovery=discovery,
            network=network_config(settings),
            tmp_disk_dir=data_dir,
        ),
        logs,
        idle_ttl=settings.idle_ttl_seconds,
        init_timeout=settings.init_timeout_seconds,
        prewarm_runtimes=(
            tuple(runtimes.SUPPORTED)
            if settings.prewarm_runtimes is None
            else settings.prewarm_runtimes
        ),
        sessions=sessions,
        endpoints=function_endpoints(settings),
    )

    async def opt_dir(arns: tuple[str, ...]) -> Path | None:
        """The merged layers a version mounts at /opt (built once, content-addressed)."""
        if not arns:
            return None
        return await asyncio.to_thread(layers.merged_tree, await layers.pinned(arns))

    async def layer_code_in_use() -> set[str]:
        return await layer_store.code_in_use(await store.layer_arns_in_use())

    collector = CodeCollector(
        blobs, pins, (store.code_in_use, layer_code_in_use), worker.paths_in_use
    )
    invoke = InvokeService(
        store,
        Scheduler([worker]),
        blobs.tree_path,
        opt_dir,
        account_concurrency=settings.account_concurrency,
    )
    event_configs = EventConfigService(store)
    # Event invocations: durable in their own SQLite file, run by the dispatcher (decision 0026).
    event_queue = SqliteQueue(data_dir / "events.db")
    dispatcher = Dispatcher(
        event_queue,
        invoke,
        event_configs,
        SystemClock(),
        retry_delays=settings.async_retry_delays,
        sqs=SqsSender(settings.sqs_endpoint) if settings.sqs_endpoint else None,
    )
    invoke.attach_events(dispatcher)
    services = Services(
        functions=functions,
        resources=resources,
        code_urls=code_urls,
        invoke=invoke,
        logs=LogService(store, logs),
        versions=VersionService(store, functions),
        concurrency=ConcurrencyService(store, account_limit=settings.account_concurrency),
        event_configs=event_configs,
        layers=layers,
        urls=UrlService(store, url_for=_url_renderer(settings)),
        provisioned=ProvisionedService(store, account_limit=settings.account_concurrency),
    )
    authenticate = make_authenticator(
        mode=settings.effective_auth,
        default_region=settings.region,
        default_account=settings.account_id,
        credentials=credentials_for(data_dir),
        sessions=sessions,
    )

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        try:
            async with (
                logs.running(),
                worker.running(),
                functions.running(),
                invoke.running(),
                event_queue.running(),
                dispatcher.running(),
                collector.running(),
            ):
                yield
        finally:
            await store.aclose()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running():
            log.info(
                "brazier listening on %s (auth %s, data in %s)",
                settings.base_url,
                settings.effective_auth,
                data_dir,
            )
            try:
                yield
            finally:
                log.info("brazier shutting down")

    # Function URLs with AuthType AWS_IAM always check signatures, whatever the server's mode.
    iam = make_authenticator(
        mode="sigv4",
        default_region=settings.region,
        default_account=settings.account_id,
        credentials=credentials_for(data_dir),
        sessions=sessions,
    )
    app = build_http_app(services, authenticate, lifespan, iam=iam, spool_dir=data_dir / "spool")
    network = network_config(settings)
    if network is not None:  # functions reach the API: their requests are always verified (0029)
        app = sandbox_callers_sign(app, network.range)
    return BuiltServer(app, running)
