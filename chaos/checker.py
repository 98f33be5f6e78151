"""What each scenario must show, computed from its history, the record and what viewers saw.

Criteria (the issue's): nothing acknowledged is lost or counted twice; while PostgreSQL is paused
no vote is confirmed, each is refused with 503 and Retry-After; the tallies equal the record within
30 s of recovery; at least 99% of viewers are connected again and show the right count within 70 s.
"""

import statistics
from collections import Counter

TALLY_DEADLINE_SECONDS = 30
VIEWER_DEADLINE_SECONDS = 70
VIEWERS_NEEDED = 0.99
# Answers finished this soon after SIGSTOP may have been computed before it.
PAUSE_MARGIN_SECONDS = 1.0


def history_summary(history: list[dict], *, pause: tuple[float, float] | None = None) -> dict:
    outcomes = Counter(attempt["outcome"] for attempt in history)
    refused = Counter(str(attempt["status"]) for attempt in history if attempt["outcome"] == "refused")
    acked = Counter((a["poll"], a["voter"]) for a in history if a["outcome"] == "acknowledged")
    summary = {
        "attempts": len(history),
        "acknowledged": outcomes["acknowledged"],
        "refused": outcomes["refused"],
        "refused_by_status": dict(sorted(refused.items())),
        "unknown": outcomes["unknown"],
        "acknowledged_twice": sum(1 for n in acked.values() if n > 1),
    }
    if pause:
        start, end = pause[0] + PAUSE_MARGIN_SECONDS, pause[1]
        during = [a for a in history if start <= a["t_done"] < end]
        summary["pause_answers"] = len(during)
        summary["pause_2xx"] = sum(1 for a in during if a["outcome"] == "acknowledged")
        summary["pause_503_retry_after"] = sum(1 for a in during if a["status"] == 503 and a["retry_after"])
        summary["pause_other"] = len(during) - summary["pause_2xx"] - summary["pause_503_retry_after"]
    return summary


def tallies_settled_after(samples: list[tuple[float, bool]], *, recovered_at: float) -> float | None:
    """Seconds from recovery until every later sample matched the record; None if the last one did not."""
    if not samples or not samples[-1][1]:
        return None
    settled = samples[-1][0]
    for t, matched in reversed(samples):
        if not matched:
            break
        settled = t
    return round(max(0.0, settled - recovered_at), 1)


def viewers_summary(viewers: list[dict], *, fault_at: float, record_total: int) -> dict:
    """Viewers connected at the end, showing the record's total, since when (relative to the fault)."""
    right, reconnect_delays, dropped = [], [], 0
    for viewer in viewers:
        if any(close >= fault_at for close in viewer["closes"]):
            dropped += 1
            later = [t for t in viewer["opens"] if t >= fault_at]
            if later:
                reconnect_delays.append(later[0] - fault_at)
        connected = bool(viewer["opens"]) and len(viewer["opens"]) > len(viewer["closes"])
        if connected and viewer["total"] == record_total:
            right.append(max(0.0, viewer["total_since"] - fault_at))
    right.sort()
    within = sum(1 for t in right if t <= VIEWER_DEADLINE_SECONDS)
    return {
        "viewers": len(viewers),
        "dropped": dropped,
        "reconnected": len(reconnect_delays),
        "reconnect_p50": _rounded(statistics.median(reconnect_delays)) if reconnect_delays else None,
        "reconnect_max": _rounded(max(reconnect_delays)) if reconnect_delays else None,
        "right_count": len(right),
        "right_within_deadline": within,
        "right_share": within / len(viewers) if viewers else 0.0,
        # When the 99th percentile viewer showed the right count (seconds after the fault).
        "right_p99_at": _rounded(right[int(VIEWERS_NEEDED * len(viewers)) - 1])
        if len(right) >= VIEWERS_NEEDED * len(viewers) and viewers
        else None,
    }


def verdicts(result: dict) -> dict[str, bool]:
    """criterion -> passed, for the criteria that apply to this scenario."""
    integrity = result["integrity"]
    history = result["history"]
    checks = {
        "lost = 0": integrity["missing"] == 0,
        "duplicated = 0": integrity["repeated"] == 0 and history["acknowledged_twice"] == 0,
        f"tallies = record ≤ {TALLY_DEADLINE_SECONDS} s": result["tallies_settled_after"] is not None
        and result["tallies_settled_after"] <= TALLY_DEADLINE_SECONDS
        and not integrity["tally_mismatches"],
    }
    if "pause_2xx" in history:
        checks["no 2xx in pause"] = history["pause_2xx"] == 0
        checks["503 + Retry-After in pause"] = history["pause_503_retry_after"] > 0 and history["pause_other"] == 0
    if "voided" in result["fault"]:
        checks["burst voided"] = result["fault"]["voided"] > 0
    if result.get("viewers"):
        checks[f"≥99% viewers right ≤ {VIEWER_DEADLINE_SECONDS} s"] = result["viewers"]["right_share"] >= VIEWERS_NEEDED
    return checks


def _rounded(seconds: float) -> float:
    return round(seconds, 1)
