from django.urls import path, re_path

from realtime import consumers

websocket_urlpatterns = [
    path("ws/polls/<str:slug>/", consumers.PollResultsConsumer.as_asgi()),
    # The owner page: results always, whatever the poll's visibility. The token is the one in
    # the owner page's own address, so it reveals nothing new.
    path("ws/polls/<str:slug>/manage/<str:token>/", consumers.PollResultsConsumer.as_asgi()),
    # An event's screens (realtime.event_live): the phones, the big screen, the presenter's console.
    path("ws/events/<str:code>/", consumers.EventConsumer.as_asgi()),
    path("ws/events/<str:code>/live/", consumers.EventConsumer.as_asgi(), {"screen": "screen"}),
    path("ws/events/<str:code>/manage/<str:token>/", consumers.EventConsumer.as_asgi(), {"screen": "presenter"}),
    # Any other path (a typo, an owner link without its trailing slash) is refused at the handshake.
    re_path(r"", consumers.RefuseHandshake.as_asgi()),
]
