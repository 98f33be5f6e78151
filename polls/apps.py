from django.apps import AppConfig


class PollsConfig(AppConfig):
    name = "polls"

    def ready(self) -> None:
        # The poll cache forgets a poll whenever it is saved, updated in bulk or deleted: its
        # receivers must be connected in every process, whatever that process imports first.
        from polls import poll_cache  # noqa: F401
