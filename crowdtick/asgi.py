"""ASGI entry point: WebSockets in production; HTTP too in embedded mode (`make run`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crowdtick.settings")

# Django must be set up before anything imports models.
django_http_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.lifespan import lifespan_app  # noqa: E402
from realtime.origin import SameOriginValidator  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_http_app,
        # The Origin must be the site's own: scheme, host and port (realtime/origin.py).
        "websocket": SameOriginValidator(URLRouter(websocket_urlpatterns)),
        # Embedded mode runs the broadcaster in this process (servers started with --lifespan off skip it).
        "lifespan": lifespan_app,
    }
)
