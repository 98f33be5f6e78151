#!/usr/bin/env python3
"""Writes REPORT.md and its charts from a run directory of loadtest/run.py.

Usage: python loadtest/report.py RUN_DIR [--out docs/loadtest]
RUN_DIR holds a directory per profile run (hall/, public/), or is one profile's own directory.
Each has meta.json, steps.jsonl (one record per measured step) and samples.jsonl (CPU and memory
each second); notes kept by hand in loadtest/NOTES.md are appended as the reading of the figures.
"""

import argparse
import json
import re
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from loadtest import stepstats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "loadtest" / "NOTES.md"
# The hall's push latency: a question opened → shown on a phone; before the hall ran as an event, a vote
# acknowledged → shown on a live screen of its poll.
PUSH = f"{stepstats.WS} {stepstats.PUSH}"
PUSH_BEFORE_EVENTS = "WS push: vote acknowledged → shown"
PROFILE_TITLES = {"hall": "Hall", "public": "Public site"}
# The public site's actions, by the names Locust records them under.
CREATES = ("POST /polls/new/", "POST /api/polls/")
FORM_VOTE, API_VOTE = "POST /p/[slug]/vote/", "POST /api/votes/"
PAGE_READ, API_READ = "GET /p/[slug]/results/", "GET /api/polls/[id]/results/"
# Roles every CPU table lists, sampled or not: their work follows the polls with votes, not the requests.
WATCHED_ROLES = ("broadcaster", "celery worker")
SLOW_MS = 200
TARGET_P95_AT_1000_MS = 50
TARGET_RATIO_2000_TO_100 = 1.5
BUSY_SHARE = 0.9  # a core (or the machine) busier than this is saturated
# The voters of a hall get each question at the same second, so a step's load comes in bursts and
# its average CPU hides a saturated burst: the report also shows the step's busiest seconds.
BURST_SECONDS = 10
# A line of nginx's access log (deploy/nginx/crowdtick.conf.template): its time, request, $request_time
# and $msec (the time to the millisecond; lines of runs before it have only the whole second).
NGINX_LINE = re.compile(r'\[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) .*? (\d+\.\d+)(?: (\d{9,}\.\d{3}))?$')


def load(run_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    meta = json.loads((run_dir / "meta.json").read_text())
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines() if line.strip()]
    samples_path = run_dir / "samples.jsonl"
    samples = (
        [json.loads(line) for line in samples_path.read_text().splitlines() if line.strip()]
        if (samples_path.exists())
        else []
    )
    served = nginx_request_times(run_dir / "stack" / "nginx-access.log")
    for step in steps:
        step["resources"] = resources(samples, step["started_at"], step["ended_at"])
        step["burst"] = busiest_window(samples, step["started_at"], step["ended_at"])
        step["peak_second"] = busiest_window(samples, step["started_at"], step["ended_at"], seconds=1)
        step["nginx"] = percentiles([ms for t, ms in served if step["started_at"] <= t < step["ended_at"]])
    for ceiling in (meta.get("ceiling"), meta.get("mix_ceiling")):
        if ceiling:
            ceiling["resources"] = resources(samples, ceiling["started_at"], ceiling["ended_at"])
    return meta, steps, samples


def profile_of(meta: dict) -> str:
    return meta["options"].get("profile", "hall")  # runs from before there were profiles were the hall


def runs_in(run_dir: Path) -> dict[str, Path]:
    """Each profile's directory: RUN_DIR itself when `run.run()` wrote it directly (the soak, the smoke tests,
    runs from before there were profiles), else RUN_DIR/hall and RUN_DIR/public as `make loadtest` writes them."""
    if (run_dir / "meta.json").exists():
        return {profile_of(json.loads((run_dir / "meta.json").read_text())): run_dir}
    runs = {profile: run_dir / profile for profile in PROFILE_TITLES if (run_dir / profile / "meta.json").exists()}
    if not runs:
        raise FileNotFoundError(f"no meta.json in {run_dir}, nor in its hall/ or public/")
    return runs


def resources(samples: list[dict], start: float, end: float) -> dict:
    """CPU (in cores) and memory per role over [start, end], from the samples nearest its ends."""
    inside = [s for s in samples if start <= s["t"] <= end]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    seconds = last["t"] - first["t"]
    roles: dict[str, dict] = defaultdict(lambda: {"cores": 0.0, "rss_mb": 0.0, "processes": 0, "hottest": 0.0})
    for pid, (role, cpu_seconds, *_) in last["processes"].items():
        before = first["processes"].get(pid)
        if before is None:
            continue
        cores = (cpu_seconds - before[1]) / seconds
        entry = roles[role]
        entry["cores"] += cores
        entry["processes"] += 1
        entry["hottest"] = max(entry["hottest"], cores)
    for sample in inside:
        for role, _, rss, *_ in sample["processes"].values():
            roles[role]["rss_mb"] += rss / 2**20 / len(inside)
    machine_cores = (last["machine"]["busy"] - first["machine"]["busy"]) / seconds
    machine_share = (last["machine"]["busy"] - first["machine"]["busy"]) / (
        last["machine"]["total"] - first["machine"]["total"]
    )
    measured = sum(entry["cores"] for entry in roles.values())
    return {
        "roles": dict(sorted(roles.items(), key=lambda item: -item[1]["cores"])),
        "machine_cores": machine_cores,
        "machine_busy_pct": 100 * machine_share,
        "others_cores": max(0.0, machine_cores - measured),
    }


