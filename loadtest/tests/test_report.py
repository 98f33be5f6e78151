"""The load test report's reading of CPU samples: a step's busiest seconds, not only its average."""

from datetime import UTC, datetime

from loadtest.report import busiest_window, nginx_request_times, percentiles, resources, saturation
from loadtest.stepstats import window_start

START = 1_000_000.0


def samples_of(busy_share_per_second: list[tuple[float, float, float]]) -> list[dict]:
    """One sample a second on a 2-core machine; each second gives the machine's busy share and the cores
    that gunicorn and Locust used in it."""
    samples, busy, total, gunicorn, locust = [], 0.0, 0.0, 0.0, 0.0
    for second, (share, gunicorn_cores, locust_cores) in enumerate([(0.0, 0.0, 0.0), *busy_share_per_second]):
        busy, total = busy + 2 * share, total + 2
        gunicorn, locust = gunicorn + gunicorn_cores, locust + locust_cores
        samples.append(
            {
                "t": START + second,
                "machine": {"busy": busy, "total": total},
                "processes": {"1": ["gunicorn (HTTP)", gunicorn, 0], "2": ["locust (load generator)", locust, 0]},
            }
        )
    return samples


def test_a_saturated_burst_shows_through_a_quiet_step_average():
    # 60 s: 15 s of a question round at 100% (gunicorn 1.2 cores, Locust 0.8), the rest at 10%.
    seconds = [(1.0, 1.2, 0.8)] * 15 + [(0.1, 0.1, 0.1)] * 45
    samples = samples_of(seconds)
    burst = busiest_window(samples, START, START + 60)
    assert round(burst["machine_busy_pct"]) == 100
    assert burst["seconds"] == 10
    assert burst["saturated_seconds"] == 15
    assert round(burst["roles"]["gunicorn (HTTP)"]["cores"], 2) == 1.2

    step = {"resources": resources(samples, START, START + 60), "burst": burst}
    text = saturation(step)
    assert text.startswith("CPU: in the step's busiest 10 s the machine was 100% busy")
    assert "gunicorn (HTTP) 1.20" in text and "locust (load generator) 0.80" in text
    assert "90% busy or more for 15 of 60 s, 33% busy on average" in text


def test_a_steady_step_has_no_saturated_seconds():
    samples = samples_of([(0.3, 0.3, 0.2)] * 60)
    burst = busiest_window(samples, START, START + 60)
    assert round(burst["machine_busy_pct"]) == 30
    assert burst["saturated_seconds"] == 0
    peak = busiest_window(samples, START, START + 60, seconds=1)
    text = saturation({"resources": burst, "burst": burst, "peak_second": peak})
    assert text.startswith("nothing the sampler sees ran out: in the step's busiest 10 s the machine was 30% busy")
    assert "its busiest second 30% busy, the hottest process in it gunicorn (HTTP) at 0.30 of a core" in text


def test_a_step_shorter_than_the_window_has_no_busiest_window():
    assert busiest_window(samples_of([(1.0, 1.0, 1.0)] * 5), START, START + 5) == {}


def test_nginx_times_come_from_its_access_log_without_websockets_or_the_ceiling(tmp_path):
    # Lines as deploy/nginx/crowdtick.conf.template's crowdtick_masked format writes them, $msec last.
    log = tmp_path / "nginx-access.log"
    noon = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
    log.write_text(
        '127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] "GET /p/abc/ HTTP/1.1" 200 5120 '
        f'"-" "locust" 0.012 {noon + 0.25:.3f}\n'
        '127.0.0.1 - - [29/Nov/2026:12:00:01 +0000] "POST /p/abc/vote/ HTTP/1.1" 200 900 '
        f'"http://127.0.0.1/p/abc/" "Phone 1.5 (a number in it)" 0.101 {noon + 1.875:.3f}\n'
        '127.0.0.1 - - [29/Nov/2026:12:00:01 +0000] "GET /ws/polls/abc/ HTTP/1.1" 101 300 '
        f'"-" "locust" 95.000 {noon + 1:.3f}\n'
        f'127.0.0.1 - - [29/Nov/2026:12:00:02 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "wrk" 0.001 {noon + 2:.3f}\n'
        # A line of a run from before $msec was logged: the whole second is all there is.
        '127.0.0.1 - - [29/Nov/2026:12:00:03 +0000] "GET /p/abc/results/ HTTP/1.1" 200 800 "-" "locust" 0.004\n'
    )
    times = nginx_request_times(log)
    assert times == [(noon + 0.25, 12.0), (noon + 1.875, 101.0), (noon + 3, 4.0)]
    assert percentiles([ms for _, ms in times]) == {"p50": 12.0, "p95": 101.0, "p99": 101.0}
    assert nginx_request_times(tmp_path / "missing.log") == []


def test_a_step_window_starts_with_a_question_round():
    # Rounds of 60 s: a round that began under a second ago still counts (its burst starts 2 s in).
    assert window_start(1200.4, round_seconds=60, aligned=True) == 1200
    assert window_start(1201.5, round_seconds=60, aligned=True) == 1260
    assert window_start(1259.9, round_seconds=60, aligned=True) == 1260
    assert window_start(1201.5, round_seconds=30, aligned=True) == 1230
    assert window_start(1201.5, round_seconds=60, aligned=False) == 1201.5
