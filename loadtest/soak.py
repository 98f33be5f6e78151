#!/usr/bin/env python3
"""`make soak`: the production stack at one steady load for a long time. Does memory or the error rate creep?

The load test's own machinery (loadtest/run.py) runs it: the stack through scripts/stack, the hall's
event, Locust with `make loadtest`'s hall (its presenter, phones and creators), rate limits at their
production defaults, and the integrity check at the end. The users stay at --users for --minutes,
measured a minute at a time, while the sampler reads every process's memory each --sample-seconds.
Then:

- memory: per process, the least-squares slope of its RSS over time after a warm-up (the first sixth
  of the run: 5 of 30 minutes), in MiB an hour; it passes when every process grows under 10 MiB/h;
- errors: the error % of each window (a sixth of the run: 5 minutes of 30, at least one minute); it
  passes when the last window's is not above the first's and all errors together stay under 1 %;
- integrity: every acknowledged vote is in PostgreSQL exactly once and the tallies equal the record.

Writes its section of docs/reliability.md (between the soak markers; the rest of the file is kept)
and the chart docs/reliability/soak-rss.png, and exits 1 when a criterion fails.
`--report-only RUN_DIR` writes them again from an earlier run's raw data. Environment: DATABASE_URL
and REDIS_URL, with `make loadtest`'s defaults.
"""

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from loadtest import report  # noqa: E402
from loadtest.run import Options, run, without_options  # noqa: E402
from loadtest.stack import ROOT  # noqa: E402

MIB = 2**20
LIMIT_MIB_PER_HOUR = 10.0
MAX_ERROR_PCT = 1.0
WARM_UP_SHARE = 1 / 6  # 5 minutes of 30
WINDOWS = 6  # error windows in a run: 5 minutes each in 30
INTERVAL_SECONDS = 60  # Locust's counts are recorded a minute at a time
START_MARKER = "<!-- soak:start -->"
END_MARKER = "<!-- soak:end -->"
DOC = ROOT / "docs" / "reliability.md"
CHART = "reliability/soak-rss.png"  # relative to the document
LOAD_GENERATOR = "locust (load generator)"
POSTGRES = "postgres (this database)"
# A PostgreSQL backend's RSS counts every page of shared_buffers it has touched so far, so it climbs
# for as long as it reads new pages, without holding a byte more of its own: its own memory (USS) is
# what a leak would grow.
JUDGED_ON_USS = {POSTGRES}
SHELLS = {"sh", "dash", "bash"}  # honcho starts each command through one; they only wait
# What the first process of a role and the processes it started are called.
KINDS = {
    "gunicorn (HTTP)": ("master", "worker"),
    "nginx": ("master", "worker"),
    LOAD_GENERATOR: ("master", "worker"),
    "celery worker": ("", "child"),
    "honcho (supervisor)": ("", "child"),
}


@dataclass
class Growth:
    """One process's memory over the run."""

    pid: str
    label: str
    role: str
    start_mib: float  # RSS at the first sample of the load
    warm_mib: float  # RSS at the first sample after the warm-up
    end_mib: float
    rss_slope: float  # MiB/h after the warm-up
    uss_slope: float | None
    points: int
    judged_on: str | None  # "RSS", "USS", or None: shown, not judged

    @property
    def slope(self) -> float:
        return self.uss_slope if self.judged_on == "USS" else self.rss_slope

    @property
    def passed(self) -> bool:
        return self.judged_on is None or self.slope < LIMIT_MIB_PER_HOUR


@dataclass
class Window:
    number: int
    start_minute: float
    end_minute: float
    requests: int
    failures: int

    @property
    def error_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        seconds = 60 * (self.end_minute - self.start_minute)
        return self.requests / seconds if seconds else 0.0


# --- analysis (pure functions of the raw data) -----------------------------------------------------