def busiest_window(samples: list[dict], start: float, end: float, seconds: float = BURST_SECONDS) -> dict:
    """`resources` over the `seconds` of [start, end] in which the machine was busiest, plus how many
    of the step's sampled seconds the machine spent at least `BUSY_SHARE` busy."""
    inside = [s for s in samples if start <= s["t"] <= end]

    def busy_share(first: dict, last: dict) -> float:
        total = last["machine"]["total"] - first["machine"]["total"]
        return (last["machine"]["busy"] - first["machine"]["busy"]) / total if total else 0.0

    pairs = list(zip(inside, inside[1:], strict=False))
    busiest, later = None, 0
    for first in inside:
        while later < len(inside) and inside[later]["t"] - first["t"] < seconds:
            later += 1
        if later == len(inside):
            break
        share = busy_share(first, inside[later])
        if busiest is None or share > busiest[0]:
            busiest = (share, first["t"], inside[later]["t"])
    if busiest is None:
        return {}
    saturated = [last["t"] - first["t"] for first, last in pairs if busy_share(first, last) >= BUSY_SHARE]
    return {
        **resources(samples, busiest[1], busiest[2]),
        "seconds": busiest[2] - busiest[1],
        "saturated_seconds": sum(saturated),
        "sampled_seconds": inside[-1]["t"] - inside[0]["t"],
    }


