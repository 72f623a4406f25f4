"""Turn a runtime's output bytes into log events, and keep each invocation's tail."""

from __future__ import annotations

import time

from brazier.model.invocation import LogSink
from brazier.model.logs import LogGroupKey

TAIL_BYTES = 4096
MAX_LINE = 256 * 1024  # Lambda splits events at 256 KB


class InvocationLog:
    """Line-splits output for one log stream; records the current invocation's text for Tail."""

    def __init__(self, group: LogGroupKey, stream: str, sink: LogSink) -> None:
        self.group = group
        self.stream = stream
        self._sink = sink
        self._partial = b""
        self._tail = bytearray()
        self._recording = False

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

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        if len(self._partial) > MAX_LINE:
            complete.append(self._partial)
            self._partial = b""
        if complete:
            self._emit([c.decode("utf-8", "replace") + "\n" for c in complete])

    def flush_partial(self) -> None:
        """Emit a last line that has no newline yet (at the end of an invocation)."""
        if self._partial:
            line, self._partial = self._partial, b""
            self._emit([line.decode("utf-8", "replace") + "\n"])

    def platform(self, line: str | None) -> None:
        """A platform line (START, END, REPORT, INIT_START...); None when filtered out."""
        self.flush_partial()
        if line is not None:
            self._emit([line])
