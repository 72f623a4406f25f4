"""Reading function logs (``brazier logs``; the CloudWatch Logs API arrives in a later issue)."""

from __future__ import annotations

from brazier.model.arns import LATEST, resolve_ref
from brazier.model.errors import InvalidParameterValueException
from brazier.model.identity import Caller
from brazier.model.logs import LogGroupKey
from brazier.store.base import MetadataStore
from brazier.store.logs import MAX_PAGE_EVENTS, LogEvent, LogStore


class LogService:
    def __init__(self, metadata: MetadataStore, logs: LogStore) -> None:
        self.metadata = metadata
        self.logs = logs

    async def function_events(
        self, caller: Caller, function: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[LogEvent]:
        """The events of ``function``'s log group in the caller's account and region.

        A function the caller does not have (any more) reads the caller's own
        ``/aws/lambda/<name>``: never a group of another account or region.
        """
        if not 1 <= limit <= MAX_PAGE_EVENTS:
            raise InvalidParameterValueException(f"limit must be between 1 and {MAX_PAGE_EVENTS}")
        if not 0 <= after_seq < 2**63:
            raise InvalidParameterValueException("after must be a sequence number of an event")
        name, _ = resolve_ref(function, None, region=caller.region, account=caller.account)
        fv = await self.metadata.get_version(caller.account, caller.region, name, LATEST)
        group = fv.log_group if fv is not None else f"/aws/lambda/{name}"
        key = LogGroupKey(caller.account, caller.region, group)
        return await self.logs.query(key, after_seq=after_seq, limit=limit)
