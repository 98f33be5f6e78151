"""Schemathesis over the whole published schema, every check, against a live server.

Rate limits are off for this run: a fuzzer from one address is exactly what they refuse.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from api.views import EXAMPLE_POLL_ID
from polls import poll_cache, services
from polls.models import Poll

MIN_CASES = 500
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture
def example_word_cloud(transactional_db):
    """A word cloud under the poll id the vote examples name: the examples phase, and the coverage
    phase's variations of the examples, then send words (and choices, and values) to a real poll.
    Polls the fuzzer creates are voted on only now and then, through the schema's links."""
    poll_cache.poll_changed(EXAMPLE_POLL_ID)  # a copy an interrupted run left in Redis is not served
    fields = services.PollFields(question="One word?", kind=Poll.Kind.WORDS, max_words=5, dedupe=Poll.Dedupe.NONE)
    draft = services.poll_draft(fields, owner_token_hash="-")
    draft.poll.slug = EXAMPLE_POLL_ID
    with transaction.atomic():
        poll = services.poll_draft_save(draft)
    yield poll
    # The database is emptied after the test, without signals: other tests must find no such poll.
    poll_cache.poll_changed(EXAMPLE_POLL_ID)


@pytest.mark.django_db(transaction=True)
def test_the_whole_schema_survives_fuzzing_with_every_check(live_server, settings, tmp_path, example_word_cloud):
    settings.RATELIMIT_ENABLE = False
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "--no-color",
        "run", f"{live_server.url}/api/schema/",
        "--checks", "all",
        "--max-examples", "60",
        "--seed", "20261129",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "20",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = run.stdout[-4000:]
    print(summary)
    assert run.returncode == 0, summary
    cases = re.search(r"(\d+) generated", run.stdout)
    assert cases and int(cases.group(1)) >= MIN_CASES, summary
    assert Poll.objects.get(pk=example_word_cloud.pk).ballots.exists(), "no words reached the word cloud"
