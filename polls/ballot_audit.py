"""Reads for the owner's ballot audit: how concentrated a poll's ballots are by network and by
minute, and which network-minutes look like ballot stuffing.

"One vote per browser" cannot stop a script that drops its cookie (or sends a new voter key to the
API) on every vote: each ballot is a new voter. What such a script cannot hide is its network (the
ballot's `ip_hash`: the salted hash of the client's network, `polls.voters.address_network`) and
its pace. So the owner sees both, and the bursts the poll's own history cannot explain are flagged
for the owner to void (`polls.services.ballots_void_burst`). Void ballots are counted nowhere here.

Each read is one grouped query over this poll's ballots only: `poll_id = %s` is answered by an
index that starts with the poll (ballot_poll_time_idx), never by scanning other polls' ballots
(docs/explain.md). They run when the owner page renders or refreshes (every 30 s), never per vote.
Written in SQL because window functions over a grouped query (a share of the total, a median)
are beyond the ORM; the minute is a whole number (seconds since 1970 / 60) on both databases.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection

from polls.models import Ballot, Poll

# A burst is this many ballots or more from one network within one window...
BURST_WINDOW = timedelta(minutes=1)
# ...and never fewer than this: a class or a meeting room behind one router casts a few dozen ballots
# in a minute, and the hall behind one Wi-Fi is what the factor below is for; the finding was 5,000.
BURST_MIN_BALLOTS = 100
# ...and at least this many times the poll's typical network-minute (the median over the network-
# minutes with ballots): a poll where everyone shares one network has a high median, so its own
# pace is not flagged; a median, not a mean, so the burst cannot raise its own bar.
BURST_FACTOR = 10
# The most rows each list shows: enough to see a pattern, few enough for a phone.
TOP_ROWS = 5
BURSTS_SHOWN = 20
VOIDS_SHOWN = 10

_table = Ballot._meta.db_table


@dataclass(frozen=True)
class NetworkShare:
    network: str  # the network's salted hash; "" when the ballot came without an address
    ballots: int
    percent: int  # of the poll's counted ballots, rounded

    @property
    def short(self) -> str:
        return self.network[:10] if self.network else "no address"


@dataclass(frozen=True)
class MinuteShare:
    minute: datetime
    ballots: int
    percent: int


@dataclass(frozen=True)
class Burst:
    network: str
    minute: datetime  # the window's start
    ballots: int

    @property
    def short(self) -> str:
        return self.network[:10]

    @property
    def ends(self) -> datetime:
        return self.minute + BURST_WINDOW

    @property
    def minute_number(self) -> int:
        """The window's start as the void form sends it back: whole minutes since 1970."""
        return int(self.minute.timestamp()) // 60


@dataclass(frozen=True)
class VoidedGroup:
    voided_at: datetime
    reason: str
    ballots: int


@dataclass(frozen=True)
class BallotAudit:
    total: int  # counted (not void) ballots
    networks: int  # distinct networks among them
    top_networks: list[NetworkShare]
    busiest_minutes: list[MinuteShare]
    bursts: list[Burst]
    typical: int  # the poll's median ballots per network-minute
    threshold: int  # a network-minute at or above it is a burst
    voided: list[VoidedGroup]

    @classmethod
    def of_no_ballots(cls) -> "BallotAudit":
        """The audit of a poll that has no ballot, counted or void: what the four queries would find."""
        return cls(
            total=0,
            networks=0,
            top_networks=[],
            busiest_minutes=[],
            bursts=[],
            typical=0,
            threshold=BURST_MIN_BALLOTS,
            voided=[],
        )

    @property
    def top_share(self) -> int:
        return self.top_networks[0].percent if self.top_networks else 0


def _minute_sql() -> str:
    """The ballot's minute as a whole number, on either database."""
    if connection.vendor == "postgresql":
        return "(floor(extract(epoch FROM submitted_at) / 60))::bigint"
    return "(CAST(strftime('%%s', submitted_at) AS INTEGER) / 60)"  # %% : the query has parameters


def minute_from_number(number: int) -> datetime:
    """The minute a whole number of minutes since 1970 names (`Burst.minute_number`, the void form)."""
    return datetime.fromtimestamp(int(number) * 60, tz=UTC)


