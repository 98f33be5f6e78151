"""WebSocket consumers: one group per poll; pushes come from the broadcaster."""

from channels.generic.websocket import AsyncWebsocketConsumer


class PollResultsConsumer(AsyncWebsocketConsumer):
    """Joins the poll's group and forwards what the broadcaster sends.

    Until live results land (issue 4) this only accepts and joins, so pages keep working.
    """

    async def connect(self):
        self.group_name = f"poll.{self.scope['url_route']['kwargs']['slug']}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def results_push(self, event):
        await self.send(text_data=event["html"])
