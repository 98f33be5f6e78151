"""The soak's analysis on synthetic samples: memory slopes after the warm-up, error windows, the document."""

import pytest

from loadtest.soak import (
    END_MARKER,
    MIB,
    START_MARKER,
    error_windows,
    errors_pass,
    memory_growth,
    windows_for,
    write_section,
)

START = 1_000_000.0
MINUTES = 30
EVERY = 15  # seconds between samples


def samples_of(processes: dict[str, tuple[str, callable]]) -> list[dict]:
    """A 30-minute run sampled every 15 s (the last sample 15 s before the end); each process's RSS (bytes) is a
    function of the seconds since the start and the sample's index."""
    samples = []
    for index in range(MINUTES * 60 // EVERY):
        seconds = index * EVERY
        present = {
            pid: [role, 0.0, rss(seconds, index), rss(seconds, index)]
            for pid, (role, rss) in processes.items()
            if rss(seconds, index) is not None
        }
        samples.append({"t": START + seconds, "processes": present})
    return samples


def leaking(seconds: float, index: int) -> float:
    """100 MiB, +300 MiB while warming up (first 5 minutes), then +20 MiB/h with ±1 MiB of noise
    that is +1 at the first sample after the warm-up and -1 at the last: only a fit over every point
    after the warm-up finds 20."""
    warm = min(seconds, 300) / 300 * 300
    after = max(0.0, seconds - 300)
    noise = 1 if index % 2 == 0 else -1
    return (100 + warm + 20 * after / 3600 + noise) * MIB


def steady(seconds: float, index: int) -> float:
    """Grows 50 MiB while warming up, then stays at 150 MiB but for ±2 MiB of noise."""
    return (100 + min(seconds, 300) / 6 + (2 if index % 2 else -2)) * MIB


def test_memory_growth_is_the_least_squares_slope_of_rss_after_the_warm_up():
    samples = samples_of(
        {
            "1": ("gunicorn (HTTP)", leaking),
            "2": ("uvicorn (WebSockets)", steady),
            "3": ("locust (load generator)", leaking),
            "4": ("postgres (this database)", lambda s, i: steady(s, i) if s < 900 else None),
        }
    )
    descriptions = {"1": ["gunicorn", "gunicorn --bind 127.0.0.1:57001", 9], "2": ["uvicorn", "uvicorn", 9]}

    growths, came_and_went = memory_growth(samples, descriptions, load_start=START, load_end=START + MINUTES * 60)

    by_pid = {growth.pid: growth for growth in growths}
    assert by_pid["1"].rss_slope == pytest.approx(20, abs=0.2)
    assert not by_pid["1"].passed
    assert by_pid["1"].label == "gunicorn :57001 master (1)"
    assert by_pid["2"].rss_slope == pytest.approx(0, abs=0.5)
    assert by_pid["2"].passed
    assert by_pid["2"].warm_mib == pytest.approx(150, abs=2.5)
    # The load generator is shown, not judged; a backend that closed mid-run has no slope to judge.
    assert by_pid["3"].judged_on is None and by_pid["3"].passed
    assert "4" not in by_pid and came_and_went == {"postgres (this database)": 1}


def test_a_shell_that_only_waits_is_left_out():
    samples = samples_of({"5": ("honcho (supervisor)", steady)})

    growths, came_and_went = memory_growth(
        samples, {"5": ["sh", "/bin/sh -c nginx", 1]}, load_start=START, load_end=START + MINUTES * 60
    )

    assert growths == [] and not came_and_went


def minutes(*counts: tuple[int, int]) -> list[dict]:
    return [
        {"started_at": START + 60 * n, "ended_at": START + 60 * (n + 1), "all": {"requests": r, "failures": f}}
        for n, (r, f) in enumerate(counts)
    ]


def test_errors_are_added_up_five_minutes_at_a_time_in_a_30_minute_run():
    steps = minutes(*[(1000, 1)] * 5, *[(1000, 0)] * 20, *[(1000, 2)] * 5)

    windows = error_windows(steps, windows_for(len(steps)))

    assert [(w.requests, w.failures) for w in windows] == [(5000, 5), (5000, 0), (5000, 0), (5000, 0), (5000, 0),
                                                           (5000, 10)]  # fmt: skip
    assert [(w.start_minute, w.end_minute) for w in windows][-1] == (25, 30)
    assert windows[0].error_pct == pytest.approx(0.1)
    assert errors_pass(windows) == (False, pytest.approx(0.05))  # the last window has more errors than the first


def test_errors_pass_when_none_grow_and_fail_above_one_percent_in_all():
    assert errors_pass(error_windows(minutes(*[(1000, 0)] * 6), 1))[0]  # 0 % then 0 %
    assert errors_pass(error_windows(minutes((1000, 3), (1000, 1)), 1))[0]
    assert not errors_pass(error_windows(minutes((1000, 30), (1000, 10)), 1))[0]  # 2 % in all


def test_the_soak_section_is_replaced_and_everything_around_it_kept(tmp_path):
    doc = tmp_path / "reliability.md"
    write_section(doc, f"{START_MARKER}\nfirst soak\n{END_MARKER}")
    doc.write_text(doc.read_text() + "\n<!-- chaos:start -->\nchaos results\n<!-- chaos:end -->\n")

    write_section(doc, f"{START_MARKER}\nsecond soak\n{END_MARKER}")

    text = doc.read_text()
    assert text.startswith("# Reliability\n")
    assert "second soak" in text and "first soak" not in text
    assert text.count(START_MARKER) == 1 and text.endswith("<!-- chaos:start -->\nchaos results\n<!-- chaos:end -->\n")