def _percent(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def ballot_networks_top(*, poll: Poll, limit: int = TOP_ROWS) -> tuple[list[NetworkShare], int, int]:
    """The networks with the most counted ballots, the poll's counted ballots and its networks."""
    rows = _rows(
        f"""SELECT ip_hash, count(*) AS n, sum(count(*)) OVER () AS total, count(*) OVER () AS networks
            FROM {_table} WHERE poll_id = %s AND voided_at IS NULL
            GROUP BY ip_hash ORDER BY n DESC, ip_hash LIMIT %s""",
        [poll.id, limit],
    )
    total, networks = (int(rows[0][2]), int(rows[0][3])) if rows else (0, 0)
    shares = [NetworkShare(network=row[0], ballots=row[1], percent=_percent(row[1], total)) for row in rows]
    return shares, total, networks


def ballot_minutes_busiest(*, poll: Poll, limit: int = TOP_ROWS) -> list[MinuteShare]:
    """The minutes with the most counted ballots, with their share of the poll's ballots."""
    rows = _rows(
        f"""SELECT {_minute_sql()} AS minute, count(*) AS n, sum(count(*)) OVER () AS total
            FROM {_table} WHERE poll_id = %s AND voided_at IS NULL
            GROUP BY minute ORDER BY n DESC, minute DESC LIMIT %s""",
        [poll.id, limit],
    )
    return [
        MinuteShare(minute=minute_from_number(row[0]), ballots=row[1], percent=_percent(row[1], int(row[2])))
        for row in rows
    ]


def ballot_bursts(*, poll: Poll, limit: int = BURSTS_SHOWN) -> tuple[list[Burst], int, int]:
    """The network-minutes with more counted ballots than the poll's history explains, busiest first,
    with the poll's median ballots per network-minute and the bar a burst reaches.

    Ballots without an address (no network to blame) are left out.
    """
    rows = _rows(
        f"""WITH cells AS (
                SELECT ip_hash, {_minute_sql()} AS minute, count(*) AS n
                FROM {_table} WHERE poll_id = %s AND voided_at IS NULL AND ip_hash <> ''
                GROUP BY ip_hash, minute
            ), ranked AS (
                SELECT n, row_number() OVER (ORDER BY n) AS position, count(*) OVER () AS cells FROM cells
            ), typical AS (
                SELECT coalesce(max(n), 0) AS n FROM ranked WHERE position = (cells + 1) / 2
            )
            SELECT cells.ip_hash, cells.minute, cells.n, typical.n
            FROM typical LEFT JOIN cells ON cells.n >= %s AND cells.n >= %s * typical.n
            ORDER BY cells.n DESC, cells.minute DESC LIMIT %s""",
        [poll.id, BURST_MIN_BALLOTS, BURST_FACTOR, limit],
    )
    typical = int(rows[0][3]) if rows else 0
    bursts = [
        Burst(network=row[0], minute=minute_from_number(row[1]), ballots=row[2]) for row in rows if row[0] is not None
    ]
    return bursts, typical, max(BURST_MIN_BALLOTS, BURST_FACTOR * typical)


def ballot_voids(*, poll: Poll, limit: int = VOIDS_SHOWN) -> list[VoidedGroup]:
    """The poll's void ballots, grouped by the owner's action that voided them, latest first."""
    rows = _rows(
        f"""SELECT voided_at, void_reason, count(*) FROM {_table}
            WHERE poll_id = %s AND voided_at IS NOT NULL
            GROUP BY voided_at, void_reason ORDER BY voided_at DESC LIMIT %s""",
        [poll.id, limit],
    )
    return [VoidedGroup(voided_at=_as_datetime(row[0]), reason=row[1], ballots=row[2]) for row in rows]


def _as_datetime(value: datetime | str) -> datetime:
    """SQLite hands raw SQL its timestamps as text."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def ballot_audit(*, poll: Poll) -> BallotAudit:
    """Everything the owner page shows about the poll's ballots: four grouped queries."""
    top, total, networks = ballot_networks_top(poll=poll)
    bursts, typical, threshold = ballot_bursts(poll=poll)
    return BallotAudit(
        total=total,
        networks=networks,
        top_networks=top,
        busiest_minutes=ballot_minutes_busiest(poll=poll),
        bursts=bursts,
        typical=typical,
        threshold=threshold,
        voided=ballot_voids(poll=poll),
    )
