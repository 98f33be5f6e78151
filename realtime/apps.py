from django.apps import AppConfig
from django.db.models.signals import post_delete


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from polls.models import Poll
        from realtime.gone import announce_poll_gone

        post_delete.connect(announce_poll_gone, sender=Poll, dispatch_uid="realtime.announce_poll_gone")