def nginx_request_times(path: Path) -> list[tuple[float, float]]:
    """(time, milliseconds) of each HTTP request in nginx's access log, as nginx itself timed it: from the
    request's first byte to the response's last. It leaves out the time a request waited in the load
    generator, which shares the machine; WebSockets (their time is the connection's life) and the
    /healthz ceiling are left out."""
    if not path.exists():
        return []
    times = []
    for line in path.read_text(errors="replace").splitlines():
        match = NGINX_LINE.search(line)
        if match and not match[3].startswith(("/ws/", "/healthz")):
            # The whole second alone put requests of the next step's first moments in a window ending
            # within that second: a step of 100 users got a 43 ms p95 from 16-59 ms requests that came after it.
            at = float(match[6]) if match[6] else datetime.strptime(match[1], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            times.append((at, 1000 * float(match[5])))
    return times


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {f"p{n}": ordered[min(len(ordered) - 1, int(len(ordered) * n / 100))] for n in (50, 95, 99)}


def fmt_ms(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def step_at(steps: list[dict], users: int) -> dict | None:
    return next((step for step in steps if step["users"] == users), None)


def push_series(step: dict) -> dict:
    return step["names"].get(PUSH) or step["names"].get(PUSH_BEFORE_EVENTS) or {}


def vote_attempts_per_minute(step: dict) -> float:
    """Votes sent (first tries and repeats, form and API): what the per-address rate limit counts."""
    votes = sum(figures["requests"] for name, figures in step["names"].items() if "/vote" in name and "POST" in name)
    return 60 * votes / step["seconds"]


def saturation(step: dict) -> str:
    """What ran out at this step, read from the CPU figures of its busiest seconds (of the whole
    step for runs recorded before those were kept)."""
    res = step.get("burst") or step.get("resources") or {}
    if not res:
        return "no resource samples for this step"
    cores = res["machine_cores"]
    top = [(role, entry) for role, entry in res["roles"].items() if entry["cores"] >= 0.05][:4]
    parts = ", ".join(f"{role} {entry['cores']:.2f}" for role, entry in top) or "no process of the run above 0.05"
    pegged = [
        f"a {role} process at {entry['hottest']:.0%} of a core"
        for role, entry in res["roles"].items()
        if entry["hottest"] >= BUSY_SHARE
    ]
    when = f"in the step's busiest {res['seconds']:.0f} s " if "seconds" in res else ""
    text = f"{when}the machine was {res['machine_busy_pct']:.0f}% busy ({cores:.2f} of its cores: {parts}"
    if res["others_cores"] >= 0.05:
        text += f", other processes on the machine {res['others_cores']:.2f}"
    text += ")"
    if res["machine_busy_pct"] >= 100 * BUSY_SHARE:
        text = "CPU: " + text
    elif pegged:
        text = "one process's core: " + text
    else:
        text = "nothing the sampler sees ran out: " + text
    if pegged:
        text += "; " + "; ".join(pegged)
    if peak := step.get("peak_second"):
        # A question's burst lasts about 15 s: even 10 s average its peak away.
        role, entry = max(peak["roles"].items(), key=lambda item: item[1]["hottest"])
        text += (
            f"; its busiest second {peak['machine_busy_pct']:.0f}% busy, the hottest process in it "
            f"{role} at {entry['hottest']:.2f} of a core"
        )
    if "saturated_seconds" in res:
        text += (
            f"; over the whole step it was {BUSY_SHARE:.0%} busy or more for {res['saturated_seconds']:.0f} of "
            f"{res['sampled_seconds']:.0f} s, {step['resources']['machine_busy_pct']:.0f}% busy on average"
        )
    if res["others_cores"] > cores / 2:
        text += (
            " — most of that CPU went to processes outside this run, so this step measured a crowded machine "
            "more than the stack"
        )
    return text


def verdicts(meta: dict, steps: list[dict]) -> list[str]:
    lines = []
    integrity = meta.get("integrity") or {}
    at_1000 = step_at(steps, 1000)
    if at_1000:
        p95 = at_1000["http"]["p95"]
        failures = at_1000["all"]["failures"]
        ok = p95 is not None and p95 < TARGET_P95_AT_1000_MS and failures == 0 and integrity.get("exact")
        lines.append(
            f"- At 1,000 users: p95 **{fmt_ms(p95)} ms** (target under {TARGET_P95_AT_1000_MS} ms), "
            f"**{failures}** errors (target 0), integrity **{'exact' if integrity.get('exact') else 'NOT exact'}**: "
            f"{'met ✔' if ok else 'missed ✘'}."
        )
    else:
        lines.append("- At 1,000 users: not measured in this run.")
    at_100, at_2000 = step_at(steps, 100), step_at(steps, 2000)
    if at_100 and at_2000 and at_100["http"]["p95"]:
        ratio = at_2000["http"]["p95"] / at_100["http"]["p95"]
        lines.append(
            f"- p95 at 2,000 users **{fmt_ms(at_2000['http']['p95'])} ms** vs **{fmt_ms(at_100['http']['p95'])} ms** "
            f"at 100 users: **{ratio:.2f}×** (target at most {TARGET_RATIO_2000_TO_100}×): "
            f"{'met ✔' if ratio <= TARGET_RATIO_2000_TO_100 else 'missed ✘'}."
            + ("" if ratio <= TARGET_RATIO_2000_TO_100 else f" What saturated at 2,000 users: {saturation(at_2000)}.")
        )
        served_100, served_2000 = (step.get("nginx", {}).get("p95") for step in (at_100, at_2000))
        if served_100 and served_2000:
            lines.append(
                f"- nginx's own p95 over the HTTP requests it finished in the same windows (its `$request_time`, "
                f"without the time a request waited in the load generator or the listen queue): "
                f"**{fmt_ms(served_2000)} ms** at 2,000 users vs **{fmt_ms(served_100)} ms** at 100: "
                f"**{served_2000 / served_100:.2f}×**."
            )
    else:
        lines.append("- p95 at 2,000 users vs 100 users: not measured in this run (it needs both steps).")
    return lines + slow_step_lines(steps)


def public_verdicts(meta: dict, steps: list[dict]) -> list[str]:
    """The public site has no target of its own yet: what it held, where it slowed, and that it was real."""
    integrity = meta.get("integrity") or {}
    requests = sum(step["all"]["requests"] for step in steps)
    failures = sum(step["all"]["failures"] for step in steps)
    created = meta.get("created") or {}
    error_pct = 100 * failures / requests if requests else 0.0
    lines = [
        f"- Over all steps **{failures:,}** errors in {requests:,} requests ({error_pct:.2f}%); "
        f"integrity **{'exact' if integrity.get('exact') else 'NOT exact'}** over "
        f"{integrity.get('acknowledged', 0):,} acknowledged votes in {integrity.get('polls', 0):,} polls; "
        f"{sum(created.values()):,} polls created during the run on top of {meta['options']['polls']:,} seeded; "
        f"rate limits {'off' if rate_limits_off(meta['options']) else 'on'}."
    ]
    return lines + slow_step_lines(steps)


def slow_step_lines(steps: list[dict]) -> list[str]:
    slow = next((step for step in steps if (step["http"]["p95"] or 0) > SLOW_MS), None)
    if slow:
        return [
            f"- p95 first passes {SLOW_MS} ms at **{slow['users']:,} users** "
            f"(p95 {fmt_ms(slow['http']['p95'])} ms). What saturated there: {saturation(slow)}."
        ]
    if steps:
        last = steps[-1]
        return [
            f"- p95 never passed {SLOW_MS} ms in this run; at the last step ({last['users']:,} users) it was "
            f"{fmt_ms(last['http']['p95'])} ms, and {saturation(last)}."
        ]
    return []


def charts(meta: dict, steps: list[dict], out_dir: Path) -> list[tuple[str, str]]:
    """The profile's charts, as (file name, title); the hall's keep their names, the public site's start with
    "public-"."""
    users = [step["users"] for step in steps]
    hall = profile_of(meta) == "hall"
    prefix, who = ("", "") if hall else (f"{profile_of(meta)}-", f"{PROFILE_TITLES[profile_of(meta)]}: ")

    def axes(title: str, ylabel: str):
        figure, axis = plt.subplots(figsize=(8, 4.5), dpi=110)
        axis.set_title(title)
        axis.set_xlabel("users")
        axis.set_ylabel(ylabel)
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(FixedLocator(users))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xticklabels([f"{n:,}" for n in users])
        axis.grid(True, which="both", alpha=0.3)
        return figure, axis

    def save(figure, name: str, title: str) -> tuple[str, str]:
        figure.tight_layout()
        figure.savefig(out_dir / f"{prefix}{name}")
        plt.close(figure)
        return f"{prefix}{name}", f"{who}{title}"

    names = []
    figure, axis = axes(f"{who}HTTP latency percentiles (all endpoints)", "milliseconds")
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        axis.plot(users, [step["http"][key] for step in steps], style, label=key)
    if hall:  # the hall's target (DESIGN.md)
        axis.axhline(TARGET_P95_AT_1000_MS, color="green", linestyle=":", label=f"{TARGET_P95_AT_1000_MS} ms")
    axis.axhline(SLOW_MS, color="red", linestyle=":", label=f"{SLOW_MS} ms")
    axis.set_yscale("log")
    axis.legend()
    names.append(save(figure, "latency.png", "Latency percentiles vs users"))

    figure, axis = axes(f"{who}Throughput", "HTTP requests per second")
    axis.plot(users, [step["http"]["rps"] for step in steps], "o-", label="served (all HTTP)")
    if meta.get("ceiling"):
        axis.axhline(meta["ceiling"]["rps"], color="gray", linestyle="--", label="/healthz ceiling")
    if meta.get("mix_ceiling"):
        axis.axhline(meta["mix_ceiling"]["rps"], color="gray", linestyle=":", label="mix ceiling (no think time)")
    axis.set_yscale("log")  # the ceiling and a calm step differ by orders of magnitude
    axis.legend()
    names.append(save(figure, "throughput.png", "Throughput vs users"))

    figure, axis = axes(f"{who}Errors", "% of requests, sockets and pushes failed")
    axis.plot(users, [step["all"]["error_pct"] for step in steps], "o-", color="crimson")
    axis.set_ylim(bottom=0, top=max(1.0, max(step["all"]["error_pct"] for step in steps) * 1.2))
    names.append(save(figure, "errors.png", "Error % vs users"))

    if any(push_series(step) for step in steps):  # the hall's live screens; the public site has none
        figure, axis = axes("Push latency: question opened → shown on a phone", "milliseconds")
        for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
            axis.plot(users, [push_series(step).get(key) for step in steps], style, label=key)
        axis.set_ylim(bottom=0)
        axis.legend()
        names.append(save(figure, "push_latency.png", "Push latency vs users"))

    roles = []
    for step in steps:
        for role in (step.get("resources") or {}).get("roles", {}):
            if role not in roles:
                roles.append(role)
    if roles:
        figure, axis = plt.subplots(figsize=(8, 4.5), dpi=110)
        axis.set_title(f"{who}CPU by process role (cores; the machine has {meta['machine']['cores']})")
        positions = range(len(users))
        bottom = [0.0] * len(users)
        for role in roles:
            values = [
                ((step.get("resources") or {}).get("roles", {}).get(role) or {}).get("cores", 0) for step in steps
            ]
            axis.bar(positions, values, bottom=bottom, label=role)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        others = [(step.get("resources") or {}).get("others_cores", 0) for step in steps]
        axis.bar(positions, others, bottom=bottom, label="other processes", color="lightgray")
        axis.axhline(meta["machine"]["cores"], color="black", linestyle=":")
        axis.set_xticks(list(positions), [f"{n:,}" for n in users])
        axis.set_xlabel("users")
        axis.set_ylabel("cores")
        axis.legend(fontsize=7, loc="upper left")
        names.append(save(figure, "cpu.png", "CPU by process vs users"))
    return names


def render(runs: dict[str, tuple[dict, list[dict]]], chart_names: dict[str, list[tuple[str, str]]]) -> str:
    """The report of one run of `make loadtest`: `runs` holds each profile's meta and steps, in the order run."""
    metas = [meta for meta, _ in runs.values()]
    options, machine = metas[0]["options"], metas[0]["machine"]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(min(meta["started_at"] for meta in metas)))
    duration = (max(meta["ended_at"] for meta in metas) - min(meta["started_at"] for meta in metas)) / 60
    lines = ["# Load test report", ""]
    if options.get("label"):
        lines += [f"> **{options['label']}**", ""]
    lines += [
        f"Produced by `{options['command']}` on {date} ({duration:.0f} minutes), from a real run on this machine:",
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}, {machine['locust']}, PostgreSQL {machine['postgres']}, "
        f"{machine['redis'].split(' sha=')[0]}, {machine['nginx']}.",
        "",
    ]
    if len(runs) > 1:
        lines += [
            f"The {' and the '.join(PROFILE_TITLES[profile].lower() for profile in runs)} ran one after the other, "
            "each on a stack of its own started fresh (the same database and Redis).",
            "",
        ]
    for profile, (meta, _) in runs.items():
        lines += [f"**{PROFILE_TITLES[profile]}.** {plan_line(meta)}", ""]
    lines += ["## Verdict", ""]
    for profile, (meta, steps) in runs.items():
        lines += [f"**{PROFILE_TITLES[profile]}**", ""]
        lines += verdicts(meta, steps) if profile == "hall" else public_verdicts(meta, steps)
        lines.append("")
    lines += side_by_side(runs)
    lines += ceilings(runs)
    lines += what_ran(runs)
    for profile, (meta, steps) in runs.items():
        lines += profile_sections(meta, steps, chart_names.get(profile, []))
    if NOTES.exists():
        lines += [NOTES.read_text().strip(), ""]
    lines += [
        "## Reproduce",
        "",
        "```",
        options["command"],
        "```",
        "",
        "`make loadtest` needs PostgreSQL and Redis on 127.0.0.1 and nginx (wrk is used for the /healthz ceiling "
        "when installed). `DATABASE_URL` and `REDIS_URL` choose the database; `LOADTEST_ARGS` passes options to "
        "`loadtest/run.py` (`--profile hall|public|both`; `--help` lists them). The raw data of a run (every step's "
        "record and every CPU sample, per profile) stays in its run directory; `python loadtest/report.py RUN_DIR` "
        "rewrites this report from it.",
        "",
    ]
    return "\n".join(lines)


