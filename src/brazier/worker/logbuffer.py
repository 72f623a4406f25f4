"""Turn a runtime's output bytes into log events, and keep each invocation's tail.

Output is cut into events at newlines and at ``MAX_LINE_BYTES`` (Lambda's 256 KB), and each
function's events pass its ingestion quota (``IngestBucket``): what does not fit is dropped, and
counted, and the count is logged as a platform line (``logformat.logs_dropped``) before the next
event that is kept or the next platform line. A dropped chunk costs no more than counting its
newlines, so a function printing hundreds of megabytes keeps the server's memory and CPU bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from brazier.model.invocation import LogSink
from brazier.model.logs import (
    INGEST_BURST_BYTES,
    INGEST_RATE_BYTES_PER_S,
    MAX_LINE_BYTES,
    LogGroupKey,
)

TAIL_BYTES = 4096
# A line's text is cut so that the event, with its newline, is at most MAX_LINE_BYTES.
_MAX_TEXT = MAX_LINE_BYTES - 1


class IngestBucket:
    """A token bucket of bytes: refilled at ``rate`` per second, holding at most ``burst``."""

    def __init__(
        self,
        rate: float = INGEST_RATE_BYTES_PER_S,
        burst: float = INGEST_BURST_BYTES,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def take(self, n: int) -> bool:
        """Take ``n`` bytes if they fit now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if n > self._tokens:
            return False
        self._tokens -= n
        return True


class IngestQuotas:
    """One bucket per function (account, region, name), shared by its environments."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], IngestBucket] = {}

    def bucket(self, account: str, region: str, name: str) -> IngestBucket:
        key = (account, region, name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = IngestBucket(clock=self._clock)
        return bucket


def _cut(line: bytes) -> list[bytes]:
    """``line`` in pieces of at most ``_MAX_TEXT`` bytes, not splitting a UTF-8 sequence."""
    pieces = []
    while len(line) > _MAX_TEXT:
        cut = _MAX_TEXT
        while cut > _MAX_TEXT - 4 and (line[cut] & 0xC0) == 0x80:  # a continuation byte
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def _no_report(records: int, size: int) -> str | None:
    return None


class InvocationLog:
    """Line-splits output for one log stream; records the current invocation's text for Tail."""

    def __init__(
        self,
        group: LogGroupKey,
        stream: str,
        sink: LogSink,
        *,
        bucket: IngestBucket | None = None,
        dropped_line: Callable[[int, int], str | None] = _no_report,
    ) -> None:
        self.group = group
        self.stream = stream
        self._sink = sink
        self._bucket = bucket if bucket is not None else IngestBucket()
        self._dropped_line = dropped_line
        self._partial = b""
        self._tail = bytearray()
        self._recording = False
        self.dropped_records = 0  # since the last report
        self.dropped_bytes = 0

    def begin(self) -> None:
        self._tail.clear()
        self._recording = True

    def finish(self) -> bytes:
        """Stop recording; the last 4 KB of what this invocation logged."""
        self._recording = False
        return bytes(self._tail[-TAIL_BYTES:])

    def _emit(self, lines: list[str]) -> None:
        now = int(time.time() * 1000)
        self._sink.append(self.group, self.stream, [(now, line) for line in lines])
        if self._recording:
            for line in lines:
                self._tail += line.encode()
            if len(self._tail) > 4 * TAIL_BYTES:
                del self._tail[:-TAIL_BYTES]

    def _report_drops(self) -> None:
        if self.dropped_records:
            line = self._dropped_line(self.dropped_records, self.dropped_bytes)
            self.dropped_records = self.dropped_bytes = 0
            if line is not None:
                self._emit([line])

    def _ingest(self, lines: list[bytes]) -> None:
        """Events for ``lines`` (texts without their newline), as far as the quota allows."""
        if not lines:
            return
        size = sum(map(len, lines)) + len(lines)
        if self._bucket.take(size):
            kept = len(lines)
        else:
            kept = 0
            for line in lines:  # those that fit, in order; after the first that does not, none
                if not self._bucket.take(len(line) + 1):
                    break
                kept += 1
            dropped = lines[kept:]
            self.dropped_records += len(dropped)
            self.dropped_bytes += size - sum(map(len, lines[:kept])) - kept
        if kept:
            self._report_drops()
            self._emit([c.decode("utf-8", "replace") + "\n" for c in lines[:kept]])

    def feed(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if len(self._partial) > _MAX_TEXT:
            *more, self._partial = _cut(self._partial)
            complete.extend(more)
        if complete and max(map(len, complete)) > _MAX_TEXT:
            complete = [piece for line in complete for piece in _cut(line)]
        self._ingest(complete)

    def flush_partial(self) -> None:
        """Emit a last line that has no newline yet (at the end of an invocation)."""
        if self._partial:
            line, self._partial = self._partial, b""
            self._ingest([line])

    def platform(self, line: str | None) -> None:
        """A platform line (START, END, REPORT, INIT_START...); None when filtered out.

        Platform lines are not subject to the quota (Lambda writes them whatever a function
        logs); drops since the last report are reported first."""
        self.flush_partial()
        self._report_drops()
        if line is not None:
            self._emit([line])
