"""The harnesses stop at once, with one line saying what to install, when a program they run is missing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import programs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path_without_nginx(tmp_path, monkeypatch):
    """A PATH with the shell tools scripts/stack needs before its check, and no nginx or wrk."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname", "id", "mkdir", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    return str(bin_dir)


def test_a_missing_program_is_one_line_naming_the_debian_package(path_without_nginx, monkeypatch):
    monkeypatch.setattr(programs, "SBIN_DIRECTORIES", ())
    with pytest.raises(SystemExit) as stopped:
        programs.programs_require("nginx", "wrk")
    assert str(stopped.value) == "nginx is missing: apt-get install nginx\nwrk is missing: apt-get install wrk"
    programs.programs_require("bash")  # present: nothing happens


def test_a_program_installed_off_path_says_which_directory_to_add(path_without_nginx, tmp_path, monkeypatch):
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "nginx").symlink_to(sys.executable)
    monkeypatch.setattr(programs, "SBIN_DIRECTORIES", (str(sbin),))
    said = programs.missing_program("nginx")
    assert said == f"nginx is in {sbin}, which is not on PATH: add it (export PATH=$PATH:{sbin})"


def run(command: list[str], path: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    return subprocess.run(command, cwd=ROOT, env=env | {"PATH": path}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["scripts/stack"], id="make stack"),
        pytest.param([sys.executable, "bench/run.py", "--no-write"], id="make bench"),
    ],
)
def test_make_stack_and_make_bench_stop_before_starting_anything(path_without_nginx, command):
    finished = run(command, path_without_nginx)
    assert (finished.returncode, finished.stdout) == (1, ""), finished.stderr  # no migration, no stack
    # Exactly the shared check's lines, whatever this machine has in /usr/sbin.
    expected = [programs.missing_program(program) for program in ("nginx", "wrk")[: 1 + ("--no-write" in command)]]
    assert finished.stderr.splitlines() == expected


def test_the_loadtest_soak_and_chaos_stacks_check_before_starting(path_without_nginx, tmp_path, monkeypatch):
    from chaos.stack import ChaosStack
    from loadtest.stack import Stack

    monkeypatch.setattr(programs, "SBIN_DIRECTORIES", ())
    urls = {"database_url": "postgres://nobody@127.0.0.1:1/none", "redis_url": "redis://127.0.0.1:1/0"}
    loadtest_stack = Stack(run_dir=tmp_path / "l", ports=[1, 2, 3, 4, 5], extra_env={}, **urls)
    chaos_ports = {name: 1 for name in ("http", "web1", "web2", "ws1", "ws2")}
    chaos_stack = ChaosStack(run_dir=tmp_path / "c", ports=chaos_ports, **urls)
    for start in (loadtest_stack.start, chaos_stack.prepare):
        with pytest.raises(SystemExit, match=r"^nginx is missing: apt-get install nginx$"):
            start()
    assert not (tmp_path / "l").exists()  # stopped before making its run directory
