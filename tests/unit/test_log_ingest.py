"""Log ingestion in the worker: lines cut at 256 KB, the per-function quota, drop reports."""

from __future__ import annotations

import json

from brazier.model.logs import (
    EVENT_OVERHEAD_BYTES,
    INGEST_BURST_BYTES,
    INGEST_RATE_BYTES_PER_S,
    MAX_LINE_BYTES,
    LogGroupKey,
)
from brazier.worker import logformat
from brazier.worker.logbuffer import IngestBucket, IngestQuotas, InvocationLog
from brazier.worker.logformat import PlatformLines

GROUP = LogGroupKey("000000000000", "us-east-1", "/aws/lambda/f")
MiB = 1024 * 1024


class ListSink:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def append(
        self,
        group: LogGroupKey,
        stream: str,
        events: list[tuple[int, str]],
        *,
        platform: bool = False,
    ) -> bool:
        assert group == GROUP
        self.messages.extend(m for _, m in events)
        return True


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _feed(log: InvocationLog, data: bytes, chunk: int = 65536) -> None:
    for i in range(0, len(data), chunk):
        log.feed(data[i : i + chunk])


def test_long_lines_are_cut_into_events_of_at_most_256_kb() -> None:
    sink = ListSink()
    log = InvocationLog(GROUP, "s", sink)
    line = bytes(range(65, 91)) * 30_000  # 780,000 bytes, no newline for a while
    _feed(log, line + b"\nshort\n" + line)
    log.platform("END\n")
    sizes = [len(m.encode()) for m in sink.messages]
    assert max(sizes) <= MAX_LINE_BYTES
    assert max(sizes) == MAX_LINE_BYTES  # full pieces are exactly 256 KB with their newline
    text = "".join(m[:-1] for m in sink.messages[:-1])
    assert text == (line + b"short" + line).decode()
    assert "short\n" in sink.messages


def test_cuts_never_split_a_utf8_character() -> None:
    sink = ListSink()
    log = InvocationLog(GROUP, "s", sink)
    line = ("é" * 200_000 + "€" * 100_000).encode()  # 700,000 bytes of 2- and 3-byte characters
    _feed(log, line + b"\n", chunk=65_537)
    assert all(len(m.encode()) <= MAX_LINE_BYTES for m in sink.messages)
    assert "".join(m[:-1] for m in sink.messages) == line.decode()  # no U+FFFD anywhere


