from django.urls import path

from realtime import consumers

websocket_urlpatterns = [
    path("ws/polls/<str:slug>/", consumers.PollResultsConsumer.as_asgi()),
]