def plan_line(meta: dict) -> str:
    """How a profile's steps ran; runs made before question rounds existed have no round_seconds."""
    options = meta["options"]
    rounds = options.get("align_to_rounds") and options.get("profile", "hall") == "hall"
    return (
        f"Steps: {', '.join(f'{n:,}' for n in options['steps'])} users; each step ramps at "
        f"{options['spawn_rate']:g} users/s, settles {options['settle_seconds']:g} s, then is measured for "
        f"{options['step_seconds']:g} s"
        + (f", from the start of the next question round (one every {options['round_seconds']:g} s)" if rounds else "")
        + f". User mix (weights): `{options['mix']}`; think times × {options['wait_scale']:g}. "
        + seeded_line(meta)
    )


def seeded_line(meta: dict) -> str:
    """What existed before the load: the hall's event (runs from before it ran as an event seeded polls)."""
    options, event = meta["options"], meta.get("event")
    if event:
        opening = f"opening each for {event['window_seconds']} s" if event["window_seconds"] else "without a window"
        return (
            f"One event of {event['questions']:,} questions, created through `POST /api/events/`; its presenter "
            f"put {event['shown']:,} of them on screen, {opening}."
        )
    seeded = "through the API" if options.get("seed_via") == "api" else "through the landing page's form"
    return f"{options['polls']:,} polls seeded {seeded}."


