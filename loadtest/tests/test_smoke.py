"""The load test, small: each profile (the hall, the public site) for under 2 minutes against the real
stack (`scripts/stack`).

Each fails on more than 1% errors or on any integrity mismatch, never on timing: CI machines are
shared and their speed is unknown. They run in their own database, `<DATABASE_URL's name>_loadsmoke`.
"""

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from loadtest import integrity as integrity_check
from loadtest import report
from loadtest.run import Options, read_created, run

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        not (DATABASE_URL.startswith("postgres") and REDIS_URL), reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL"
    ),
    pytest.mark.skipif(not shutil.which("nginx"), reason="the stack needs nginx"),
]


def smoke_database_url() -> str:
    parts = urllib.parse.urlsplit(DATABASE_URL)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path}_loadsmoke"))


def smoke_options(profile: str, tmp_path: Path, **changes) -> Options:
    """A step of a few minutes' worth of actions: people wait half as long, no wait for a question round (the smoke
    stays short), no ceilings."""
    return Options.for_profile(
        profile,
        settle_seconds=5,
        spawn_rate=50,
        wait_scale=0.5,
        align_to_rounds=False,
        ceiling_seconds=0,
        run_dir=tmp_path / "run",
        out_dir=tmp_path / "report",
        label=f"CI smoke run, {profile}",
        command="pytest loadtest/tests/test_smoke.py",
        **changes,
    )


def run_and_check(options: Options) -> tuple[Path, dict, dict]:
    """Runs the profile's one step; fails on over 1% errors or any integrity mismatch, and unless votes were
    acknowledged both ways (the form and the API). Returns the run directory, its meta and the step's record."""
    run_dir = run(options)
    meta, steps, _ = report.load(run_dir)
    assert [step["users"] for step in steps] == options.steps
    step = steps[0]
    assert step["all"]["error_pct"] <= 1.0, step["all"]["errors"]
    integrity = meta["integrity"]
    assert integrity["exact"], integrity
    assert integrity["missing"] == integrity["repeated"] == 0
    assert integrity["acknowledged_by"].get("form", 0) > 0
    assert integrity["acknowledged_by"].get("api", 0) > 0
    return run_dir, meta, step


def test_200_phones_follow_an_event_and_vote_in_its_windows_with_few_errors_and_every_acknowledged_vote_kept_once(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", smoke_database_url())
    # Rounds of 30 s with 10 s windows (half the wait): a 45 s step holds at least one question.
    options = smoke_options("hall", tmp_path, steps=[200], step_seconds=45, polls=4)
    run_dir, meta, step = run_and_check(options)

    # The hall really did what it claims: a presenter who opened questions, phones that saw them open (and
    # voted in their windows: run_and_check), refused repeats.
    assert step["names"]["POST /api/events/[id]/control/ (open)"]["requests"] > 0
    assert step["names"][report.PUSH]["requests"] > 0
    assert step["names"]["POST /e/[code]/vote/ (again: 409 expected)"]["requests"] > 0
    # Every question shown is in the integrity check, revealed, and the event ended. The first is a word
    # cloud, the second a rating: their ballots were counted exactly too.
    assert meta["event"]["shown"] >= 1
    assert meta["integrity"]["by_kind"]["words"]["ballots"] > 0
    if meta["event"]["shown"] >= 2:
        assert meta["integrity"]["by_kind"]["scale"]["ballots"] > 0
    assert meta["integrity"]["polls"] >= meta["event"]["shown"]
    # One row in the profiles side by side, one in the hall's own table.
    rows = report.write(run_dir, options.out_dir).read_text().splitlines()
    assert sum(row.startswith("| 200 |") for row in rows) == 2


def test_150_visitors_create_polls_vote_both_ways_and_read_results_with_every_acknowledged_vote_kept_once(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", smoke_database_url())
    # 0.5–2.5 s between actions: a few thousand of them in 40 s.
    options = smoke_options("public", tmp_path, steps=[150], step_seconds=40, polls=20)
    run_dir, meta, step = run_and_check(options)

    # The public site really did what it claims: polls created during it both ways, results read both ways.
    assert meta["created"].get("api", 0) > 0 and meta["created"].get("form", 0) > 0
    # A share of every question kind, each counted exactly (the integrity check compares a word cloud's terms).
    assert all(meta["integrity"]["by_kind"][kind]["ballots"] > 0 for kind in ("choice", "scale", "words"))
    assert step["names"]["GET /p/[slug]/results/"]["requests"] > 0
    assert step["names"]["GET /api/polls/[id]/results/"]["requests"] > 0
    # New polls take a random rank of attention, so some of the votes went to polls created during the run.
    created = {slug for slug, _ in read_created(run_dir)}
    assert created & {slug for slug, _, _ in integrity_check.read_acks(run_dir)}
    # Thousands of polls from one address: the profile runs without rate limits, and its report says so.
    assert meta["options"]["stack_env"]["RATELIMIT_ENABLE"] == "0"
    assert "**off** (`RATELIMIT_ENABLE=0`)" in report.write(run_dir, options.out_dir).read_text()
