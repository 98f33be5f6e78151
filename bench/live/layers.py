#!/usr/bin/env python3
"""The Redis cost of one push to a poll group, by channel layer and group size.

Starts a private redis-server (so nothing else pollutes its statistics), puts N channels in one
group with each layer, sends pushes of a 1 KB results fragment, and reports per push: Redis
commands, Redis CPU time (from INFO commandstats), and the sender's wall time. Prints a
Markdown table for docs/benchmarks.md.

    python bench/live/layers.py [--port 8150] [--members 100,1000,5000] [--pushes 40]
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdtick.settings")
os.environ.setdefault("SECRET_KEY", "bench-layers")

from channels_redis.core import RedisChannelLayer  # noqa: E402
from channels_redis.pubsub import RedisPubSubChannelLayer  # noqa: E402

MESSAGE = {"type": "results.push", "html": "x" * 1000, "version": 1}


def redis_usage(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats")
    calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config"))
    usec = sum(v["usec"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config"))
    return calls, usec


async def measure(layer_class, members: int, pushes: int, url: str, client: redis.Redis) -> dict:
    layer = layer_class(hosts=[{"address": url, "socket_timeout": None, "max_connections": 10_000}])
    group = "poll.bench.public"
    for _ in range(members):
        await layer.group_add(group, await layer.new_channel())
    await asyncio.sleep(0.5)
    calls_before, usec_before = redis_usage(client)
    started = time.perf_counter()
    for _ in range(pushes):
        await layer.group_send(group, MESSAGE)
    wall = time.perf_counter() - started
    calls_after, usec_after = redis_usage(client)
    client.flushdb()
    if hasattr(layer, "flush"):
        await layer.flush()
    return {
        "commands": (calls_after - calls_before - 1) / pushes,  # minus the INFO itself
        "redis_ms": (usec_after - usec_before) / pushes / 1000,
        "send_ms": 1000 * wall / pushes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--members", default="100,1000,5000")
    parser.add_argument("--pushes", type=int, default=40)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-layers-")
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(args.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{args.port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        print("| layer | group members | Redis commands per push | Redis CPU ms per push | sender ms per push |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for layer_class in (RedisChannelLayer, RedisPubSubChannelLayer):
            for members in [int(n) for n in args.members.split(",")]:
                row = asyncio.run(measure(layer_class, members, args.pushes, url, client))
                print(
                    f"| {layer_class.__name__} | {members:,} | {row['commands']:.0f} | {row['redis_ms']:.3f} "
                    f"| {row['send_ms']:.2f} |",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
