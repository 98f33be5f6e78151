"""deploy/k8s: rendered as `kubectl kustomize` renders it (kustomize_lite), then checked against the
Kubernetes API schemas, checkov, the Procfile, the site's URLs and the settings it reads."""

import ast
import inspect
import json
import os
import re
import runpy
import shlex
import subprocess
import types
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

import crowdtick.env
from crowdtick.tests.kustomize_lite import Unsupported, build

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"
KUBERNETES_VERSION = "1.31"
# checkov lives in a venv of its own (`make test` installs it): it pins packaging<24, pytest needs >=24.
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# Stand-ins for the Secret's values, so settings.py runs as in a pod.
SECRETS = {
    "SECRET_KEY": "test-only",
    "DATABASE_URL": "postgres://crowdtick@db/crowdtick",
    "REDIS_URL": "redis://redis/0",
}

# Variables the settings read that the ConfigMap leaves unset on purpose; a name here that nothing reads fails.
_MEASURED = "A measured default for one ASGI process (settings.py); a ws pod runs one."
_PRODUCT = "The site's own rule, the same wherever it runs."
LEFT_AT_DEFAULT = {
    "CSRF_TRUSTED_ORIGINS": "The site's own https origin passes once the Ingress says https; only others go here.",
    "DB_POOL": "A persistent connection per thread, as measured in docs/benchmarks.md; behind PgBouncer it pools.",
    "DB_POOL_MIN": "Read only with DB_POOL=1.",
    "DB_POOL_MAX": "Read only with DB_POOL=1.",
    "DB_CONN_MAX_AGE": "Connections kept 600 s, as everywhere else.",
    "DB_WAIT_TIMEOUT": "3 s before a request answers 503; the migration Job sets 0 (migrate.yaml).",
    "DB_HEALTH_CHECKS": "A dropped connection costs one 503, not a round trip on every request (settings.py).",
    "DB_DISABLE_SERVER_SIDE_CURSORS": "Off for PostgreSQL itself; 1 behind PgBouncer's transaction pooling.",
    "SQLITE_PATH": "Read only without DATABASE_URL, which the Secret sets.",
    "REDIS_SHARD_URLS": "One Redis (REDIS_URL) unless sharded: docs/deploy-k8s.md adds the list to every pod.",
    "LIVE_SENDS_PER_SECOND": _MEASURED,
    "WS_SOCKETS_PER_NETWORK": _MEASURED,
    "SECURE_HSTS_SECONDS": "A year, once SECURE_SSL_REDIRECT is on.",
    "RATELIMIT_ENABLE": _PRODUCT,
    "RATELIMIT_WINDOW": _PRODUCT,
    "RATELIMIT_VOTES_PER_ADDRESS": _PRODUCT,
    "RATELIMIT_VOTES_PER_VOTER": _PRODUCT,
    "RATELIMIT_POLLS_PER_ADDRESS": _PRODUCT,
    "RATELIMIT_POLLS_PER_ADDRESS_PER_DAY": _PRODUCT,
    "POLL_ARCHIVE_AFTER_DAYS": _PRODUCT,
    "EXPORT_INLINE_MAX_BALLOTS": _PRODUCT,
    "LOG_LEVEL": "Warnings and errors, as in every other setup; Celery's own --loglevel is INFO.",
    "WEB_WORKERS": "One gunicorn process per core, and a web pod's CPU limit is one core (gunicorn.conf.py).",
    "WEB_THREADS": "8 threads overlap the waits on PostgreSQL and Redis (gunicorn.conf.py).",
}
# ConfigMap keys that are no setting of ours.
PROCESS_ENVIRONMENT = {"HOME"}

# The Procfile's variables, as a pod has them: `make stack` gives each process a port of its own, a pod
# listens on its container port; the run directory is the pod's writable /tmp.
RUN_DIR = "/tmp"
# Where a pod must differ from a process behind the stack's local nginx: it listens on its pod's address,
# and its proxy, the ingress controller, is not on 127.0.0.1 (ws.yaml says why that is safe).
POD_DIFFERENCES = {
    ("--bind", "127.0.0.1:8000"): "0.0.0.0:8000",
    ("--host", "127.0.0.1"): "0.0.0.0",
    ("--forwarded-allow-ips", "127.0.0.1"): "*",
}


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return build(OVERLAY)


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    (obj,) = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    return obj


