"""Schemathesis over the whole published schema, every check, against a live server.

Rate limits are off for this run: a fuzzer from one address is exactly what they refuse.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

MIN_CASES = 500
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.django_db(transaction=True)
def test_the_whole_schema_survives_fuzzing_with_every_check(live_server, settings, tmp_path):
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
