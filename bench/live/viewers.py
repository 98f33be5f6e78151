"""WebSocket viewers for `make bench-live`: N sockets on one poll or event, each recording what it receives.

Run by bench/live/run.py, one or more processes. Prints `READY <connected> <failed>` once every
socket is open, then records until SIGTERM and writes a JSON summary: per viewer the number of
pushes, the highest version seen and how many times a version went back; for the traced viewers
(a sample, or every socket with `--traced` = `--count`) every (receive time, version) pair, the
version being the first `data-version` of the message, its root's.

With `--commands` it also answers the runner on stdin while it records, so the runner can pace
itself on what the screens show: `WAIT <version> <seconds>` waits until every socket that opened
has received that version or a later one, or the seconds pass, then prints `HAVE <sockets> <of>`.
"""

import argparse
import asyncio
import json
import re
import signal
import sys
import time

import websockets

VERSION = re.compile(rb'data-version="(\d+)"')


class Viewer:
    __slots__ = ("messages", "highest", "went_back", "trace", "close_code", "closed_early", "opened")

    def __init__(self, traced: bool) -> None:
        self.opened = False
        self.messages = 0
        self.highest = -1
        self.went_back = 0
        self.trace: list[tuple[float, int]] | None = [] if traced else None
        self.close_code: int | None = None
        self.closed_early = False

    def receive(self, message: bytes | str) -> None:
        now = time.time()
        self.messages += 1
        match = VERSION.search(message.encode() if isinstance(message, str) else message)
        if not match:
            return
        version = int(match.group(1))
        if version < self.highest:
            self.went_back += 1
        self.highest = max(self.highest, version)
        if self.trace is not None:
            self.trace.append((now, version))


async def watch(url: str, origin: str, viewer: Viewer, opened: asyncio.Event, stop: asyncio.Event, failures: list):
    try:
        async with websockets.connect(url, origin=origin, open_timeout=120, ping_interval=None, max_size=2**20) as ws:
            viewer.opened = True
            opened.set()
            receiver = asyncio.ensure_future(_receive_all(ws, viewer))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait([receiver, stopper], return_when=asyncio.FIRST_COMPLETED)
            viewer.closed_early = not stop.is_set()
            receiver.cancel()
            stopper.cancel()
            viewer.close_code = ws.close_code
    except Exception as error:  # recorded and reported: a failed viewer is a finding, not a crash
        failures.append(repr(error)[:200])
        opened.set()


async def _receive_all(ws, viewer: Viewer) -> None:
    async for message in ws:
        viewer.receive(message)


async def serve_commands(viewers: list[Viewer]) -> None:
    """Answers the runner's `WAIT <version> <seconds>` lines on stdin until it closes (see the module's doc)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command, *words = line.decode().split()
        if command != "WAIT":
            print(f"UNKNOWN {command}", flush=True)
            continue
        version, deadline = int(words[0]), loop.time() + float(words[1])
        opened = [viewer for viewer in viewers if viewer.opened]
        # Polled: it only decides when the runner goes on, never a time that is measured.
        while (have := sum(viewer.highest >= version for viewer in opened)) < len(opened) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        print(f"HAVE {have} {len(opened)}", flush=True)


async def main(args) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    trace_every = max(1, args.count // args.traced)
    viewers = [Viewer(traced=i % trace_every == 0) for i in range(args.count)]
    failures: list[str] = []
    tasks = []
    handshakes = asyncio.Semaphore(args.concurrency)

    async def start(i: int, viewer: Viewer) -> None:
        opened = asyncio.Event()
        async with handshakes:
            url = args.urls[i % len(args.urls)]
            tasks.append(asyncio.ensure_future(watch(url, args.origin, viewer, opened, stop, failures)))
            await opened.wait()

    await asyncio.gather(*(start(i, viewer) for i, viewer in enumerate(viewers)))
    print(f"READY {args.count - len(failures)} {len(failures)}", flush=True)
    commands = asyncio.ensure_future(serve_commands(viewers)) if args.commands else None
    await stop.wait()
    if commands is not None:
        commands.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    summary = {
        "failures": failures[:20],
        "failed": len(failures),
        "messages": [v.messages for v in viewers],
        "went_back": sum(v.went_back for v in viewers),
        "closed_early": sum(1 for v in viewers if v.closed_early),
        "close_codes": sorted({v.close_code for v in viewers if v.close_code is not None}),
        "traces": [v.trace for v in viewers if v.trace is not None],
    }
    with open(args.output, "w") as out:
        json.dump(summary, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", dest="urls", action="append", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--traced", type=int, default=100, help="viewers whose every push is kept")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--output", required=True)
    parser.add_argument("--commands", action="store_true", help="answer WAIT lines on stdin (see above)")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