def side_by_side(runs: dict[str, tuple[dict, list[dict]]]) -> list[str]:
    lines = [
        "## The profiles side by side",
        "",
        "HTTP requests per second and their latency percentiles per step; errors count failed requests, sockets "
        "and pushes. Integrity is checked once per profile, after its last step, over every vote acknowledged in it.",
        "",
    ]
    for profile, (meta, steps) in runs.items():
        mark = integrity_mark(meta.get("integrity") or {})
        lines += [
            f"### {PROFILE_TITLES[profile]}",
            "",
            "| users | HTTP req/s | p50 ms | p95 ms | p99 ms | errors | error % | integrity |",
            "|" + " ---: |" * 7 + " --- |",
        ]
        for step in steps:
            lines.append(
                f"| {step['users']:,} | {step['http']['rps']:,.0f} | {fmt_ms(step['http']['p50'])} "
                f"| {fmt_ms(step['http']['p95'])} | {fmt_ms(step['http']['p99'])} | {step['all']['failures']:,} "
                f"| {step['all']['error_pct']:.2f} | {mark} |"
            )
        lines.append("")
    return lines


def integrity_mark(integrity: dict) -> str:
    if not integrity:
        return "not checked"
    return "exact ✔" if integrity["exact"] else "NOT exact ✘"


def ceilings(runs: dict[str, tuple[dict, list[dict]]]) -> list[str]:
    lines = [
        "## Ceilings (same run)",
        "",
        "The /healthz ceiling is what the stack answers when every request is the cheapest one. A mix ceiling is "
        "the profile's own users with no think time: each sends its next request as soon as its last is answered "
        "(a closed loop), so it is what the stack serves of that mix at most, with Locust on the same cores. "
        "Both are measured before the steps and without rate limits, as each profile's note below says: a closed "
        "loop from one address is what they exist to refuse.",
        "",
        "| profile | /healthz req/s | machine CPU | mix ceiling req/s | users | p50 ms | p95 ms | p99 ms | errors "
        "| error % | machine CPU |",
        "| --- |" + " ---: |" * 10,
    ]
    notes = []
    for profile, (meta, _) in runs.items():
        health, mix = meta.get("ceiling"), meta.get("mix_ceiling")
        if not health and not mix:
            lines.append(f"| {PROFILE_TITLES[profile]} | skipped |" + " |" * 9)
            continue
        cells = [PROFILE_TITLES[profile]]
        if health:
            cells += [f"{health['rps']:,.0f}", busy_pct(health.get("resources"))]
            notes.append(
                f"{PROFILE_TITLES[profile]}: /healthz for {health['seconds']} s with {health['tool']} "
                f"({health['failures']:,} failures)"
            )
        else:
            cells += ["skipped", ""]
        if mix:
            http = mix["http"]
            cells += [
                f"{mix['rps']:,.0f}",
                f"{mix['users']:,}",
                fmt_ms(http["p50"]),
                fmt_ms(http["p95"]),
                fmt_ms(http["p99"]),
                f"{mix['all']['failures']:,}",
                f"{mix['all']['error_pct']:.2f}",
                busy_pct(mix.get("resources")),
            ]
            notes.append(
                f"{PROFILE_TITLES[profile]}: mix `{mix['mix']}` for {mix['seconds']:.0f} s, "
                + (
                    "on a stack started without rate limits just before the one the steps ran on"
                    if meta.get("ceilings_apart")
                    else "on the stack the steps then ran on, rate limits "
                    + ("off" if rate_limits_off(meta["options"]) else "on")
                )
                + (
                    "; errors seen: "
                    + "; ".join(f"{n:,} × {message}" for message, n in list(mix["all"]["errors"].items())[:3])
                    if mix["all"]["errors"]
                    else ""
                )
            )
        else:
            cells += ["skipped"] + [""] * 7
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"- {note}." for note in notes), ""]
    return lines


def busy_pct(res: dict | None) -> str:
    return f"{res['machine_busy_pct']:.0f}%" if res else "–"


