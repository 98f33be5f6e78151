"""The chaos checker on synthetic histories: what passes, and that each fault it must catch fails."""

from chaos import checker, report


def attempt(t, outcome, status, *, voter="v", retry_after=None):
    return {"t_sent": t, "t_done": t + 0.1, "poll": "p", "voter": voter, "via": "api", "status": status,
            "outcome": outcome, "retry_after": retry_after}  # fmt: skip


def result(history, *, pause=None, integrity=None, settled=3.0, viewers=None):
    r = {
        "scenario": "postgres" if pause else "gunicorn",
        "fault": {"fault_at": 15.0, "recovered_at": 45.0},
        "history": checker.history_summary(history, pause=pause),
        "integrity": {"missing": 0, "repeated": 0, "tally_mismatches": [], **(integrity or {})},
        "tallies_settled_after": settled,
        "viewers": viewers,
    }
    r["verdicts"] = checker.verdicts(r)
    return r


def test_a_clean_history_passes_every_criterion():
    history = [attempt(t, "acknowledged", 201, voter=f"v{t}") for t in range(10)]
    assert all(result(history)["verdicts"].values())


def test_a_vote_acknowledged_twice_counts_as_duplicated():
    history = [attempt(1, "acknowledged", 201), attempt(2, "acknowledged", 201)]
    assert result(history)["verdicts"]["duplicated = 0"] is False


def test_a_lost_vote_fails():
    assert result([attempt(1, "acknowledged", 201)], integrity={"missing": 1})["verdicts"]["lost = 0"] is False


def test_a_2xx_while_postgresql_is_paused_fails_and_503s_with_retry_after_pass():
    refused = [attempt(20 + t, "refused", 503, voter=f"r{t}", retry_after="5") for t in range(5)]
    ok = result(refused, pause=(15.0, 45.0))["verdicts"]
    assert ok["no 2xx in pause"] and ok["503 + Retry-After in pause"]
    confirmed = result([*refused, attempt(30, "acknowledged", 201, voter="x")], pause=(15.0, 45.0))["verdicts"]
    assert confirmed["no 2xx in pause"] is False


def test_a_503_without_retry_after_in_the_pause_fails():
    history = [attempt(20, "refused", 503, voter="a", retry_after=None)]
    assert result(history, pause=(15.0, 45.0))["verdicts"]["503 + Retry-After in pause"] is False


def test_the_void_scenario_fails_when_the_owner_voided_nothing():
    history = [attempt(1, "acknowledged", 201)]
    voided, nothing = result(history), result(history)
    voided["fault"]["voided"], nothing["fault"]["voided"] = 160, 0
    assert checker.verdicts(voided)["burst voided"] is True
    assert checker.verdicts(nothing)["burst voided"] is False
    assert "burst voided" not in result(history)["verdicts"]  # the other scenarios void nothing


def test_tallies_settle_when_every_later_sample_matches():
    samples = [(10.0, True), (31.0, False), (35.0, False), (38.0, True), (39.0, True)]
    assert checker.tallies_settled_after(samples, recovered_at=30.0) == 8.0
    assert checker.tallies_settled_after([*samples, (40.0, False)], recovered_at=30.0) is None


def test_viewers_that_reconnect_and_show_the_record_count_in_time_count_as_right():
    dropped = {"opens": [1.0, 31.0], "closes": [30.0], "total": 100, "total_since": 62.0}
    stayed = {"opens": [1.0], "closes": [], "total": 100, "total_since": 61.0}
    gone = {"opens": [1.0], "closes": [30.0], "total": 40, "total_since": 20.0}
    summary = checker.viewers_summary([dropped, stayed, gone], fault_at=30.0, record_total=100)
    assert summary["right_within_deadline"] == 2 and summary["dropped"] == 2 and summary["reconnected"] == 1
    assert result([], viewers=summary)["verdicts"]["≥99% viewers right ≤ 70 s"] is False


def test_the_report_replaces_only_its_own_section(tmp_path):
    out = tmp_path / "reliability.md"
    out.write_text(f"# Reliability\n\n## Soak\nkept\n\n{report.START}\nold\n{report.END}\n")
    args = type("Args", (), {"scenarios": [], "attempts": 1, "viewers": 1, "pause_seconds": 30})()
    machine = {"cores": 2, "load_before": (0, 0, 0), "load_after": (0, 0, 0)}
    report.write(out, [], args=args, machine=machine, started=0, run_dir=tmp_path)
    text = out.read_text()
    assert "## Soak\nkept" in text and "old" not in text and text.count(report.START) == 1
