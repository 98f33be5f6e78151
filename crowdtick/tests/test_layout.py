"""The house's import rules (STYLE.md, "Where code lives"), as `.importlinter` states them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_rule_of_the_house_holds():
    # polls imports no door; web, api and realtime import none of each other; the harnesses reach
    # the app over the wire; no import cycle inside polls.
    lint_imports = Path(sys.executable).parent / "lint-imports"
    checked = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout
