"""Celery tasks: thin doors that take ids and call a service. Every one is idempotent, so a
redelivery (acks_late, a worker lost mid-task) or a duplicate beat tick changes nothing."""

from celery import shared_task

from polls import selectors, services, upkeep


@shared_task
def reconcile_tallies() -> int:
    """Beat: repairs the cached tallies of active and stale-marked polls against the record."""
    return upkeep.tallies_reconcile()


@shared_task
def announce_deadlines() -> int:
    """Beat: announces polls whose opening time or deadline passed, so every screen shows it."""
    return upkeep.poll_deadlines_announce()


@shared_task
def refresh_vote_minutes() -> int:
    """Beat: stores the per-minute vote counts of active polls for the owner's chart."""
    return upkeep.vote_minutes_refresh()


@shared_task
def archive_idle_polls() -> int:
    """Beat: archives the polls without activity for POLL_ARCHIVE_AFTER_DAYS days."""
    return upkeep.polls_archive_idle()


@shared_task
def end_idle_events() -> int:
    """Beat: ends the events left running without a change for POLL_ARCHIVE_AFTER_DAYS days."""
    return upkeep.events_end_idle()


@shared_task
def export_poll(poll_id: int) -> str | None:
    """Writes a poll's CSV export file; a poll deleted meanwhile needs none."""
    polls = selectors.polls_with_choices(poll_ids=[poll_id])
    return str(services.poll_export_write(poll=polls[0])) if polls else None
