"""/health under load (issue 11, item 6): answered by the connection layer, not behind the app's
tasks, and a burst's requests start a bounded amount of work per event loop iteration."""

from __future__ import annotations

import asyncio
import json
import time

import uvicorn

from brazier.api.connections import ConnectionLimits, protocol_class
from brazier.api.pacing import TICK_BUDGET, Pacer

from support import free_port


async def _get(port: int, path: str, *, keep_alive: bool = False, n: int = 1) -> list[bytes]:
    """``n`` GETs of ``path`` on one connection; each answer's head and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for i in range(n):
            close = not keep_alive or i == n - 1
            conn = b"close" if close else b"keep-alive"
            writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n" % (path, conn))
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head + await reader.readexactly(length))
    finally:
        writer.close()
    return answers


def test_health_is_answered_while_the_app_holds_every_request() -> None:
    """The app never answers (a loop busy with a burst's tasks looks the same to a request that
    waits for one): /health still answers at once, keep-alive included, with its JSON."""
    held = asyncio.Event()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            await asyncio.Event().wait()  # never answers

    async def main() -> None:
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, http=protocol_class(ConnectionLimits()),
            lifespan="off", log_level="warning", loop="asyncio",
        )  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn.Server has a flag, not an event
            await asyncio.sleep(0.01)
        try:
            stuck = asyncio.create_task(_get(port, b"/2015-03-31/functions"))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            answers = await asyncio.wait_for(_get(port, b"/health", keep_alive=True, n=3), 5)
            assert time.perf_counter() - t0 < 2.0
            for answer in answers:
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 "), answer
                doc = json.loads(body)
                assert doc["status"] == "ok" and doc["uptime"] >= 0 and doc["version"], doc
            assert not stuck.done()  # the app really holds its request
            stuck.cancel()
            held.set()
        finally:
            server.should_exit = True
            server.force_exit = True
            await serving

    asyncio.run(main())
    assert held.is_set()


def _busy(seconds: float) -> None:
    """Block the calling thread (the loop's) for ``seconds``, as CPU-bound work does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _loop_during_burst(pacer: Pacer | None, n: int = 400, work: float = 0.002) -> tuple[int, float]:
    """How many times a 1 ms heartbeat ran, and the longest it waited, while ``n`` requests,
    all ready at once, each did ``work`` seconds of blocking work (as a cold start's first
    step). The count is the robust figure: a loaded host may deschedule the whole process."""

    async def request() -> None:
        if pacer is not None:
            await pacer.turn()
        _busy(work)

    async def main() -> tuple[int, float]:
        worst, beats = 0.0, 0
        last = time.perf_counter()
        done = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal worst, last, beats
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst, last, beats = max(worst, now - last), now, beats + 1

        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.01)
        before = beats
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(request())
        during = beats - before
        done.set()
        await beat
        return during, worst

    return asyncio.run(main())


def test_a_paced_burst_leaves_the_loop_free_every_few_milliseconds() -> None:
    unpaced_beats, unpaced_lag = _loop_during_burst(None)
    paced_beats, paced_lag = _loop_during_burst(Pacer())
    figures = {"unpaced": (unpaced_beats, unpaced_lag), "paced": (paced_beats, paced_lag)}
    # Unpaced, the whole burst (400 x 2 ms = 0.8 s) runs in one iteration: the heartbeat runs
    # at most twice. Paced, an iteration holds about one budget (10 ms) of it: ~80 iterations.
    assert unpaced_beats <= 2 and unpaced_lag > 0.5, figures
    assert paced_beats >= 0.8 * 400 * 0.002 / TICK_BUDGET / 4, figures
    assert paced_lag < unpaced_lag / 3, figures


def test_every_paced_request_starts_and_cancelled_waiters_are_skipped() -> None:
    async def main() -> tuple[int, int]:
        pacer = Pacer(budget=0.001)
        started = 0

        async def request(work: float) -> None:
            nonlocal started
            await pacer.turn()
            started += 1
            _busy(work)

        tasks = [asyncio.create_task(request(0.0005)) for _ in range(200)]
        await asyncio.sleep(0)  # all 200 reach turn(); most wait
        for t in tasks[100:150]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return started, pacer.delayed

    started, delayed = asyncio.run(main())
    assert started == 150
    assert delayed > 0
