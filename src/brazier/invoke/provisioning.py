"""Provisioned concurrency: keep the configured number of environments initialised.

The control plane stores the configurations; this reconciler (run by the invoke service when the
store changes, and while something is not READY yet) asks the worker for that many provisioned
environments of each target version and records Available/Allocated and Status on them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from brazier.model.functions import PROVISIONED_CONCURRENCY, FunctionVersion, State
from brazier.model.invocation import FunctionSpec
from brazier.scheduler.base import Scheduler
from brazier.store.base import MetadataStore

SpecFor = Callable[[FunctionVersion], Awaitable[FunctionSpec]]


class ProvisionedEnvironments:
    def __init__(self, store: MetadataStore, scheduler: Scheduler, spec_for: SpecFor) -> None:
        self.store = store
        self.scheduler = scheduler
        self.spec_for = spec_for  # the provisioned FunctionSpec of a version
        self.specs: dict[tuple[str, ...], FunctionSpec] = {}
        self.pending = False  # some configuration is not READY yet: reconcile again

    async def reconcile(self) -> None:
        """Bring provisioned environments in line with the stored configurations and record
        what is ready (Status IN_PROGRESS -> READY) on each configuration."""
        wanted: dict[tuple[str, ...], tuple[FunctionSpec, int]] = {}
        records: list[tuple[str, str, str, str, Any, tuple[str, ...]]] = []
        for account, region, name, qualifier, cfg in await self.store.all_settings(
            PROVISIONED_CONCURRENCY
        ):
            version = qualifier
            if not qualifier.isdigit():
                alias = await self.store.get_alias(account, region, name, qualifier)
                if alias is None:
                    continue
                version = alias.version
            fv = await self.store.get_version(account, region, name, version)
            if fv is None or fv.lifecycle.state is not State.ACTIVE:
                continue
            spec = await self.spec_for(fv)
            count = wanted.get(spec.key, (spec, 0))[1] + int(cfg["Requested"])
            wanted[spec.key] = (spec, count)
            records.append((account, region, name, qualifier, cfg, spec.key))
        worker = self.scheduler.workers[0]
        for key, spec in list(self.specs.items()):
            if key not in wanted:
                await worker.provision(spec, 0)
                del self.specs[key]
        ready: dict[tuple[str, ...], int] = {}
        for key, (spec, count) in wanted.items():
            self.specs[key] = spec
            ready[key] = await worker.provision(spec, count)
        pending = False
        for account, region, name, qualifier, cfg, key in records:
            available = min(ready[key], int(cfg["Requested"]))
            status = "READY" if available >= int(cfg["Requested"]) else "IN_PROGRESS"
            pending = pending or status != "READY"
            if cfg.get("Available") != available or cfg.get("Status") != status:
                new = {**cfg, "Available": available, "Allocated": available, "Status": status}
                await self.store.put_setting(
                    account, region, name, PROVISIONED_CONCURRENCY, new, qualifier
                )
        self.pending = pending
