"""Turn a runtime's output bytes into log events, and keep each invocation's tail.

Output is cut into events at newlines and at ``MAX_LINE_BYTES`` (Lambda's 256 KB), and each
function's events pass its ingestion quota (``IngestBucket``): what does not fit is dropped, and
counted, and the count is logged as a platform line (``logformat.logs_dropped``) before the next
event that is kept or the next platform line. A dropped chunk costs no more than counting its
newlines, so a function printing hundreds of megabytes keeps the server's memory and CPU bounded.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from brazier.model.invocation import LogSink
from brazier.model.logs import (
    EVENT_OVERHEAD_BYTES,
    INGEST_BURST_BYTES,
    INGEST_RATE_BYTES_PER_S,
    MAX_LINE_BYTES,
    LogGroupKey,
)

TAIL_BYTES = 4096
# A line's text is cut so that the event, with its newline, is at most MAX_LINE_BYTES.
_MAX_TEXT = MAX_LINE_BYTES - 1
_EVENT_COST = 1 + EVENT_OVERHEAD_BYTES  # what an event costs besides its text: newline, overhead
_RESUME_BYTES = 256 * 1024  # an exhausted quota takes lines again once this much is back


class IngestBucket:
    """A token bucket of bytes: refilled at ``rate`` per second, holding at most ``burst``.

    Once ``exhaust``-ed (something was dropped) it offers nothing until ``resume`` bytes have
    come back: output is then dropped chunk by chunk, cheaply, instead of being split into lines
    on every read for the few bytes each read would refill.
    """

    def __init__(
        self,
        rate: float = INGEST_RATE_BYTES_PER_S,
        burst: float = INGEST_BURST_BYTES,
        *,
        resume: float = _RESUME_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._resume = resume
        self._clock = clock
        self._tokens = burst
        self._at = clock()
        self._dry = False

    def available(self) -> float:
        """The bytes that may be taken now."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._dry:
            if self._tokens < self._resume:
                return 0.0
            self._dry = False
        return self._tokens

    def spend(self, n: int) -> None:
        self._tokens -= n

    def exhaust(self) -> None:
        """Something did not fit: offer nothing until ``resume`` bytes are back."""
        self._dry = True


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

    def _emit(self, lines: list[str], *, platform: bool = False) -> None:
        now = int(time.time() * 1000)
        events = [(now, line) for line in lines]
        if not self._sink.append(self.group, self.stream, events, platform=platform):
            # The server's buffer is full (many floods at once): dropped, and reported as such.
            self.dropped_records += len(lines)
            self.dropped_bytes += sum(len(line.encode()) for line in lines)
            return
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
                self._emit([line], platform=True)

    def _ingest(self, lines: list[bytes]) -> None:
        """Events for ``lines`` (texts without their newline), as far as the quota allows.

        Each event costs its bytes, newline included, plus ``EVENT_OVERHEAD_BYTES``; the lines
        that fit are kept in order, and the rest of this chunk is dropped. (All in C-level
        loops: a chunk of 64 Ki empty lines costs no Python-level step per line.)
        """
        n = len(lines)
        if not n:
            return
        ends = list(accumulate(map(len, lines)))  # text bytes up to and including line i

        def cost(i: int) -> int:  # of lines[0..i]
            return ends[i] + (i + 1) * _EVENT_COST

        avail = self._bucket.available()
        kept = n if cost(n - 1) <= avail else bisect_right(range(n), avail, key=cost)
        if kept:
            self._bucket.spend(cost(kept - 1))
            self._report_drops()  # the gap before these lines
            self._emit([c.decode("utf-8", "replace") + "\n" for c in lines[:kept]])
        if kept < n:
            self._bucket.exhaust()
            self.dropped_records += n - kept
            self.dropped_bytes += ends[-1] - (ends[kept - 1] if kept else 0) + (n - kept)

    def feed(self, data: bytes) -> None:
        if self._partial:
            data = self._partial + data
        if self._bucket.available() < _EVENT_COST:
            self._drop(data)
            return
        *complete, self._partial = data.split(b"\n")
        if len(self._partial) > _MAX_TEXT:
            *more, self._partial = _cut(self._partial)
            complete.extend(more)
        if complete and max(map(len, complete)) > _MAX_TEXT:
            complete = [piece for line in complete for piece in _cut(line)]
        self._ingest(complete)

    def _drop(self, data: bytes) -> None:
        """Count ``data``'s events as dropped, as ``feed`` would cut them, without splitting it.
        ``data`` is the partial line (< 256 KB) and one read of the pipe (64 KiB): only its
        first line can be longer than 256 KB, so only that one may need cutting."""
        end = data.rfind(b"\n")
        if end >= 0:
            lines = records = data.count(b"\n", 0, end + 1)
            first = data.find(b"\n")
            if first > _MAX_TEXT:
                records += len(_cut(data[:first])) - 1
            self.dropped_records += records
            self.dropped_bytes += end + 1 + records - lines  # each cut adds a newline
            data = data[end + 1 :]
        if len(data) > _MAX_TEXT:
            *pieces, data = _cut(data)
            self.dropped_records += len(pieces)
            self.dropped_bytes += sum(map(len, pieces)) + len(pieces)
        self._partial = data

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
            self._emit([line], platform=True)