def slope_mib_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, bytes) points, in MiB an hour."""
    if len(points) < 2 or len({t for t, _ in points}) < 2:
        return 0.0
    times, values = zip(*points, strict=True)
    return statistics.linear_regression(times, values).slope * 3600 / MIB


def warm_up_end(load_start: float, load_end: float) -> float:
    return load_start + WARM_UP_SHARE * (load_end - load_start)


def memory_growth(
    samples: list[dict], descriptions: dict[str, list], *, load_start: float, load_end: float
) -> tuple[list[Growth], Counter]:
    """Every process present from the end of the warm-up to the end of the load, and the roles of
    those that came and went in between (not judged: a slope of a part of the run says little)."""
    during = [s for s in samples if load_start <= s["t"] <= load_end]
    warm_until = warm_up_end(load_start, load_end)
    after = [s for s in during if s["t"] >= warm_until]
    if len(after) < 2:
        return [], Counter()
    roles = {pid: entry[0] for sample in during for pid, entry in sample["processes"].items()}
    shells = {pid for pid, (name, *_) in descriptions.items() if name in SHELLS}
    lasting = (set(after[0]["processes"]) & set(after[-1]["processes"])) - shells
    came_and_went = Counter(roles[pid] for pid in set(roles) - lasting - shells)
    growths = []
    for pid in lasting:
        series = [(s["t"], s["processes"][pid]) for s in during if pid in s["processes"]]
        measured = [(t, entry) for t, entry in series if t >= warm_until]
        uss = [(t, entry[3]) for t, entry in measured if len(entry) > 3 and entry[3] is not None]
        uss_slope = slope_mib_per_hour(uss) if len(uss) == len(measured) else None
        role = roles[pid]
        judged_on = (
            None if role == LOAD_GENERATOR else "USS" if role in JUDGED_ON_USS and uss_slope is not None else "RSS"
        )
        growths.append(
            Growth(
                pid=pid,
                label=label_of(pid, role, descriptions, roles),
                role=role,
                start_mib=series[0][1][2] / MIB,
                warm_mib=measured[0][1][2] / MIB,
                end_mib=measured[-1][1][2] / MIB,
                rss_slope=slope_mib_per_hour([(t, entry[2]) for t, entry in measured]),
                uss_slope=uss_slope,
                points=len(measured),
                judged_on=judged_on,
            )
        )
    growths.sort(key=lambda growth: (growth.role == LOAD_GENERATOR, growth.role, growth.label))
    return growths, came_and_went


def label_of(pid: str, role: str, descriptions: dict[str, list], roles: dict[str, str]) -> str:
    """A name such as "gunicorn :8001 worker (1234)": role, port served, master or worker, pid."""
    _, command, parent = descriptions.get(pid, ["", "", None])
    name = {POSTGRES: "postgres backend", "redis (shared server)": "redis"}.get(role, role.split(" (")[0])
    port = re.search(r"(?:--bind \S*:|--port )(\d+)", command)
    if port:
        name += f" :{port.group(1)}"
    if role in KINDS:
        first, started = KINDS[role]
        kind = started if roles.get(str(parent)) == role else first
        name += f" {kind}" if kind else ""
    return f"{name} ({pid})"


def error_windows(steps: list[dict], per_window: int) -> list[Window]:
    """Locust's per-minute counts, added up `per_window` minutes at a time (the last window may be shorter)."""
    if not steps:
        return []
    origin = steps[0]["started_at"]
    windows = []
    for index in range(0, len(steps), per_window):
        chunk = steps[index : index + per_window]
        windows.append(
            Window(
                number=len(windows) + 1,
                start_minute=(chunk[0]["started_at"] - origin) / 60,
                end_minute=(chunk[-1]["ended_at"] - origin) / 60,
                requests=sum(step["all"]["requests"] for step in chunk),
                failures=sum(step["all"]["failures"] for step in chunk),
            )
        )
    return windows


def errors_pass(windows: list[Window]) -> tuple[bool, float]:
    """No growth (the last window's error % not above the first's) and under 1 % over the run."""
    requests = sum(window.requests for window in windows)
    total_pct = 100.0 * sum(window.failures for window in windows) / requests if requests else 0.0
    if not windows:
        return False, total_pct
    return windows[-1].error_pct <= windows[0].error_pct and total_pct < MAX_ERROR_PCT, total_pct


def windows_for(intervals: int) -> int:
    return max(1, round(intervals / WINDOWS))


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class SoakOptions:
    users: int
    minutes: float
    sample_seconds: float
    doc: Path
    loadtest: Options
    report_only: Path | None = None


