"""Per-step measurements at 0.1 ms resolution, gathered by Locust's master from its workers.

Locust's own statistics round response times to whole milliseconds (10 ms above 100 ms), too
coarse to compare a 4 ms p95 with a 5 ms one. Every worker keeps a histogram per request name
with 0.1 ms buckets below 100 ms, sends it with each report to the master (then starts over),
and the master adds the reports into the window of the step being measured.
"""

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

# Request types that are not HTTP requests: they are kept apart from the HTTP percentiles.
WS = "WS"
# What the hall's phones time (a WS request of that name): the server opened a question → the phone shows it.
PUSH = "push: question opened → shown"


def window_start(now: float, *, round_seconds: float, aligned: bool) -> float:
    """When a step's measured window starts: at once, or at the start of a question round.

    The hall acts on rounds: its presenter opens a question a second into each (`Presenter` in
    loadtest/locustfile.py) and the phones vote 2–15 s later, then all is quiet until the next. A
    window that starts with a round holds whole bursts, every step alike, and its edges fall in
    quiet time. Started at any moment, a 60 s window could hold the end of one burst and the start
    of the next (make loadtest at 2,000 users: 60% busy in its first second, 78% in its last), so
    what a step measured depended on where its window fell. A round that began under a second ago
    still counts: its question has not opened.
    """
    if not aligned or round_seconds <= 0:  # no think time, no rounds
        return now
    this_round = now // round_seconds * round_seconds
    return this_round if now - this_round < 1.0 else this_round + round_seconds


def vote_window(seconds: float, *, round_seconds: float, wait_scale: float) -> int | None:
    """The hall presenter's vote window, in whole seconds as the API takes them (5 at least). None in a
    closed loop: no rounds, one question open the whole run."""
    if round_seconds * wait_scale <= 0:
        return None
    return max(5, round(seconds * wait_scale))


def bucket_of(milliseconds: float) -> float:
    """0.1 ms resolution below 100 ms, 1 ms above: a few thousand buckets at most."""
    if milliseconds < 100:
        return round(milliseconds, 1)
    return float(round(milliseconds))


@dataclass
class Series:
    """Counts, failures and the latency histogram of one request name."""

    count: int = 0
    failures: int = 0
    histogram: dict[float, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, milliseconds: float, error: str | None) -> None:
        self.count += 1
        self.histogram[bucket_of(milliseconds)] += 1
        if error is not None:
            self.failures += 1
            self.errors[error[:200]] += 1

    def merge(self, other: dict) -> None:
        self.count += other["count"]
        self.failures += other["failures"]
        for value, n in other["histogram"]:
            self.histogram[value] += n
        for message, n in other["errors"].items():
            self.errors[message] += n

    def to_message(self) -> dict:
        return {
            "count": self.count,
            "failures": self.failures,
            "histogram": [[value, n] for value, n in self.histogram.items()],
            "errors": dict(self.errors),
        }

    def percentile(self, share: float) -> float | None:
        """The latency under which `share` of the requests finished (nearest rank)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(share * self.count))
        seen = 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            if seen >= rank:
                return value
        return max(self.histogram)

    def mean(self) -> float | None:
        if not self.count:
            return None
        return sum(value * n for value, n in self.histogram.items()) / self.count


class Collector:
    """Series by "<type> <name>"; workers drain theirs into reports, the master merges them."""

    def __init__(self) -> None:
        self.series: dict[str, Series] = defaultdict(Series)

    def record(self, request_type: str, name: str, milliseconds: float, error: str | None) -> None:
        self.series[f"{request_type} {name}"].add(milliseconds, error)

    def drain(self) -> dict:
        message = {key: series.to_message() for key, series in self.series.items()}
        self.series = defaultdict(Series)
        return message

    def merge(self, message: dict) -> None:
        for key, series in message.items():
            self.series[key].merge(series)

    def reset(self) -> None:
        self.series = defaultdict(Series)

    def summary(self, seconds: float) -> dict:
        """What a step's record keeps: per name and for all HTTP requests together."""
        http = Series()
        everything = Series()
        names = {}
        for key, series in sorted(self.series.items()):
            names[key] = _figures(series, seconds)
            message = series.to_message()
            everything.merge(message)
            if not key.startswith(f"{WS} "):
                http.merge(message)
        return {
            "seconds": seconds,
            "http": _figures(http, seconds),
            "all": _figures(everything, seconds),
            "names": names,
        }


def _figures(series: Series, seconds: float) -> dict:
    return {
        "requests": series.count,
        "failures": series.failures,
        "rps": series.count / seconds if seconds else 0.0,
        "error_pct": 100.0 * series.failures / series.count if series.count else 0.0,
        "p50": series.percentile(0.50),
        "p95": series.percentile(0.95),
        "p99": series.percentile(0.99),
        "mean": series.mean(),
        "max": max(series.histogram) if series.histogram else None,
        "errors": dict(sorted(series.errors.items(), key=lambda item: -item[1])[:10]),
    }


def append_record(path, record: dict) -> None:
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")
