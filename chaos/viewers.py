"""WebSocket viewers that behave like static/js/live.js: reconnect after any close with its backoff
(0.5 s doubling up to 30 s, half of it random), and record what each one shows.

Run as a process of its own (`python -m chaos.viewers URL ORIGIN COUNT OUT T0`) so its event loop
does not compete with the voters' threads. Prints `READY <open>` when every socket opened once or
after a minute, then runs until SIGTERM and writes OUT: per viewer its open and close times, and
the total it shows with the time it started showing it (seconds since the wall-clock T0).
"""

import asyncio
import json
import random
import re
import signal
import sys
import time

import websockets

TOTAL = re.compile(r'<span id="results-total">(\d+)</span>')
VERSION = re.compile(r'data-version="(\d+)"')


def reconnect_delay(retry: int) -> float:
    cap = min(30.0, 0.5 * 2**retry)
    return cap / 2 + random.random() * cap / 2


class Viewer:
    def __init__(self) -> None:
        self.opens: list[float] = []
        self.closes: list[float] = []
        self.total: int | None = None
        self.version = -1
        self.total_since: float | None = None
        self.messages = 0

    def show(self, html: str, now: float) -> None:
        self.messages += 1
        version, total = VERSION.search(html), TOTAL.search(html)
        if not (version and total) or int(version.group(1)) < self.version:
            return  # live.js never shows an older version than it has
        self.version = int(version.group(1))
        if int(total.group(1)) != self.total:
            self.total, self.total_since = int(total.group(1)), now


async def watch(url: str, origin: str, viewer: Viewer, t0: float, stop: asyncio.Event) -> None:
    retry = 0
    while not stop.is_set():
        try:
            async with websockets.connect(url, origin=origin, open_timeout=20, ping_interval=25, max_size=2**20) as ws:
                viewer.opens.append(time.time() - t0)
                retry = 0
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    while True:
                        receive = asyncio.ensure_future(ws.recv())
                        done, _ = await asyncio.wait([receive, stopper], return_when=asyncio.FIRST_COMPLETED)
                        if stopper in done:
                            receive.cancel()
                            return
                        viewer.show(receive.result(), time.time() - t0)
                finally:
                    stopper.cancel()
        except Exception:  # any close or failure: reconnect, as the page does
            pass
        viewer.closes.append(time.time() - t0)
        try:
            await asyncio.wait_for(stop.wait(), reconnect_delay(retry))
        except TimeoutError:
            retry += 1


async def main(url: str, origin: str, count: int, out: str, t0: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    viewers = [Viewer() for _ in range(count)]
    tasks = []
    for viewer in viewers:
        tasks.append(asyncio.ensure_future(watch(url, origin, viewer, t0, stop)))
        await asyncio.sleep(0.01)  # a ramp, not a thundering herd of handshakes
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(bool(v.opens) for v in viewers) < count:
        await asyncio.sleep(0.2)
    print(f"READY {sum(bool(v.opens) for v in viewers)}", flush=True)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out, "w") as file:
        json.dump([v.__dict__ for v in viewers], file)


if __name__ == "__main__":
    url, origin, count, out, t0 = sys.argv[1:6]
    asyncio.run(main(url, origin, int(count), out, float(t0)))
