"""`manage.py broadcast`: the broadcaster process of the production stack."""

import asyncio
import contextlib

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from realtime.broadcaster import TICK_SECONDS, Broadcaster


class Command(BaseCommand):
    help = "Pushes changed polls' results to their live viewers (at most 4 ticks a second) until stopped."

    def handle(self, *args, **options):
        layer = get_channel_layer()
        if isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                "No shared channel layer (REDIS_URL is not set): in embedded mode the ASGI process "
                "runs the broadcaster itself, so this command has nobody to push to."
            )
        self.stdout.write(f"Broadcasting every {TICK_SECONDS}s via {type(layer).__name__}")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(Broadcaster(layer).run())