def what_ran(runs: dict[str, tuple[dict, list[dict]]]) -> list[str]:
    lines = [
        "## What ran",
        "",
        "- **The stack** is `make stack`'s own launcher (`scripts/stack`): nginx in front of 2 gunicorn (gthread) and "
        "2 uvicorn (WebSockets) servers, Celery worker and beat, the broadcaster, PostgreSQL and Redis, all on this "
        "machine, sharing its cores with the load generator.",
    ]
    for profile, (meta, _) in runs.items():
        options = meta["options"]
        if profile == "hall":
            lines.append(hall_load(meta))
        else:
            lines.append(
                f"- **The public site's load**: Locust (`FastHttpUser`), a master and {options['locust_processes']} "
                "worker processes of *Visitors*. Each creates a poll, votes or reads results in the ratio 1 : 5 : 3, "
                f"{1 * options['wait_scale']:g}–{5 * options['wait_scale']:g} s apart, so about a tenth of its actions "
                "create a poll. Half of the votes go through the form as htmx sends it (`GET /p/<slug>/` for the CSRF "
                "token, then `POST /p/<slug>/vote/` with `HX-Request`; a browser votes once per poll, then a new "
                "person takes it), half through `POST /api/votes/` with a unique `voter` key; half of the reads are "
                "`GET /p/<slug>/results/`, half `GET /api/polls/<id>/results/`; half of the new polls come from "
                "`POST /api/polls/`, half from the landing page's form. Votes and reads spread over every poll a "
                "Locust process knows (the seeded ones and those it created) with a long tail: the k-th most popular "
                "poll draws 1/k as much as the first, and a new poll takes a random rank, so new polls get votes."
            )
    if "hall" in runs and runs["hall"][0].get("event"):
        lines.append(
            "- **Push latency** (the hall): each phone times the push that shows it a question opened, from the moment "
            "the server opened it (the end of the window the push carries, less the window) to the push's arrival, "
            "when its socket was up before that moment. A question that opened while a phone's socket was up and "
            "that the phone has not shown within 10 s counts as an error (the presenter tells the Locust workers "
            "when each question opened)."
        )
    elif "hall" in runs:
        lines.append(
            "- **Push latency** (the hall): every vote acknowledged through the form carries the tally version of its "
            "answer; one screen of that poll (chosen at random in the same Locust process) times it from the "
            "acknowledgement to the first push whose version includes it. A vote no push showed within 10 s counts "
            "as an error."
        )
    lines.append(
        "- **Errors** count failed HTTP requests (unexpected status, timeouts), failed or lost WebSockets and missed "
        "pushes, over all of them. Latency percentiles are of HTTP requests, at 0.1 ms resolution."
    )
    for profile, (meta, _) in runs.items():
        lines.append(f"- **Rate limits ({PROFILE_TITLES[profile].lower()})**: {rate_limit_line(meta['options'])}")
    return [*lines, ""]


def hall_load(meta: dict) -> str:
    """What the hall's users did: as an event, or (runs from before events) over 10 polls."""
    options, event = meta["options"], meta.get("event")
    locust = f"Locust (`FastHttpUser`), a master and {options['locust_processes']} worker processes"
    creator = "*Creator*: every 30–90 s creates a poll (the landing page's form or the API)."
    if not event:
        # Runs made before question rounds existed spread their votes over 30–60 s instead.
        round_seconds = options.get("round_seconds", 60) * options["wait_scale"]
        return (
            f"- **The hall's load**: {locust}. *Voter*: a phone in a hall where a new question is asked every "
            f"{round_seconds:g} s (the same moment for every phone, so the votes arrive all at once); 2–15 s after it, "
            "the phone opens a poll, reads it (1–5 s), votes through the form as htmx does (CSRF token and cookie, "
            "`HX-Request`), taps again one time in ten and must be refused (409), and opens the results page one time "
            "in two; when it has answered every poll, a new person takes it. *ApiVoter*: a program voting through "
            "`POST /api/votes/` with a unique `voter` key every 30–60 s, repeating one vote in ten (409 expected) "
            "and reading `GET /api/polls/<id>/results/` one time in two. *Viewer*: a live screen; loads the "
            "results page, holds `WS /ws/polls/<slug>/` for 2–10 minutes, then reloads. "
            f"{creator} Polls draw attention unevenly: the n-th poll gets 1/n of the first one's; a new poll takes "
            "the last rank."
        )
    window = event["window_seconds"]
    rounds = (
        f"a second into each round of {event['round_seconds']:g} s it sends `next` (`goto` the first question after "
        f"the last), then `open` with a {window} s window, and `reveal` once the window is over"
        if window
        else "it opens one question for the whole run, without a window"
    )
    return (
        f"- **The hall's load**: {locust}, and one event created through `POST /api/events/`. *Presenter*: one, in "
        f"Locust's master process, where busy phones cannot hold up its rounds: {rounds}, each a "
        "`POST /api/events/<id>/control/` with the owner token. Every other user but the creators is a phone in the "
        "hall: it opens the event's page `GET /e/<code>/` (its CSRF token and cookie), holds `WS /ws/events/<code>/`, "
        "and votes once in each window, a tenth to three quarters of the window after it sees the question open "
        "(2–15 s of 20) and never in its last quarter, so no vote arrives after the window. *Voter*: votes through "
        "the page's form as htmx sends it (`POST /e/<code>/vote/` with `HX-Request`); the answer replaces the "
        "phone's region and its socket, so the phone opens a new one, as the htmx ws extension does; it taps again "
        "one time in ten and must be refused (409). *Viewer*: the same, and its person reloads the page every 2–10 "
        "minutes. *ApiVoter*: votes through `POST /api/votes/` with the question's id and a unique `voter` key, "
        "repeats one vote in ten (409 expected), and reads `GET /api/polls/<id>/results/` one time in two once the "
        "results are revealed. A phone that meets a question its browser answered before (the presenter went back "
        f"to it) is handed to someone new, with a fresh cookie jar. {creator}"
    )


