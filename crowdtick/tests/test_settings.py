"""crowdtick/settings.py as the environment shapes it."""

import runpy
from pathlib import Path

SETTINGS = Path(__file__).resolve().parents[1] / "settings.py"


def settings_with(monkeypatch, **environment: str) -> dict:
    monkeypatch.setenv("SECRET_KEY", "test-only")
    monkeypatch.setenv("DATABASE_URL", "postgres://crowdtick@db.example.com:5432/crowdtick")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_server_side_cursors_stay_on_unless_turned_off(monkeypatch):
    monkeypatch.delenv("DB_DISABLE_SERVER_SIDE_CURSORS", raising=False)
    assert settings_with(monkeypatch)["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_db_disable_server_side_cursors_turns_them_off_for_pgbouncers_transaction_pooling(monkeypatch):
    database = settings_with(monkeypatch, DB_DISABLE_SERVER_SIDE_CURSORS="1")["DATABASES"]["default"]
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