def parse_args(argv: list[str]) -> SoakOptions:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users for the whole run (default 1,000)")
    parser.add_argument("--minutes", type=float, default=30, help="minutes at that load (default 30)")
    parser.add_argument("--sample-seconds", type=float, default=15, help="memory sampled every … (default 15)")
    parser.add_argument("--port-base", type=int, help="nginx on it, gunicorn +1 +2, ASGI +3 +4, Locust +5")
    parser.add_argument("--run-dir", type=Path, help="raw data of the run (default: a new temporary one)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document whose soak section is written")
    parser.add_argument("--report-only", type=Path, metavar="RUN_DIR", help="write the section from an earlier run")
    args = parser.parse_args(argv)
    shown = without_options(argv, {"--run-dir", "--doc"})
    command = "make soak" + (f" SOAK_ARGS={shlex.quote(shlex.join(shown))}" if shown else "")
    intervals = max(1, round(args.minutes * 60 / INTERVAL_SECONDS))
    run_dir = args.run_dir or Path(f"/tmp/crowdtick-soak-{os.getuid()}") / time.strftime("%Y%m%d-%H%M%S")
    loadtest = Options(
        steps=[args.users] * intervals,  # equal steps: measured back to back, one record a minute
        step_seconds=INTERVAL_SECONDS,
        ceiling_seconds=0,
        sample_seconds=args.sample_seconds,
        sample_uss=True,
        port_base=args.port_base,
        run_dir=run_dir,
        out_dir=args.doc.parent / Path(CHART).parent,
        label=f"soak: {args.users:,} users for {args.minutes:g} minutes",
        command=command,
    )
    return SoakOptions(args.users, args.minutes, args.sample_seconds, args.doc, loadtest, args.report_only)


def analyse(run_dir: Path) -> dict:
    meta, steps, samples = report.load(run_dir)
    soak = json.loads((run_dir / "soak.json").read_text())
    descriptions = {pid: entry for sample in samples for pid, entry in sample.get("new", {}).items()}
    load_start, load_end = steps[0]["started_at"], steps[-1]["ended_at"]
    growths, came_and_went = memory_growth(samples, descriptions, load_start=load_start, load_end=load_end)
    windows = error_windows(steps, windows_for(len(steps)))
    errors_ok, total_error_pct = errors_pass(windows)
    integrity = meta.get("integrity") or {}
    verdicts = {
        "memory": bool(growths) and all(growth.passed for growth in growths),
        "errors": errors_ok,
        "integrity": bool(integrity.get("exact")),
    }
    return {
        "meta": meta,
        "soak": soak,
        "steps": steps,
        "samples": samples,
        "load_start": load_start,
        "load_end": load_end,
        "growths": growths,
        "came_and_went": came_and_went,
        "windows": windows,
        "total_error_pct": total_error_pct,
        "verdicts": verdicts,
        "passed": all(verdicts.values()),
    }


# --- the document ------------------------------------------------------------------------------------


def chart(result: dict, path: Path) -> None:
    """RSS over time per process, as the change since the load started (a few MiB of growth would be lost on
    an axis up to 100 MiB): the site's processes above, PostgreSQL, Redis and Locust below."""
    growths = result["growths"]
    start = result["load_start"]
    warm_minutes = (warm_up_end(start, result["load_end"]) - start) / 60
    site = [g for g in growths if g.role not in (POSTGRES, "redis (shared server)", LOAD_GENERATOR)]
    others = [g for g in growths if g not in site]
    figure, panels = plt.subplots(2, 1, figsize=(10, 8), dpi=100, sharex=True)
    for axis, group, title in ((panels[0], site, "the site's processes"), (panels[1], others, "the others")):
        for index, growth in enumerate(group):
            points = [
                ((s["t"] - start) / 60, s["processes"][growth.pid][2] / MIB - growth.start_mib)
                for s in result["samples"]
                if growth.pid in s["processes"] and start <= s["t"] <= result["load_end"]
            ]
            style = ("-", "--", ":", "-.")[index // 10 % 4]  # matplotlib has 10 colours; 40 lines stay apart
            axis.plot(*zip(*points, strict=True), style, label=growth.label, linewidth=1)
        axis.axvspan(0, warm_minutes, color="gray", alpha=0.15, label="warm-up (not judged)")
        axis.set_title(f"RSS over time: {title}")
        axis.set_ylabel("MiB since the start of the load")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    panels[1].set_xlabel(f"minutes at {result['soak']['users']:,} users")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def render(result: dict) -> str:
    meta, soak, verdicts = result["meta"], result["soak"], result["verdicts"]
    machine = meta["machine"]
    minutes = (result["load_end"] - result["load_start"]) / 60
    warm_minutes = WARM_UP_SHARE * minutes
    windows = result["windows"]
    judged = [growth for growth in result["growths"] if growth.judged_on]
    worst = max(judged, key=lambda growth: growth.slope, default=None)

    def mark(ok: bool) -> str:
        return "pass ✔" if ok else "FAIL ✘"

    lines = [
        START_MARKER,
        f"## Soak: {soak['users']:,} users for {minutes:.0f} minutes",
        "",
        f"Produced by `{soak['command']}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(meta['started_at']))}: "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, Python {machine['python']}, "
        f"PostgreSQL {machine['postgres']}, {machine['locust']}. Load average (1, 5, 15 min) "
        f"{fmt_load(soak['load_before'])} before the run, {fmt_load(soak['load_after'])} at its end.",
        "",
        f"**Verdict: {'pass ✔' if result['passed'] else 'FAIL ✘'}** — memory {mark(verdicts['memory'])}, "
        f"errors {mark(verdicts['errors'])}, integrity {mark(verdicts['integrity'])}.",
        "",
        f"- **Load**: {soak['users']:,} Locust users for {minutes:.1f} minutes after a "
        f"{meta['options']['spawn_rate']:g} users/s ramp and a {meta['options']['settle_seconds']:g} s settle, "
        f"the user mix of `make loadtest`'s hall (`{meta['options']['mix']}`: "
        + (
            "an event whose presenter opens a question a minute; phones following it on WebSockets that vote in each "
            "question's window, through the form or the API; poll creators), rate limits at their production "
            f"defaults; {report.seeded_line(meta)}"
            if meta.get("event")
            else "phones voting on a question a minute, API voters, live screens on WebSockets, poll creators), rate "
            f"limits at their production defaults, {meta['options']['polls']} polls seeded."
        )
        + " The production stack of `make stack`.",
        f"- **Memory**: every process sampled each {soak['sample_seconds']:g} s (RSS, and USS: the memory it alone "
        f"holds). Growth is the least-squares slope over time after a warm-up of {warm_minutes:.1f} minutes (the "
        f"first sixth of the run: 5 of 30 minutes), in MiB an hour; each process must stay under "
        f"{LIMIT_MIB_PER_HOUR:g} MiB/h. PostgreSQL backends are judged on USS: their RSS counts the pages of the "
        "shared buffers they touch. Locust is shown, not judged.",
        f"- **Errors**: failed requests, sockets and pushes as `make loadtest` counts them, per window of "
        f"{windows_for(len(result['steps']))} minute(s); the last window's error % must not exceed the first's, "
        f"and all errors together must stay under {MAX_ERROR_PCT:g} %.",
        "",
        "### Memory per process",
        "",
        "| process | RSS at start MiB | after warm-up MiB | at end MiB | RSS slope MiB/h | USS slope MiB/h "
        "| samples | judged on | pass |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for growth in result["growths"]:
        uss = "–" if growth.uss_slope is None else f"{growth.uss_slope:+.1f}"
        lines.append(
            f"| {growth.label} | {growth.start_mib:,.1f} | {growth.warm_mib:,.1f} | {growth.end_mib:,.1f} "
            f"| {growth.rss_slope:+.1f} | {uss} | {growth.points} | {growth.judged_on or 'not judged'} "
            f"| {('✔' if growth.passed else '✘') if growth.judged_on else '–'} |"
        )
    if result["came_and_went"]:
        lines += [
            "",
            "Not judged, because they did not live from the end of the warm-up to the end: "
            + ", ".join(f"{n} × {role}" for role, n in sorted(result["came_and_went"].items()))
            + (
                " (Django closes a PostgreSQL connection after `DB_CONN_MAX_AGE`, 600 s, and opens another)."
                if POSTGRES in result["came_and_went"]
                else "."
            ),
        ]
    lines += [
        "",
        "The chart draws each process's RSS as its change since the start of the load (the table gives where "
        "each started); the shaded minutes are the warm-up.",
        "",
        f"![RSS over time per process]({CHART})",
        "",
        "### Errors per window",
        "",
        "| window | minutes | requests | req/s | errors | error % |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for window in windows:
        lines.append(
            f"| {window.number} | {window.start_minute:.0f}–{window.end_minute:.0f} | {window.requests:,} "
            f"| {window.rps:,.0f} | {window.failures:,} | {window.error_pct:.2f} |"
        )
    messages = Counter()
    for step in result["steps"]:
        messages.update(step["all"]["errors"])
    if messages:
        lines += ["", "Errors seen: " + "; ".join(f"{n:,} × {message}" for message, n in messages.most_common(5))]
    lines += [
        "",
        f"All windows: {result['total_error_pct']:.3f} % errors.",
        "",
        "### Integrity",
        "",
        *report.integrity_lines(meta.get("integrity") or {}),
        "",
        "### Reading",
        "",
    ]
    if worst is not None:
        lines.append(
            f"- The fastest-growing process judged was {worst.label} at {worst.slope:+.1f} MiB/h "
            f"({worst.judged_on}), against a limit of {LIMIT_MIB_PER_HOUR:g} MiB/h."
        )
    backends = [growth for growth in judged if growth.judged_on == "USS"]
    if backends:
        lines.append(
            f"- PostgreSQL backends: RSS rose by up to {max(g.rss_slope for g in backends):+.1f} MiB/h while their "
            f"own memory (USS) rose by at most {max(g.uss_slope for g in backends):+.1f} MiB/h: the difference is "
            "the shared buffers each backend touches, not memory it keeps."
        )
    if windows:
        lines.append(
            f"- Errors went from {windows[0].error_pct:.2f} % in the first window to {windows[-1].error_pct:.2f} % "
            f"in the last; throughput from {windows[0].rps:,.0f} to {windows[-1].rps:,.0f} requests/s."
        )
    if minutes < 20:
        lines.append(
            f"- A run of {minutes:.0f} minutes is a check of the machinery: a slope fitted over a few minutes swings "
            "with every allocation and says little about an hour."
        )
    lines += [
        "- The raw data (every memory sample, Locust's per-minute counts) stays in the run directory; "
        "`python loadtest/soak.py --report-only RUN_DIR` writes this section again from it.",
        END_MARKER,
    ]
    return "\n".join(lines)


def fmt_load(load: list[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def write_section(doc: Path, section: str) -> None:
    """Replaces the soak section of `doc`, or appends it; everything outside the markers is kept."""
    text = doc.read_text() if doc.exists() else "# Reliability\n"
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(END_MARKER) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def write(run_dir: Path, doc: Path) -> dict:
    result = analyse(run_dir)
    chart(result, doc.parent / CHART)
    write_section(doc, render(result))
    return result


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so Locust and the stack are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("soak: stopped"))
    options = parse_args(sys.argv[1:] if argv is None else argv)
    doc = options.doc
    if options.report_only:
        run_dir = options.report_only
    else:
        options.loadtest.run_dir.mkdir(parents=True, exist_ok=True)
        soak = {
            "users": options.users,
            "minutes": options.minutes,
            "sample_seconds": options.sample_seconds,
            "command": options.loadtest.command,
            "load_before": os.getloadavg(),
        }
        (options.loadtest.run_dir / "soak.json").write_text(json.dumps(soak))
        run_dir = run(options.loadtest)
        soak["load_after"] = os.getloadavg()
        (run_dir / "soak.json").write_text(json.dumps(soak))
    result = write(run_dir, doc)
    print(f"soak: wrote {doc} and {doc.parent / CHART} from {run_dir}", flush=True)
    for growth in result["growths"]:
        print(f"soak: {growth.label}: {growth.slope:+.1f} MiB/h ({growth.judged_on or 'not judged'})", flush=True)
    for window in result["windows"]:
        print(f"soak: window {window.number}: {window.failures:,} errors of {window.requests:,}", flush=True)
    print(
        "soak: verdict " + ", ".join(f"{name} {'pass' if ok else 'FAIL'}" for name, ok in result["verdicts"].items()),
        flush=True,
    )
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
