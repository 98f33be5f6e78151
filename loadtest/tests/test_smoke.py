"""The load test, small: 200 users for under 2 minutes against the real stack (`scripts/stack`).

It fails on more than 1% errors or on any integrity mismatch, never on timing: CI machines are
shared and their speed is unknown. It runs in its own database, `<DATABASE_URL's name>_loadsmoke`.
"""

import os
import shutil
import urllib.parse

import pytest

from loadtest import report
from loadtest.run import Options, run

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


def test_200_users_vote_watch_and_create_with_few_errors_and_every_acknowledged_vote_kept_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", smoke_database_url())
    options = Options(
        steps=[200],
        step_seconds=45,
        settle_seconds=5,
        spawn_rate=50,
        wait_scale=0.5,  # people read and wait half as long, so 45 s see a few hundred votes
        align_to_rounds=False,  # no wait for the next round: the smoke stays short
        polls=4,
        ceiling_seconds=0,
        run_dir=tmp_path / "run",
        out_dir=tmp_path / "report",
        label="CI smoke run",
        command="pytest loadtest/tests/test_smoke.py",
    )
    run_dir = run(options)
    meta, steps, _ = report.load(run_dir)

    assert [step["users"] for step in steps] == [200]
    step = steps[0]
    assert step["all"]["error_pct"] <= 1.0, step["all"]["errors"]
    integrity = meta["integrity"]
    assert integrity["exact"], integrity
    # The run really did what it claims: votes both ways, refused repeats, screens that saw votes.
    assert integrity["acknowledged_by"].get("form", 0) > 0
    assert integrity["acknowledged_by"].get("api", 0) > 0
    assert integrity["missing"] == integrity["repeated"] == 0
    assert step["names"]["POST /p/[slug]/vote/ (again: 409 expected)"]["requests"] > 0
    assert step["names"][report.PUSH]["requests"] > 0
    assert report.write(run_dir, options.out_dir).read_text().count("| 200 |") == 1