def workloads(objects: list[dict]) -> dict[str, dict]:
    """The Deployments and the Job, by their component label."""
    found = of_kind(objects, "Deployment") + of_kind(objects, "Job")
    return {obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj for obj in found}


def the_container(workload: dict) -> dict:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def argv(container: dict) -> list[str]:
    return container["command"] + container.get("args", [])


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()) and all(
        labels.get(term["key"]) in term["values"] for term in selector.get("matchExpressions", [])
    )


@pytest.mark.parametrize("folder", [K8S / "base", OVERLAY], ids=["base", "overlay"])
def test_every_manifest_is_valid_for_the_kubernetes_api_in_strict_mode(folder):
    errors = []
    for obj in build(folder):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{where}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{where}: {error.message}")
    assert errors == []


def test_the_renderer_refuses_a_patch_it_cannot_apply_as_kustomize_would(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [base]\npatches: [{path: more.yaml}]\n")
    (tmp_path / "more.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: crowdtick-web}\n"
        "spec: {template: {spec: {containers: [{name: web, image: other}]}}}\n"
    )
    (tmp_path / "base").symlink_to(K8S / "base")
    with pytest.raises(Unsupported, match="a list under 'containers'"):
        build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [base]\nnamePrefix: staging-\n")
    with pytest.raises(Unsupported, match="namePrefix"):
        build(tmp_path)


def test_checkov_finds_nothing_but_the_checks_skipped_with_a_reason(objects, tmp_path):
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} is missing under CI (make test installs it)")
        pytest.skip(f"{CHECKOV} is not installed (make test installs it)")
    rendered = tmp_path / "crowdtick.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run(
        [str(CHECKOV), "--file", str(rendered), "--config-file", str(K8S / ".checkov.yaml"), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("{"), result.stderr
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert result.returncode == 0, result.stderr
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def as_in_a_pod(command: str, container: dict) -> list[str]:
    ports = {str(port["containerPort"]) for port in container.get("ports", [])}

    def value(match: re.Match) -> str:
        if match[1].endswith("_PORT"):
            (port,) = ports
            return port
        return {"CT_RUN_DIR": RUN_DIR}[match[1]]

    words = shlex.split(re.sub(r"\$(\w+)", value, command))
    return [POD_DIFFERENCES.get((before, word), word) for before, word in zip([None, *words], words, strict=False)]


def test_every_procfile_process_but_nginx_runs_in_a_workload_with_the_same_command(objects):
    found = workloads(objects)
    processes = procfile()
    del processes["nginx"]  # the Ingress does its work: test_the_ingress_sends_websockets_to_ws_and_the_rest_to_web
    for name, command in processes.items():
        container = the_container(found[re.sub(r"\d+$", "", name)])
        assert argv(container) == as_in_a_pod(command, container), name


def test_the_ingress_sends_websockets_to_ws_and_the_rest_to_web(objects):
    routes = {}
    for ingress in of_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = named(objects, "Service", path["backend"]["service"]["name"])
                assert path["backend"]["service"]["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
                pods = [
                    component
                    for component, workload in workloads(objects).items()
                    if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(workload))
                ]
                routes[path["path"]] = (pods, ingress["metadata"]["annotations"])
    assert routes.keys() == {"/", "/ws/"}
    assert routes["/"][0] == ["web"] and routes["/ws/"][0] == ["ws"]
    ws_annotations = routes["/ws/"][1]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(ws_annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600


def test_the_migration_job_runs_what_docker_composes_migrate_service_runs(objects):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert argv(the_container(workloads(objects)["migrate"])) == compose["services"]["migrate"]["command"]


def stage(objects: list[dict], component: str) -> set[tuple[str, str]]:
    """What `kubectl apply -k ... -l app.kubernetes.io/component=<component>` applies (docs/deploy-k8s.md)."""
    labelled = [
        obj for obj in objects if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    return {(obj["kind"], obj["metadata"]["name"]) for obj in labelled}


def test_the_migration_job_finds_what_it_needs_in_the_config_applied_before_it_and_nothing_else_starts(objects):
    job = workloads(objects)["migrate"]
    pod = job["spec"]["template"]["spec"]
    needs = {("Namespace", job["metadata"]["namespace"])}
    needs |= {("ConfigMap", source["configMapRef"]["name"]) for source in the_container(job)["envFrom"]}
    needs |= {
        ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert needs <= stage(objects, "config")
    assert {kind for kind, _ in stage(objects, "config")} == {"Namespace", "ConfigMap", "PersistentVolumeClaim"}
    assert stage(objects, "migrate") == {("Job", job["metadata"]["name"])}


def configmap_environment(objects: list[dict]) -> dict[str, str]:
    (configmap,) = of_kind(objects, "ConfigMap")
    return configmap["data"]


def settings_under(environment: dict[str, str]) -> dict:
    """crowdtick/settings.py as a process with exactly this environment has it (crowdtick.env reads it)."""
    fake_os = types.SimpleNamespace(environ=environment)
    real_os, crowdtick.env.os = crowdtick.env.os, fake_os
    try:
        return runpy.run_path(str(ROOT / "crowdtick" / "settings.py"))
    finally:
        crowdtick.env.os = real_os


def probes(container: dict) -> list[tuple[str, dict]]:
    found = []
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if get := container.get(kind, {}).get("httpGet"):
            found.append((get["path"], {header["name"]: header["value"] for header in get.get("httpHeaders", [])}))
    return found


@pytest.mark.django_db
def test_every_http_probe_asks_for_a_page_that_answers_200_with_the_sites_settings(objects, settings, client):
    site = settings_under(configmap_environment(objects) | SECRETS)
    for name in ("ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS"):
        if name in site:
            setattr(settings, name, site[name])
    from crowdtick.asgi import application

    found = workloads(objects)
    for path, headers in probes(the_container(found["web"])):
        response = client.get(path, headers=headers)  # the WSGI app, as gunicorn serves it
        assert response.status_code == 200, (path, response.status_code)
    ws_probes = probes(the_container(found["ws"]))
    for path, headers in ws_probes:  # the ASGI app, as uvicorn serves it
        encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        response = async_to_sync(HttpCommunicator(application, "GET", path, headers=encoded).get_response)()
        assert response["status"] == 200, (path, response["status"])
    assert {path for path, _ in ws_probes} == {"/healthz", "/readyz"}


def names_read_from_the_environment() -> set[str]:
    """Every variable settings.py reads through crowdtick.env's helpers, and gunicorn.conf.py through os.environ."""
    helpers = {name for name, _ in inspect.getmembers(crowdtick.env, inspect.isfunction) if name.startswith("env_")}
    names = set()
    for path in (ROOT / "crowdtick" / "settings.py", ROOT / "deploy" / "gunicorn.conf.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = ast.unparse(node.func)
            if function in helpers or function in {"os.environ.get", "os.getenv"}:
                assert isinstance(node.args[0], ast.Constant), f"{path.name}: {ast.unparse(node)} names no constant"
                names.add(node.args[0].value)
    return names


def environment_of(container: dict, objects: list[dict]) -> tuple[set[str], set[str]]:
    """The names a container's processes get, and those of them that come from the Secret."""
    names, secret = set(), set()
    for source in container.get("envFrom", []):
        names |= set(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        names.add(variable["name"])
        if "secretKeyRef" in variable.get("valueFrom", {}):
            secret.add(variable["name"])
    return names, secret


def test_every_variable_the_settings_read_is_configured_or_left_at_its_default_for_a_reason(objects):
    read = names_read_from_the_environment()
    assert LEFT_AT_DEFAULT.keys() <= read, "a reason for a variable nothing reads"
    assert configmap_environment(objects).keys() <= read | PROCESS_ENVIRONMENT, "a ConfigMap key nothing reads"
    assert not SECRETS & configmap_environment(objects).keys()
    for component, workload in workloads(objects).items():
        names, secret = environment_of(the_container(workload), objects)
        assert read - names - LEFT_AT_DEFAULT.keys() == set(), component
        assert secret == SECRETS.keys(), component
    settings_under(configmap_environment(objects) | SECRETS)  # no bad value


def test_every_pod_runs_unprivileged_on_a_read_only_root_within_its_resources(objects):
    for component, workload in workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, component
        context = pod["securityContext"]
        # runAsUser numeric: the kubelet cannot check runAsNonRoot against the image's USER, a name.
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, component
        assert context["seccompProfile"]["type"] == "RuntimeDefault", component
        container = the_container(workload)
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, component
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys() & container["resources"]["limits"].keys()


def mounts(workload: dict) -> dict[str, tuple[dict, bool]]:
    """Each mount path of the pod's container: its volume, and whether the container may write to it."""
    volumes = {volume["name"]: volume for volume in workload["spec"]["template"]["spec"]["volumes"]}
    return {
        mount["mountPath"]: (volumes[mount["name"]], not mount.get("readOnly", False))
        for mount in the_container(workload).get("volumeMounts", [])
    }


def test_each_process_can_write_where_it_writes_on_its_read_only_root(objects):
    found = workloads(objects)
    export_root = configmap_environment(objects)["EXPORT_ROOT"]
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", (ROOT / "deploy" / "Dockerfile").read_text(), re.MULTILINE)
    static_root = str(settings_under(SECRETS)["STATIC_ROOT"]).replace(str(ROOT), workdir)
    for component, workload in found.items():
        volume, writable = mounts(workload)[RUN_DIR]  # Python's temporary files, beat's schedule
        assert "emptyDir" in volume and writable, component
    for component in ("web", "worker"):  # the worker writes exports, web pods serve them: one shared volume
        volume, writable = mounts(found[component])[export_root]
        assert volume["persistentVolumeClaim"]["claimName"] == "crowdtick-exports" and writable, component
    job_volume, job_writes = mounts(found["migrate"])[static_root]  # collectstatic writes, web reads the manifest
    web_volume, _ = mounts(found["web"])[static_root]
    assert job_writes and job_volume["persistentVolumeClaim"] == {"claimName": "crowdtick-static"}
    assert web_volume["persistentVolumeClaim"]["claimName"] == "crowdtick-static"
    for claim in of_kind(objects, "PersistentVolumeClaim"):
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # pods on several nodes


def test_beat_runs_alone_even_during_a_rollout(objects):
    beat = workloads(objects)["beat"]
    scaled = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in of_kind(objects, "HorizontalPodAutoscaler")}
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["metadata"]["name"] not in scaled


def test_a_standby_broadcaster_runs_through_rollouts_and_drains(objects):
    """Two replicas share the lease (realtime/leadership.py): one is always there to hold it."""
    broadcaster = workloads(objects)["broadcaster"]
    spec = broadcaster["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] < spec["replicas"]
    (budget,) = [
        b for b in of_kind(objects, "PodDisruptionBudget") if selects(b["spec"]["selector"], pod_labels(broadcaster))
    ]
    assert budget["spec"]["maxUnavailable"] < spec["replicas"]
    assert the_container(broadcaster)["command"] == [
        "python",
        "manage.py",
        "broadcast",
    ]  # the command that takes the lease


def test_web_and_ws_scale_on_cpu_and_keep_pods_through_disruptions(objects):
    found = workloads(objects)
    autoscalers = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in of_kind(objects, "HorizontalPodAutoscaler")}
    for component in ("web", "ws"):
        deployment = found[component]
        hpa = autoscalers[deployment["metadata"]["name"]]
        assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
        assert "cpu" in the_container(deployment)["resources"]["requests"]  # utilisation is a share of the request
        assert "replicas" not in deployment["spec"], "an apply would undo the autoscaler's count"
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budgeted = {
        component
        for budget in of_kind(objects, "PodDisruptionBudget")
        for component, workload in found.items()
        if selects(budget["spec"]["selector"], pod_labels(workload))
    }
    assert budgeted == {"web", "ws", "worker", "broadcaster"}


def test_each_pod_has_time_to_finish_after_its_pre_stop_pause(objects):
    for component, workload in workloads(objects).items():
        pod = workload["spec"]["template"]["spec"]
        pause = the_container(workload).get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
        if pause:
            assert pause[0] == "sleep" and int(pause[1]) < pod["terminationGracePeriodSeconds"] / 2, component
