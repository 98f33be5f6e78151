"""scripts/capacity_model.py: every figure it uses is where it says, the model reproduces this machine's
measurements within 30%, and its sizing only ever grows with the load."""

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "capacity_model.py"


def _load():
    spec = importlib.util.spec_from_file_location("capacity_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


model = _load()


def _flat(text: str) -> str:
    return " ".join(text.split())  # docs wrap lines; a quote may span a line break


def _as_fitted(source: str) -> str:
    """The cited file as it was at the commit the model is fitted on (a benchmark run rewrites its page)."""
    try:
        shown = subprocess.run(
            ["git", "show", f"{model.FITTED_ON}:{source}"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the model's sources are read from git history (commit {model.FITTED_ON}): {error}")
    return shown.stdout


@pytest.mark.parametrize("name", sorted(model.figures()))
def test_every_figure_is_printed_in_the_file_it_cites(name):
    figure = model.figures()[name]
    assert figure.text in figure.quote, f"{name}: {figure.text!r} is not in its own quote"
    assert _flat(figure.quote) in _flat(_as_fitted(figure.source)), f"{name}: quote not in {figure.source}"


def test_the_model_reproduces_every_figure_measured_here_within_30_percent():
    missed = [(check.what, round(check.ratio, 2)) for check in model.checks() if not check.within]
    assert not missed


def test_the_stack_the_model_describes_is_the_procfiles():
    procfile = (ROOT / "Procfile").read_text()
    assert len(re.findall(r"^web\d+: gunicorn ", procfile, re.M)) == model.STACK_WEB_INSTANCES
    assert len(re.findall(r"^ws\d+: uvicorn ", procfile, re.M)) == model.STACK_WS_PROCESSES
    assert model.WEB_WORKERS == 1  # a web pod is one process: one core


def test_the_hall_fit_gives_back_the_step_it_was_fitted_on():
    votes_per_min, users = model.H2000_VOTES_PER_MIN, model.H2000_USERS
    mean = model.hall_cores(users, model.votes_per_s(votes_per_min, burst=False))
    busiest = model.hall_cores(users, model.votes_per_s(votes_per_min, burst=True))
    assert mean == pytest.approx(model.H2000_MACHINE - model.H2000_OTHER)
    assert busiest == pytest.approx(model.H2000_BURST_MACHINE - model.H2000_OTHER)
    assert all(per_phone >= 0 and per_vote > 0 for per_phone, per_vote in model.HALL.values())


def test_a_burst_carries_the_minutes_votes_faster_than_their_mean():
    assert model.votes_per_s(60, burst=True) > model.votes_per_s(60, burst=False) == 1


def test_the_hub_gives_4_pushes_a_second_up_to_its_viewer_count_and_fewer_beyond():
    full = model.viewers_at_full_rate()
    assert model.pushes_per_viewer(full) == pytest.approx(4)
    assert model.pushes_per_viewer(full + 1) < 4
    assert model.viewers_at_full_rate(2 * model.LIVE_SENDS_PER_SECOND) > full


@pytest.mark.parametrize("field", ["web_pods", "ws_pods_live", "ws_pods_event", "redis_shard_load", "pg_cores"])
def test_more_phones_on_a_hot_poll_never_need_less(field):
    sizes = [getattr(model.size_hot_poll(phones), field) for phones in (1, 1_000, 10_000, 100_000, 1_000_000)]
    assert sizes == sorted(sizes)
    assert sizes[-1] > sizes[0]


@pytest.mark.parametrize("field", ["web_pods", "ws_pods", "redis_shards", "redis_mb", "pg_cores", "db_gb"])
def test_more_polls_never_need_less(field):
    sizes = [getattr(model.size_many_polls(polls), field) for polls in (1, 1_000, 10_000, 100_000, 1_000_000)]
    assert sizes == sorted(sizes)
    assert sizes[-1] > sizes[0]


def test_pods_grow_in_step_with_the_load():
    small, big = model.size_hot_poll(100_000), model.size_hot_poll(1_000_000)
    assert 9 * small.web_pods <= big.web_pods <= 10 * small.web_pods
    assert big.pg_cores == pytest.approx(10 * small.pg_cores, rel=0.01)


def test_what_saturates_first_is_a_unit_that_cannot_scale_out_once_the_load_passes_it():
    limits = model.hot_poll_limits()
    stuck = next(limit for limit in limits if not limit.scales_out)
    assert model.saturates_first(limits, stuck.at * 0.99).startswith("pods only")
    assert model.saturates_first(limits, stuck.at * 1.01) == stuck.unit
    assert [limit.at for limit in limits] == sorted(limit.at for limit in limits)


def test_a_ballot_takes_more_than_its_data_and_less_than_a_kilobyte():
    data = 8 + model.VOTER_KEY_CHARS + 1 + model.IP_HASH_CHARS + 1 + 8 + 8 + 8 + 1 + 1
    assert data < model.BALLOT_BYTES < 1_024
    assert model.heap_bytes([model.INT8] * 4, column_count=4, has_nulls=False) < model.heap_bytes(
        [model.INT8] * 8, column_count=8, has_nulls=False
    )


def test_the_reconciler_takes_longer_for_more_polls_and_fits_its_measured_run():
    assert model.reconcile_seconds(model.RECONCILE_POLLS) == pytest.approx(model.RECONCILE_SECONDS)
    assert model.reconcile_seconds(20_000) > model.reconcile_seconds(10_000)
    assert math.isclose(model.reconcile_seconds(0), 0)


def test_docs_scaling_holds_the_scripts_output_as_it_is_now():
    doc = (ROOT / "docs" / "scaling.md").read_text()
    block = doc.split(model.BEGIN, 1)[1].split(model.END, 1)[0]
    assert block == "\n" + model.render(), "run: .venv/bin/python scripts/capacity_model.py --write"


def test_the_script_runs_alone_and_prints_its_tables():
    printed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True).stdout
    assert printed == model.render()
    assert "| within ±30% |" in printed
