"""`make bench-live`'s "next question" analysis: what a phone records, and latency from the presenter's POST."""

import importlib.util
import math
from pathlib import Path

BENCH_LIVE = Path(__file__).resolve().parents[2] / "bench" / "live"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_live_{name}", BENCH_LIVE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load("run")
viewers = load("viewers")

STATE_2 = 2 << 32  # event version 2, results hidden
STATE_3 = 3 << 32


def test_a_phone_records_its_roots_version_not_the_revealed_results_one():
    phone = viewers.Viewer(traced=True)
    phone.receive(
        f'<div id="live-region" hx-swap-oob="innerHTML"><div class="live-state" data-version="{STATE_3 + 7}">'
        '<section id="results" data-version="7"></section></div></div>'
    )
    assert [version for _, version in phone.trace] == [STATE_3 + 7]


def test_each_phone_has_the_question_at_its_first_push_of_that_state_or_a_later_one():
    rounds = [(100.0, STATE_2), (110.0, STATE_3)]
    on_time = [(99.0, STATE_2 - 1), (100.2, STATE_2), (110.3, STATE_3)]
    # Missed state 2 (a push coalesced away): state 3 shows the question of round 1 too, as later news.
    skipped = [(99.0, STATE_2 - 1), (110.4, STATE_3)]
    per_round = run.next_question_latencies(rounds, [on_time, skipped])
    assert [[round(d, 3) for d in delays] for delays in per_round] == [[0.2, 10.4], [0.3, 0.4]]


def test_a_phone_that_never_got_the_state_counts_as_never_and_one_that_never_opened_not_at_all():
    per_round = run.next_question_latencies([(100.0, STATE_2)], [[(99.0, STATE_2 - 1)], []])
    assert per_round == [[math.inf]]


def test_the_summary_says_whether_the_p95_met_the_target_for_that_many_phones():
    fast = run.next_question_summary([[0.1] * 100, [0.1] * 50 + [0.2] * 50], phones=1000)
    assert fast["latency_ms"] == {"p50": 100, "p95": 200, "max": 200}
    assert (fast["target_p95_ms"], fast["met"], fast["never"], fast["pairs"]) == (500, True, 0, 200)
    slow = run.next_question_summary([[0.1] * 90 + [0.6] * 10], phones=1000)
    assert slow["met"] is False and slow["latency_ms"]["p95"] == 600
    untargeted = run.next_question_summary([[0.1]], phones=100)
    assert (untargeted["target_p95_ms"], untargeted["met"]) == (None, None)


def test_a_phone_that_never_got_a_round_misses_the_target_and_is_counted_once():
    per_round = [[0.1, math.inf, 0.1], [0.1, math.inf, 0.1], [0.1, 0.1, 0.1]]
    summary = run.next_question_summary(per_round, phones=5000)
    assert (summary["never"], summary["phones_missing_a_round"]) == (2, 1)
    assert summary["latency_ms"]["max"] is None  # shown as "never"
    assert summary["per_round_ms"][0] == {"first": 100, "p50": 100, "p95": None, "last": None}