def profile_sections(meta: dict, steps: list[dict], chart_names: list[tuple[str, str]]) -> list[str]:
    """A profile's figures in full: per step, charts, per endpoint, CPU and memory, integrity."""
    title = PROFILE_TITLES[profile_of(meta)]
    lines = [f"## {title}: per step", ""]
    lines += hall_step_table(steps) if profile_of(meta) == "hall" else public_step_table(steps)
    lines += ["", f"## {title}: charts", ""]
    for name, chart_title in chart_names:
        lines += [f"![{chart_title}]({name})", ""]
    lines += [f"## {title}: per endpoint", ""]
    for step in steps:
        lines += [
            f"### {step['users']:,} users ({step['users_running']:,} running: "
            + ", ".join(f"{n:,} {kind}" for kind, n in step.get("user_classes", {}).items())
            + ")",
            "",
            "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | failures |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, figures in step["names"].items():
            lines.append(
                f"| `{name}` | {figures['requests']:,} | {figures['rps']:,.1f} | {fmt_ms(figures['p50'])} "
                f"| {fmt_ms(figures['p95'])} | {fmt_ms(figures['p99'])} | {fmt_ms(figures['max'])} "
                f"| {figures['failures']:,} |"
            )
        errors = step["all"]["errors"]
        if errors:
            lines += ["", "Errors seen: " + "; ".join(f"{n:,} × {message}" for message, n in errors.items())]
        lines.append("")
    lines += [f"## {title}: CPU and memory per process", "", *cpu_share_table(steps), ""]
    for step in steps:
        res = step.get("resources") or {}
        if not res:
            continue
        lines += [
            f"### {step['users']:,} users: machine {res['machine_busy_pct']:.0f}% busy "
            f"({res['machine_cores']:.2f} cores, of which other processes {res['others_cores']:.2f})",
            "",
            "| role | processes | CPU cores | hottest process | memory MB |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for role, entry in res["roles"].items():
            lines.append(
                f"| {role} | {entry['processes']} | {entry['cores']:.2f} | {entry['hottest']:.2f} "
                f"| {entry['rss_mb']:,.0f} |"
            )
        lines.append("")
    lines += [f"## {title}: integrity", "", *integrity_lines(meta.get("integrity") or {})]
    if "created" in meta:
        created = meta["created"]
        lines.append(
            f"Polls created during the run (the mix ceiling's included): {sum(created.values()):,} "
            f"({created.get('form', 0):,} through the landing page's form, {created.get('api', 0):,} through the "
            "API), on top of "
            + (
                f"the event's {meta['event']['questions']:,} questions."
                if meta.get("event")
                else f"{meta['options']['polls']:,} seeded."
            )
        )
    return [*lines, ""]


def hall_step_table(steps: list[dict]) -> list[str]:
    lines = [
        "| users | HTTP req/s | p50 ms | p95 ms | p99 ms | errors | error % | push p50 ms | push p95 ms | push p99 ms "
        f"| pushes timed | votes sent/min | nginx p95 ms | machine CPU | busiest {BURST_SECONDS} s "
        f"| seconds ≥ {BUSY_SHARE:.0%} |",
        "|" + " ---: |" * 16,
    ]
    for step in steps:
        push = push_series(step)
        lines.append(
            f"| {step['users']:,} | {step['http']['rps']:,.0f} | {fmt_ms(step['http']['p50'])} "
            f"| {fmt_ms(step['http']['p95'])} | {fmt_ms(step['http']['p99'])} | {step['all']['failures']:,} "
            f"| {step['all']['error_pct']:.2f} | {fmt_ms(push.get('p50'))} | {fmt_ms(push.get('p95'))} "
            f"| {fmt_ms(push.get('p99'))} | {push.get('requests', 0):,} | {vote_attempts_per_minute(step):,.0f} "
            f"| {machine_cells(step)} |"
        )
    return lines


def public_step_table(steps: list[dict]) -> list[str]:
    lines = [
        "| users | HTTP req/s | p50 ms | p95 ms | p99 ms | errors | error % | creates/s | votes/s form / API "
        f"| reads/s page / API | nginx p95 ms | machine CPU | busiest {BURST_SECONDS} s | seconds ≥ {BUSY_SHARE:.0%} |",
        "|" + " ---: |" * 14,
    ]
    for step in steps:
        lines.append(
            f"| {step['users']:,} | {step['http']['rps']:,.0f} | {fmt_ms(step['http']['p50'])} "
            f"| {fmt_ms(step['http']['p95'])} | {fmt_ms(step['http']['p99'])} | {step['all']['failures']:,} "
            f"| {step['all']['error_pct']:.2f} | {rate(step, *CREATES):,.1f} "
            f"| {rate(step, FORM_VOTE):,.1f} / {rate(step, API_VOTE):,.1f} "
            f"| {rate(step, PAGE_READ):,.1f} / {rate(step, API_READ):,.1f} | {machine_cells(step)} |"
        )
    return lines


def rate(step: dict, *names: str) -> float:
    """Requests a second of these endpoints (first tries, answered or not) in the step's window."""
    return sum(step["names"].get(name, {}).get("rps", 0.0) for name in names)


def machine_cells(step: dict) -> str:
    res, burst = step.get("resources") or {}, step.get("burst") or {}
    return (
        f"{fmt_ms(step.get('nginx', {}).get('p95'))} | {res.get('machine_busy_pct', 0):.0f}% "
        f"| {burst.get('machine_busy_pct', 0):.0f}% | {burst.get('saturated_seconds', 0):.0f}"
    )


def cpu_share_table(steps: list[dict]) -> list[str]:
    """Cores per role and step, with each role's share of all the CPU the machine used in the step's window:
    the broadcaster's and the Celery worker's first, as the roles whose work grows with the number of polls."""
    measured = [step for step in steps if step.get("resources")]
    if not measured:
        return ["No CPU samples for these steps."]
    seen = {role for step in measured for role in step["resources"]["roles"]}
    others = sorted(seen - set(WATCHED_ROLES), key=lambda role: -max(role_cores(step, role) for step in measured))
    lines = [
        "CPU by role per step: cores (1.00 = one core fully busy) over the step's measured window, and in brackets "
        "the role's share of all the CPU the machine used in it.",
        "",
        "| role | " + " | ".join(f"{step['users']:,} users" for step in measured) + " |",
        "| --- |" + " ---: |" * len(measured),
    ]
    for role in [*WATCHED_ROLES, *others]:
        cells = []
        for step in measured:
            res = step["resources"]
            if role not in res["roles"]:
                cells.append("not sampled")
                continue
            share = role_cores(step, role) / res["machine_cores"] if res["machine_cores"] else 0.0
            cells.append(f"{role_cores(step, role):.2f} ({share:.0%})")
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    lines.append(
        "| other processes on the machine | "
        + " | ".join(f"{step['resources']['others_cores']:.2f}" for step in measured)
        + " |"
    )
    return lines


def role_cores(step: dict, role: str) -> float:
    return step["resources"]["roles"].get(role, {}).get("cores", 0.0)


def rate_limits_off(options: dict) -> bool:
    """As crowdtick/env.py's env_bool reads RATELIMIT_ENABLE."""
    value = options.get("stack_env", {}).get("RATELIMIT_ENABLE")
    return value is not None and value.strip().lower() in ("0", "false", "no", "off", "")


def rate_limit_line(options: dict) -> str:
    changed = {name: value for name, value in options.get("stack_env", {}).items() if "RATELIMIT" in name}
    if rate_limits_off(options):
        return (
            "**off** (`RATELIMIT_ENABLE=0`): every user comes from 127.0.0.1, so thousands of new polls come from one "
            "address, which the per-address limit on new polls (`RATELIMIT_POLLS_PER_ADDRESS`, 60 a minute by "
            "default) would refuse; with the limits off, the figures are the site's work, not the limiter's refusals."
        )
    if not changed:
        return (
            "on, at their production defaults (nothing changed): every user comes from 127.0.0.1, like a hall "
            "behind one NAT address."
        )
    listed = ", ".join(f"`{name}={value}`" for name, value in changed.items())
    return f"on, with these settings changed for this run: {listed} (see the reading below for why)."


def integrity_lines(integrity: dict) -> list[str]:
    if not integrity:
        return ["No integrity check was recorded."]
    by = ", ".join(f"{n:,} {via}" for via, n in sorted(integrity["acknowledged_by"].items()))
    lines = [
        f"**{'Exact' if integrity['exact'] else 'NOT exact'}.** {integrity['acknowledged']:,} votes were acknowledged "
        f"({by}); in PostgreSQL {integrity['acknowledged'] - integrity['missing']:,} of them are there, "
        f"{integrity['missing']:,} missing, {integrity['repeated']:,} more than once; "
        f"{integrity['acknowledged_twice']:,} votes were acknowledged twice.",
        f"The {integrity['polls']:,} polls of the run hold {integrity['ballots']:,} ballots; "
        f"{integrity['unacknowledged_ballots']:,} of them were never acknowledged to Locust (a request that failed "
        "or timed out after the commit; kept, as it should be).",
        *([kinds_line(integrity["by_kind"])] if integrity.get("by_kind") else []),
        f"Tallies shown by `GET /api/polls/<id>/results/` vs counts of the ballots (a word cloud's terms too): "
        f"{len(integrity['tally_mismatches'])} mismatches"
        + (f" (checked again for {integrity['tallies_settled_after_seconds']} s)." if integrity["tally_mismatches"]
           else "."),
    ]  # fmt: skip
    for mismatch in integrity["tally_mismatches"][:5]:
        lines.append(f"- `{json.dumps(mismatch)}`")
    for kind, sample in integrity["samples"].items():
        if sample:
            lines.append(f"- {kind}: `{json.dumps(sample)}`")
    return lines


KIND_NAMES = {"choice": "polls of choices", "scale": "ratings", "words": "word clouds"}


def kinds_line(by_kind: dict) -> str:
    """The question kinds' share of the run: polls and ballots of each."""
    parts = [
        f"{numbers['polls']:,} {KIND_NAMES.get(kind, kind)} ({numbers['ballots']:,} ballots)"
        for kind, numbers in sorted(by_kind.items())
    ]
    return "By kind: " + ", ".join(parts) + "."


def load_runs(run_dir: Path) -> dict[str, tuple[dict, list[dict]]]:
    return {profile: load(path)[:2] for profile, path in runs_in(run_dir).items()}


def write(run_dir: Path, out_dir: Path) -> Path:
    runs = load_runs(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {profile: charts(meta, steps, out_dir) for profile, (meta, steps) in runs.items() if steps}
    path = out_dir / "REPORT.md"
    path.write_text(render(runs, names))
    return path


def verdict_line(run_dir: Path) -> str:
    lines = ["loadtest: verdict"]
    for profile, (meta, steps) in load_runs(run_dir).items():
        lines += [
            f"{PROFILE_TITLES[profile]}:",
            *(verdicts(meta, steps) if profile == "hall" else public_verdicts(meta, steps)),
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "loadtest")
    args = parser.parse_args()
    print(write(args.run_dir, args.out))


if __name__ == "__main__":
    main()
