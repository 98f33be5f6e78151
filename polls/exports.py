"""Where a poll's CSV export file lives: one file per poll under `settings.EXPORT_ROOT`.

A Celery task writes it (`polls.services.poll_export_write`) so a poll with a million ballots
is not streamed through a web worker thread; the owner downloads the finished file.
"""

from pathlib import Path

from django.conf import settings

from polls.models import Poll


def poll_export_path(*, poll: Poll) -> Path:
    # The slug is the poll's public, unguessable id; the file is served only behind the owner token.
    return Path(settings.EXPORT_ROOT) / f"{poll.slug}.csv"


def poll_export_file(*, poll: Poll) -> Path | None:
    """The finished export file, or None when none was written yet."""
    path = poll_export_path(poll=poll)
    return path if path.exists() else None
