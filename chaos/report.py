"""The chaos section of docs/reliability.md, written between markers so other sections (a soak run) stay."""

import re
import time
from pathlib import Path

START, END = "<!-- chaos:start -->", "<!-- chaos:end -->"
FAULTS = {
    "worker": "kill -9 the Celery worker, restart after 5 s",
    "redis": "kill -9 Redis (AOF everysec), restart after 5 s",
    "postgres": "SIGSTOP PostgreSQL (all its processes), then SIGCONT",
    "gunicorn": "kill -9 one gunicorn instance (master and workers), restart after 5 s",
    "asgi": "kill -9 one ASGI instance with the viewers connected, restart after 5 s",
    "void": "a script stuffs 300 ballots into one poll from one network; its owner voids the burst meanwhile",
}


def one_line(result: dict) -> str:
    h, i = result["history"], result["integrity"]
    failed = [name for name, ok in result["verdicts"].items() if not ok]
    return (
        f"{h['attempts']} attempts, {h['acknowledged']} acknowledged, {h['refused']} refused {h['refused_by_status']}, "
        f"{h['unknown']} unknown; lost {i['missing']}, duplicated {i['repeated']}; "
        f"tallies settled after {result['tallies_settled_after']} s; " + ("PASS" if not failed else f"FAIL {failed}")
    )


def _cell(value) -> str:
    return "–" if value is None else str(value)


def table(results: list[dict]) -> str:
    lines = [
        "| scenario | attempts | acknowledged | refused (status: n) | unknown | lost | duplicated "
        "| 2xx in pause | 503 + Retry-After in pause | tallies = record after (s) | viewers right ≤ 70 s | result |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        h, i, v = r["history"], r["integrity"], r["viewers"]
        refused = ", ".join(f"{status}: {n}" for status, n in h["refused_by_status"].items()) or "0"
        viewers = f"{v['right_within_deadline']}/{v['viewers']} ({v['right_share']:.1%})" if v else "–"
        ok = all(r["verdicts"].values())
        lines.append(
            f"| {r['scenario']} | {h['attempts']} | {h['acknowledged']} | {refused} | {h['unknown']} | {i['missing']} "
            f"| {i['repeated'] + h['acknowledged_twice']} | {_cell(h.get('pause_2xx'))} "
            f"| {_cell(h.get('pause_503_retry_after'))} | {_cell(r['tallies_settled_after'])} | {viewers} "
            f"| {'pass' if ok else 'FAIL'} |"
        )
    return "\n".join(lines)


def section(results: list[dict], *, args, machine: dict, started: float, run_dir: Path) -> str:
    command = "make chaos" + (f' CHAOS_ARGS="{args.raw}"' if getattr(args, "raw", "") else "")
    load = "load average (1, 5, 15 min) {:.2f}, {:.2f}, {:.2f}"
    parts = [
        START,
        "## Fault injection (`make chaos`)",
        "",
        f"- Command: `{command}` (scenarios {', '.join(args.scenarios)}; {args.attempts} vote attempts each, "
        f"{args.viewers} viewers in the ASGI scenario, PostgreSQL paused {args.pause_seconds:g} s).",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{round((time.time() - started) / 60, 1)} min in all.",
        f"- Machine: {machine['cores']} cores; before the run {load.format(*machine['load_before'])}, "
        f"after it {load.format(*machine['load_after'])}.",
        "- Changed for the run: rate limits off (`RATELIMIT_ENABLE=0`), since every client comes from 127.0.0.1. "
        "The stack runs on its own PostgreSQL 15 cluster (fsync on) and redis-server (appendonly, "
        "appendfsync everysec) on free ports of 56000–56099, never the machine's shared ones.",
        "",
        "| scenario | fault |",
        "| --- | --- |",
        *(
            f"| {r['scenario']} | {FAULTS[r['scenario']]} (at {r['fault']['fault_at']:.1f} s, "
            f"recovered at {r['fault']['recovered_at']:.1f} s of ~60 s of votes) |"
            for r in results
        ),
        "",
        table(results),
        "",
        "Criteria per scenario:",
        "",
    ]
    for r in results:
        marks = "; ".join(f"{name} {'✔' if ok else '✘ FAILED'}" for name, ok in r["verdicts"].items())
        parts.append(f"- **{r['scenario']}**: {marks}.")
    parts += [
        "",
        "How to read it: *acknowledged* is a 201 from the API or the form's 302; *refused* any other "
        "answer; *unknown* a timeout (10 s) or a dropped connection. *Lost* counts acknowledged votes "
        "missing from PostgreSQL, *duplicated* (poll, voter) pairs with more than one ballot or "
        "acknowledged twice. During the pause, answers finished more than 1 s after SIGSTOP and before "
        "SIGCONT are counted. *Tallies* is the time from recovery until the results the API shows lay, "
        "at every later sample (one a second), between PostgreSQL's counts of the previous sample and "
        "just after them, and equal them once votes stopped. A vote refused with 503 during the pause may still have "
        "committed after SIGCONT: that is an unknown outcome for its client, never a lost or "
        "duplicated vote (see *unacknowledged ballots* in the run's result.json files).",
        "",
        f"Raw histories, logs and per-scenario result.json: `{run_dir}` (not kept in the repository).",
        END,
    ]
    return "\n".join(parts)


def write(path: Path, results: list[dict], **context) -> None:
    text = section(results, **context)
    existing = path.read_text() if path.exists() else "# Reliability\n\n"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: text, existing)
    else:
        updated = existing.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n")
