"""The ASGI lifespan app: in embedded mode the broadcaster runs inside the one ASGI process.

With an in-memory channel layer, pushes can only reach viewers of this very process, so the
broadcaster must live here; with Redis it is a process of its own (`manage.py broadcast`) and
this app only acknowledges the server's lifespan events.
"""

import asyncio
import contextlib

from channels.layers import InMemoryChannelLayer, get_channel_layer

from realtime.broadcaster import Broadcaster


async def lifespan_app(scope, receive, send):
    task: asyncio.Task | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            layer = get_channel_layer()
            if isinstance(layer, InMemoryChannelLayer):
                task = asyncio.create_task(Broadcaster(layer).run(), name="embedded-broadcaster")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await send({"type": "lifespan.shutdown.complete"})
            return
