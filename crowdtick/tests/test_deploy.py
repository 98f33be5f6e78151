"""The deployment files: docker-compose.yml, the nginx config of `make stack`, the Procfile."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = {"postgres", "redis", "web1", "web2", "ws1", "ws2", "worker", "beat", "broadcaster", "nginx"}


@pytest.fixture(scope="module")
def compose():
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        ["docker-compose", "--file", str(ROOT / "docker-compose.yml"), "config"],
        env=os.environ | {"SECRET_KEY": "compose-config-check"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_runs_the_whole_topology_each_long_running_service_with_a_health_check(compose):
    services = compose["services"]
    assert LONG_RUNNING <= set(services)
    assert [name for name in LONG_RUNNING if "healthcheck" not in services[name]] == []
    assert services["nginx"]["ports"][0]["published"] in (8080, "8080")


def test_compose_keeps_redis_appending_to_its_log(compose):
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_compose_starts_web_after_the_migration_and_refuses_to_run_without_a_secret_key(compose):
    assert compose["services"]["web1"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    result = subprocess.run(
        ["docker-compose", "--file", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        env={key: value for key, value in os.environ.items() if key != "SECRET_KEY"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.fixture
def nginx_conf(tmp_path):
    render = [sys.executable, str(ROOT / "deploy" / "render_nginx.py"), str(tmp_path), "--listen", "127.0.0.1:8499"]
    render += [
        "--http",
        "127.0.0.1:8401",
        "--http",
        "127.0.0.1:8402",
        "--ws",
        "127.0.0.1:8411",
        "--ws",
        "127.0.0.1:8412",
    ]
    render += ["--static-root", str(tmp_path / "static")]
    return Path(subprocess.run(render, capture_output=True, text=True, check=True).stdout.strip())


def test_the_generated_nginx_config_passes_nginx_t(nginx_conf, tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed")
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(nginx_conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_balances_http_and_websockets_over_two_instances_each(nginx_conf):
    site = (nginx_conf.parent / "crowdtick.conf").read_text()
    assert "server 127.0.0.1:8401; server 127.0.0.1:8402;" in site
    assert "server 127.0.0.1:8411; server 127.0.0.1:8412;" in site
    websocket = site[site.index("location /ws/") : site.index("location / {")]
    for needed in ("proxy_pass http://crowdtick_ws", "Upgrade $http_upgrade", "X-Real-IP", "proxy_read_timeout"):
        assert needed in websocket
    assert str(nginx_conf.parent) in nginx_conf.read_text()  # pid, logs and temp files in the run directory


def test_the_procfile_has_every_process_of_the_stack():
    names = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if line and line[0] != "#"}
    assert names == {"web1", "web2", "ws1", "ws2", "worker", "beat", "broadcaster", "nginx"}
