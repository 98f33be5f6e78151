"""Starting background jobs: the one module of `polls` that enqueues Celery tasks.

Tasks are thin doors that call services (`polls.tasks`), so services never enqueue a task
themselves: that would make the two modules import each other. What starts a job lives here,
above both, and the doors (views) call it.
"""

from kombu.exceptions import OperationalError

from polls import tasks
from polls.exports import poll_export_claim, poll_export_release
from polls.models import Poll
from polls.selectors import poll_export_status


class ExportUnavailable(Exception):
    message = "The export could not be started just now (the task queue is not answering). Try again in a minute."


def poll_export_start(*, poll: Poll) -> bool:
    """Starts writing the poll's export file in the background; returns whether it started one.

    Idempotent: nothing starts while an export of the poll is pending, or while the last file is fresh
    (`selectors.poll_export_status`). In embedded mode the task runs at once, inside this call.
    """
    if poll_export_status(poll=poll).fresh or not poll_export_claim(poll=poll):
        return False
    try:
        tasks.export_poll.delay(poll.id)
    except OperationalError as error:
        poll_export_release(poll=poll)
        raise ExportUnavailable from error
    return True
