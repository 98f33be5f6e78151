"""`manage.py broadcast`: the broadcaster process of the production stack."""

import asyncio
import contextlib
import signal

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime.broadcaster import TICK_SECONDS, Broadcaster
from realtime.leadership import BroadcastLease


class Command(BaseCommand):
    help = "Pushes changed polls' results to their live viewers (at most 4 ticks a second) until stopped."

    def handle(self, *args, **options):
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                "No shared channel layer (REDIS_URL is not set): in embedded mode the ASGI process "
                "runs the broadcaster itself, so this command has nobody to push to."
            )
        lease = BroadcastLease.from_url(settings.REDIS_URL)
        self.stdout.write(
            f"Broadcasting every {TICK_SECONDS}s via {type(layer).__name__} while holding the lease "
            f"{lease.key} (as {lease.holder}; other broadcasters stand by)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_until_stopped(Broadcaster(layer, lease=lease)))


async def _until_stopped(broadcaster: Broadcaster) -> None:
    """Runs `broadcaster` until SIGTERM or SIGINT; either cancels it, which releases its lease, so a
    standby takes over at its next tick (a rollout, `make stack`'s Ctrl-C) rather than LEASE_SECONDS later."""
    running = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for stop in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop, running.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await broadcaster.run()