def test_the_quota_keeps_the_burst_then_the_rate_and_reports_what_it_dropped() -> None:
    clock = ManualClock()
    sink = ListSink()
    lines = PlatformLines("Text", None)
    log = InvocationLog(
        GROUP, "s", sink, bucket=IngestBucket(clock=clock), dropped_line=lines.logs_dropped
    )
    row = b"x" * 1023 + b"\n"  # 1 KiB per line
    cost = len(row) + EVENT_OVERHEAD_BYTES
    _feed(log, row * (12 * 1024))  # 12 MiB at once: the 8 MiB burst is kept
    burst = INGEST_BURST_BYTES // cost
    assert len(sink.messages) == burst
    log.platform("END RequestId: 1\n")
    dropped_report, end = sink.messages[-2:]
    dropped = 12 * 1024 - burst
    assert dropped_report.startswith(
        f"LOGS_DROPPED DroppedRecords: {dropped}\tDroppedBytes: {dropped * len(row)}\t"
    )
    assert end == "END RequestId: 1\n"

    clock.t += 1.0  # one second refills 2 MiB
    before = len(sink.messages)
    _feed(log, row * (3 * 1024))
    kept = len(sink.messages) - before
    assert kept in (INGEST_RATE_BYTES_PER_S // cost, INGEST_RATE_BYTES_PER_S // cost + 1)
    log.platform(None)  # a filtered platform line still reports the drops
    dropped = 3 * 1024 - kept
    assert sink.messages[-1].startswith(
        f"LOGS_DROPPED DroppedRecords: {dropped}\tDroppedBytes: {dropped * len(row)}\t"
    )


def test_a_drop_report_comes_before_the_next_kept_line_in_json() -> None:
    clock = ManualClock()
    sink = ListSink()
    lines = PlatformLines("JSON", "WARN")  # platform lines are quiet; drop reports are not
    log = InvocationLog(
        GROUP, "s", sink, bucket=IngestBucket(clock=clock), dropped_line=lines.logs_dropped
    )
    _feed(log, b"y" * (9 * MiB - 1) + b"\n")  # one 9 MiB line: 37 events of <= 256 KB
    kept = len(sink.messages)
    clock.t += 10
    log.feed(b"after the gap\n")
    report = json.loads(sink.messages[kept])
    assert report["type"] == "platform.logsDropped"
    assert report["record"]["droppedRecords"] == 37 - kept
    events_bytes = 9 * MiB + 36  # each cut adds the newline of its event
    assert report["record"]["droppedBytes"] == events_bytes - sum(map(len, sink.messages[:kept]))
    assert sink.messages[kept + 1 :] == ["after the gap\n"]


def test_environments_of_one_function_share_its_quota() -> None:
    clock = ManualClock()
    quotas = IngestQuotas(clock=clock)
    sinks = [ListSink(), ListSink(), ListSink()]
    logs = [
        InvocationLog(GROUP, "a", sinks[0], bucket=quotas.bucket("1", "r", "f")),
        InvocationLog(GROUP, "b", sinks[1], bucket=quotas.bucket("1", "r", "f")),
        InvocationLog(GROUP, "c", sinks[2], bucket=quotas.bucket("1", "r", "g")),
    ]
    row = b"z" * 1023 + b"\n"
    for log in logs:
        _feed(log, row * 6 * 1024)  # 6 MiB each
    kept = [len(s.messages) for s in sinks]
    burst = INGEST_BURST_BYTES // (len(row) + EVENT_OVERHEAD_BYTES)
    assert kept == [6 * 1024, burst - 6 * 1024, 6 * 1024]


def test_a_flood_of_empty_lines_is_held_by_the_event_overhead() -> None:
    sink = ListSink()
    log = InvocationLog(GROUP, "s", sink, bucket=IngestBucket(clock=ManualClock()))
    _feed(log, b"\n" * (16 * MiB))
    assert len(sink.messages) == INGEST_BURST_BYTES // (1 + EVENT_OVERHEAD_BYTES)
    assert log.dropped_records == 16 * MiB - len(sink.messages)
    assert log.dropped_bytes == log.dropped_records


def test_output_dropped_whole_is_counted_as_the_events_it_would_have_made() -> None:
    data = b"short\n" + "é".encode() * 300_000 + b"\n" + b"\n" * 1000 + b"x" * 700_000 + b"\nend"
    kept, dropped = ListSink(), ListSink()
    everything = InvocationLog(GROUP, "s", kept, bucket=IngestBucket(burst=1e12))
    nothing = InvocationLog(GROUP, "s", dropped, bucket=IngestBucket(burst=0))
    for log in (everything, nothing):
        _feed(log, data, chunk=50_000)
        log.flush_partial()
    assert dropped.messages == []
    assert nothing.dropped_records == len(kept.messages) == 1 + 3 + 1000 + 3 + 1
    assert nothing.dropped_bytes == sum(len(m.encode()) for m in kept.messages)


class FullSink(ListSink):
    """Takes platform events only, as a full store does."""

    def append(
        self,
        group: LogGroupKey,
        stream: str,
        events: list[tuple[int, str]],
        *,
        platform: bool = False,
    ) -> bool:
        return platform and super().append(group, stream, events, platform=platform)


def test_what_a_full_sink_refuses_is_reported_dropped() -> None:
    sink = FullSink()
    log = InvocationLog(GROUP, "s", sink, dropped_line=PlatformLines("Text", None).logs_dropped)
    log.feed(b"one\ntwo\n")
    log.platform("END\n")
    assert sink.messages == [
        "LOGS_DROPPED DroppedRecords: 2\tDroppedBytes: 8\t"
        f"Reason: {logformat.LOGS_DROPPED_REASON}\n",
        "END\n",
    ]
