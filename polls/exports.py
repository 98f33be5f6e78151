"""Where a poll's CSV export file lives: one file per poll under `settings.EXPORT_ROOT`.

A Celery task writes it (`polls.services.poll_export_write`) so a poll with a million ballots
is not streamed through a web worker thread; the owner downloads the finished file.

While the task runs, a marker file `<slug>.pending` beside it says so, to web processes and
workers alike (the directory is the volume they share), so a second click starts no second export.
"""

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from polls.models import Poll

# A marker older than this belongs to an export that died with its worker (or whose message the broker
# lost): a new one may start. Longer than the broker's redelivery timeout, so a redelivery is waited for.
PENDING_STALE_AFTER = timedelta(minutes=10)


def poll_export_path(*, poll: Poll) -> Path:
    # The slug is the poll's public, unguessable id; the file is served only behind the owner token.
    return Path(settings.EXPORT_ROOT) / f"{poll.slug}.csv"


def poll_export_file(*, poll: Poll) -> Path | None:
    """The finished export file, or None when none was written yet."""
    path = poll_export_path(poll=poll)
    return path if path.exists() else None


def poll_export_written_at(*, path: Path) -> datetime:
    """When the file's ballots were read (the writer stamps it so), in UTC."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _pending_path(poll: Poll) -> Path:
    return Path(settings.EXPORT_ROOT) / f"{poll.slug}.pending"


def poll_export_pending(*, poll: Poll) -> bool:
    """Whether an export of the poll is queued or being written."""
    try:
        age = time.time() - _pending_path(poll).stat().st_mtime
    except FileNotFoundError:
        return False
    return age < PENDING_STALE_AFTER.total_seconds()


def poll_export_claim(*, poll: Poll) -> bool:
    """Marks an export of the poll as pending; False when one already is (only one caller wins)."""
    marker = _pending_path(poll)
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if marker.exists() and not poll_export_pending(poll=poll):
        marker.unlink(missing_ok=True)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def poll_export_release(*, poll: Poll) -> None:
    _pending_path(poll).unlink(missing_ok=True)
