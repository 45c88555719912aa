"""The container deploy files, checked without Docker: docker-compose.yml,
deploy/Dockerfile, .dockerignore and the Grafana provisioning and dashboard.

Docker does not run on our machines, so `docker compose up` is never tried here.
Instead: the stack's services and their wiring, every bind-mounted path, every
command of the streamdrift image parsed by the real CLI parser, the image's
pinning, user, entrypoint and healthcheck, and the dashboard's queries against
the metric names the app exports (and, where promtool is installed, the PromQL
parser).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.cli import build_parser
from stream.config import load_config
from tests.dashboard import dashboard_expressions, iter_panels, load_dashboard, raw_queries

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "streamdrift.yml"

STACK = {"kafka", "streamdrift", "producer", "prometheus", "alertmanager", "retrainer",
         "grafana"}
CLI_COMMANDS = {"run", "replay", "simulate", "check-config"}
METRICS_PORT = 9108

# README's metrics table, plus the model-performance metrics the dashboard shows
# once the app exports them.
def _exported() -> tuple[set[str], set[str]]:
    """Metric names as the app's registry exposes them, and its histograms."""
    from stream.metrics import Metrics

    names, histograms = set(), set()
    for family in Metrics().registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
        if family.type == "histogram":
            histograms.add(family.name)
    return names, histograms


KNOWN_METRICS, HISTOGRAMS = _exported()
METRIC_NAME = re.compile(r"streamdrift_[a-z_]+")


# --- docker-compose.yml ---------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of a service's bind mounts, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def named_volumes(service: dict[str, Any]) -> list[str]:
    names = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, sep, _rest = volume.partition(":")
            if sep and not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume" and volume.get("source"):
            names.append(volume["source"])
    return names


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of a service's published ports."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        assert len(parts) >= 2, f"port {port!r}: publish it as [IP:]HOST:CONTAINER"
        ports.append((int(parts[-2]), int(parts[-1])))
    return ports


def is_streamdrift_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    dockerfile = build.get("dockerfile") if isinstance(build, dict) else None
    return dockerfile == "deploy/Dockerfile" or str(service.get("image", "")).startswith(
        "streamdrift:")


def streamdrift_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if is_streamdrift_image(s)}


def parse_command(name: str, command: Any) -> Any:
    assert isinstance(command, list) and all(isinstance(a, str) for a in command), (
        f"{name}: command must be a YAML list of strings (exec form, numbers quoted), "
        f"got {command!r}")
    try:
        return build_parser().parse_args(command)
    except SystemExit as exc:  # argparse reports on stderr and exits
        pytest.fail(f"{name}: `streamdrift {' '.join(command)}` is refused by the CLI "
                    f"(exit {exc.code})")


def test_compose_defines_the_stack(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= STACK, f"missing services: {STACK - set(services)}"
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"


def test_compose_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@kafka:")
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert "PLAINTEXT://:9092" in listeners
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert any(item.startswith(f"{controller}://") for item in listeners)
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
                     .split(","))
    assert {item.split("://")[0] for item in listeners} <= set(protocols)
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1", key
    test = " ".join(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in test


def test_every_bind_mounted_path_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = [f"{name}: {source}" for name, service in services.items()
               for source, _target in bind_mounts(service)
               if not (REPO / source).exists()]
    assert not missing, f"bind-mounted paths missing from the repository: {missing}"


def test_compose_mounts_the_prometheus_and_alertmanager_configs(
        services: dict[str, dict[str, Any]]) -> None:
    prometheus = dict(bind_mounts(services["prometheus"]))
    assert prometheus.get("./deploy/prometheus/prometheus.yml") == "/etc/prometheus/prometheus.yml"
    assert prometheus.get("./deploy/prometheus/rules") == "/etc/prometheus/rules"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    alertmanager = dict(bind_mounts(services["alertmanager"]))
    target = alertmanager.get("./deploy/alertmanager/alertmanager.yml")
    assert target == "/etc/alertmanager/alertmanager.yml"
    assert f"--config.file={target}" in services["alertmanager"]["command"]


def test_named_volumes_are_declared(compose: dict[str, Any],
                                    services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in named_volumes(service):
            assert volume in declared, f"{name}: volume {volume} is not declared"


def test_dependencies_exist_and_health_conditions_have_a_healthcheck(
        services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", [])
        conditions = depends if isinstance(depends, dict) else {key: {} for key in depends}
        for other, spec in conditions.items():
            assert other in services, f"{name} depends on unknown service {other}"
            if (spec or {}).get("condition") == "service_healthy":
                assert "healthcheck" in services[other] or is_streamdrift_image(
                    services[other]), f"{name} waits for {other} healthy, it has no healthcheck"
    for name in ("streamdrift", "producer"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name


def test_published_ports_are_unique_and_documented(services: dict[str, dict[str, Any]]) -> None:
    header = []
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    header_text = "\n".join(header)
    seen: dict[int, str] = {}
    for name, service in services.items():
        for host, _container in published_ports(service):
            assert host not in seen, f"host port {host}: {seen[host]} and {name}"
            seen[host] = name
            assert re.search(rf"\b{host}\b", header_text), (
                f"{name}: host port {host} is not documented in the comment block at the top "
                "of docker-compose.yml")
    expected = {3000: "grafana", 9090: "prometheus", 9094: "alertmanager",
                METRICS_PORT: "streamdrift"}
    assert {port: seen.get(port) for port in expected} == expected


def _local_broker_ports() -> set[int]:
    """deploy/local-kafka.sh's default client and controller ports (9092, 9093)."""
    script = (REPO / "deploy" / "local-kafka.sh").read_text(encoding="utf-8")
    port = re.search(r"^PORT=\$\{KAFKA_PORT:-(\d+)\}$", script, re.MULTILINE)
    controller = re.search(
        r"^CONTROLLER_PORT=\$\{KAFKA_CONTROLLER_PORT:-\$\(\(PORT \+ (\d+)\)\)\}$", script,
        re.MULTILINE)
    assert port and controller, "local-kafka.sh's port defaults moved: update this test"
    return {int(port.group(1)), int(port.group(1)) + int(controller.group(1))}


def test_published_ports_do_not_clash_with_the_local_broker(
        services: dict[str, dict[str, Any]]) -> None:
    """`make kafka-up` (or `make demo`) and `docker compose up` side by side."""
    local = _local_broker_ports()
    assert local == {9092, 9093}
    clashes = {f"{name}: {host}" for name, service in services.items()
               for host, _ in published_ports(service) if host in local}
    assert not clashes, clashes


def test_the_retraining_webhook_goes_to_a_service_of_the_stack(
        services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml")
                            .read_text(encoding="utf-8"))
    receiver = next(r for r in config["receivers"] if r["name"] == "retraining-trigger")
    url = receiver["webhook_configs"][0]["url"]
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)(/\S*)", url)
    assert match, url
    host, port, path = match.group(1), match.group(2), match.group(3)
    assert host in services, f"{url}: no service {host} in docker-compose.yml"
    service = services[host]
    command = service["command"]
    script = next(c for c in command if c.endswith("receiver.py"))
    assert command[-1] == port, f"{host} listens on {command[-1]}, the webhook calls {port}"
    mounted = dict((target, source) for source, target in bind_mounts(service))
    assert mounted[script] == "./deploy/webhook/receiver.py"
    assert f'PATH = "{path}"' in (REPO / "deploy" / "webhook" / "receiver.py").read_text(
        encoding="utf-8")
    assert "retrainer" in services["alertmanager"].get("depends_on", [])


def test_streamdrift_image_services_run_real_cli_commands(
        services: dict[str, dict[str, Any]]) -> None:
    ours = streamdrift_services(services)
    assert {"streamdrift", "producer"} <= set(ours)
    for name, service in ours.items():
        assert "command" in service, f"{name}: no command (the image's default is `run`)"
        args = parse_command(name, service["command"])
        assert args.command in CLI_COMMANDS, name


def test_run_and_producer_agree(services: dict[str, dict[str, Any]]) -> None:
    run = parse_command("streamdrift", services["streamdrift"]["command"])
    simulate = parse_command("producer", services["producer"]["command"])
    assert run.command == "run" and simulate.command == "simulate"
    for args in (run, simulate):
        assert getattr(args, "kafka.bootstrap_servers") == "kafka:9092"
    assert simulate.topic == getattr(run, "kafka.events_topic") == "model-events"
    # A steady, endless stream that drifts on and off, so the dashboard keeps moving.
    assert simulate.rate and simulate.rate > 0
    assert simulate.events >= 10**8
    assert simulate.drift_at is not None and simulate.drift_period
    assert getattr(run, "metrics.port") in (None, METRICS_PORT)
    assert (METRICS_PORT, METRICS_PORT) in published_ports(services["streamdrift"])


def test_config_files_named_in_commands_are_in_the_image(
        services: dict[str, dict[str, Any]]) -> None:
    copied = {dest for _sources, dest in dockerfile_copies(final_stage(dockerfile()))}
    for name, service in streamdrift_services(services).items():
        args = parse_command(name, service["command"])
        config = getattr(args, "config", None)
        if config is None:
            continue
        mounted = {target for _source, target in bind_mounts(service)}
        assert config in copied | mounted, f"{name}: --config {config} is not in the container"


def test_services_that_do_not_serve_healthz_disable_the_image_healthcheck(
        services: dict[str, dict[str, Any]]) -> None:
    for name, service in streamdrift_services(services).items():
        args = parse_command(name, service["command"])
        if args.command != "run":
            assert service.get("healthcheck", {}).get("disable") is True, (
                f"{name} runs `{args.command}`, which serves no /healthz: disable the image's "
                "healthcheck")


# --- deploy/Dockerfile and .dockerignore -------------------------------------------------


def dockerfile(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return instructions


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return stages(instructions)[-1]


def dockerfile_copies(instructions: list[tuple[str, str]],
                      from_context: bool = False) -> list[tuple[list[str], str]]:
    """(sources, destination) of COPY/ADD; with from_context, only those from the context."""
    copies = []
    for keyword, rest in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if from_context and any(f.startswith("--from=") for f in flags):
            continue
        copies.append((paths[:-1], paths[-1]))
    return copies


def exec_form(name: str, rest: str) -> list[str]:
    assert rest.startswith("["), f"{name} must use the exec (JSON) form: {rest}"
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def test_base_images_are_pinned() -> None:
    instructions = dockerfile()
    names: set[str] = set()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    for rest in froms:
        words = rest.split()
        image = next(w for w in words if not w.startswith("--"))
        if "AS" in (w.upper() for w in words):
            names.add(words[-1].lower())
        if image.lower() in names:
            continue  # a previous stage
        assert "$" not in image, f"FROM {image}: spell the pinned image out"
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo and tag and tag != "latest", f"FROM {image} is not pinned to a tag"
        assert re.search(r"\d+\.\d+", tag), f"FROM {image}: the tag carries no version"


def test_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage(dockerfile()) if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {users[-1]} is root"


def test_entrypoint_is_streamdrift_and_the_default_command_parses() -> None:
    stage = final_stage(dockerfile())
    entrypoints = [rest for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert entrypoints and exec_form("ENTRYPOINT", entrypoints[-1]) == ["streamdrift"]
    commands = [rest for keyword, rest in stage if keyword == "CMD"]
    assert commands, "no default CMD"
    command = exec_form("CMD", commands[-1])
    args = parse_command("Dockerfile CMD", command)
    assert args.command == "run"
    if args.config is not None:
        copied = {dest for _sources, dest in dockerfile_copies(stage)}
        assert args.config in copied, f"CMD reads {args.config}, which the image does not have"


def test_healthcheck_probes_healthz_on_the_metrics_port() -> None:
    stage = final_stage(dockerfile())
    checks = [rest for keyword, rest in stage if keyword == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    check = checks[-1]
    assert check.upper() != "NONE"
    assert f"127.0.0.1:{METRICS_PORT}/healthz" in check or f"localhost:{METRICS_PORT}/healthz" \
        in check
    assert ("EXPOSE", str(METRICS_PORT)) in stage


def test_the_baked_config_serves_metrics_to_other_containers() -> None:
    """The image's config (the example) must listen beyond loopback, or Prometheus,
    in its own container, cannot scrape it."""
    copies = dockerfile_copies(final_stage(dockerfile()), from_context=True)
    baked = [sources[0] for sources, dest in copies if dest == "/etc/streamdrift/streamdrift.yaml"]
    assert baked == ["deploy/streamdrift.example.yaml"]
    metrics = load_config(REPO / baked[0], env={}).metrics
    assert metrics.port == METRICS_PORT
    assert metrics.host in ("0.0.0.0", "::", "")


def test_dependencies_come_from_the_lock_with_hashes() -> None:
    runs = [rest for keyword, rest in dockerfile() if keyword == "RUN"]
    lock_installs = [r for r in runs if "pip install" in r and "--require-hashes" in r
                     and re.search(r"-r\s+\S*requirements-runtime\.lock", r)]
    assert lock_installs, "no `pip install --require-hashes -r requirements-runtime.lock`"
    package_installs = [r for r in runs if "pip install" in r and "--no-deps" in r]
    assert package_installs, "the package must be installed with --no-deps (deps are locked)"
    assert not [r for r in runs if "pip install" in r and r not in lock_installs
                and r not in package_installs], "a pip install outside the lock"


def test_the_lock_pins_every_project_dependency_with_hashes() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lock = (REPO / "requirements-runtime.lock").read_text(encoding="utf-8")
    pinned = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pinned[name] = block
            assert "--hash=sha256:" in block, f"{name} is pinned without a hash"
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement)
                      .group(0)).lower()  # type: ignore[union-attr]
        assert name in pinned, f"{requirement} is not in requirements-runtime.lock"


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, regex) per line; Docker's rules: last match wins, `!` re-includes."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        glob = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif glob.startswith("**", i):
                regex += ".*"
                i += 2
            elif glob[i] == "*":
                regex += "[^/]*"
                i += 1
            elif glob[i] == "?":
                regex += "[^/]"
                i += 1
            elif glob[i] == "[":
                end = glob.index("]", i)
                regex += glob[i:end + 1]
                i = end + 1
            else:
                regex += re.escape(glob[i])
                i += 1
        patterns.append((exclude, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative to the repository) into the context."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for exclude, pattern in dockerignore_patterns():
        if exclude and any(pattern.fullmatch(p) for p in prefixes):
            excluded = True
        elif not exclude and pattern.fullmatch(path.strip("/")):
            excluded = False
    return not excluded


def iter_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    else:
        yield path


def test_files_the_image_copies_exist_and_are_in_the_build_context() -> None:
    copies = dockerfile_copies(dockerfile(), from_context=True)
    assert copies
    for sources, _dest in copies:
        for source in sources:
            path = REPO / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            for file in iter_files(path):
                relative = file.relative_to(REPO).as_posix()
                assert in_build_context(relative), f"COPY {source}: .dockerignore drops {relative}"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    for path in (".git/HEAD", ".venv/bin/python", "var/kafka-9092/kafka.pid",
                 "tests/unit/test_deploy_files.py", ".mypy_cache/3.11/x.json",
                 ".pytest_cache/v/cache", ".ruff_cache/CACHEDIR.TAG",
                 "stream/__pycache__/cli.cpython-311.pyc", "streamdrift.egg-info/PKG-INFO"):
        assert not in_build_context(path), f"{path} would be sent to the builder"
    for path in ("pyproject.toml", "README.md", "requirements-runtime.lock", "stream/cli.py",
                 "detectors/bank.py", "deploy/streamdrift.example.yaml"):
        assert in_build_context(path), f"{path} is needed by the build"


# --- Grafana --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(dashboard) if p.get("type") != "row"]


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "streamdrift"
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard.get("id") is None, "a provisioned dashboard carries no database id"
    ids = [p["id"] for p in iter_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in iter_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_dashboard_template_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"model", "feature"} <= set(variables)
    for name, metric, label in (("model", "streamdrift_events_total", "model_id"),
                                ("feature", "streamdrift_drift_alerts_total", "feature")):
        variable = variables[name]
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        assert re.fullmatch(rf"label_values\({metric}(\{{.*\}})?, *{label}\)", query), query
        assert variable["datasource"]["uid"] == "prometheus"
        assert variable["multi"] is True and variable["includeAll"] is True
    feature_query = variables["feature"]["definition"]
    assert 'model_id=~"$model"' in feature_query


def test_every_panel_queries_prometheus(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        title = panel.get("title")
        assert panel.get("targets"), f"panel {title!r} has no query"
        assert panel["datasource"]["uid"] == "prometheus", title
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {title!r}: refIds repeat"
        for target in panel["targets"]:
            assert str(target.get("expr", "")).strip(), f"panel {title!r}: empty expr"
            assert target.get("datasource", {}).get("uid") == "prometheus", title


def test_dashboard_uses_only_exported_metric_names(dashboard: dict[str, Any]) -> None:
    allowed = KNOWN_METRICS | {f"{h}_{suffix}" for h in HISTOGRAMS
                               for suffix in ("bucket", "sum", "count")}
    queries = raw_queries(dashboard)
    used = {name for _where, expr in queries for name in METRIC_NAME.findall(expr)}
    assert used, "no streamdrift metric in the dashboard"
    unknown = {(where, name) for where, expr in queries for name in METRIC_NAME.findall(expr)
               if name not in allowed}
    assert not unknown, f"metric names the app does not export: {sorted(unknown)}"


def test_rate_windows_follow_grafana(dashboard: dict[str, Any]) -> None:
    for where, expr in raw_queries(dashboard):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in ("$__rate_interval", "$__range"), (
                f"{where}: window [{window}]: use $__rate_interval (or $__range)")


# Each required view: (words its title must contain, a metric its queries must use).
REQUIRED_VIEWS = {
    "events/s per model": (("events/s", "model"), "streamdrift_events_total"),
    "invalid events by reason": (("invalid", "reason"), "streamdrift_events_invalid_total"),
    "alerts over time by model/feature/kind": (("alerts over time",),
                                               "streamdrift_drift_alerts_total"),
    "features currently drifting": (("currently drifting",), "streamdrift_feature_drift_active"),
    "consumer lag per partition": (("lag", "partition"), "streamdrift_consumer_lag"),
    "batch latency percentiles": (("batch latency",), "streamdrift_batch_duration_seconds_bucket"),
    "last event age per model": (("last event age",),
                                 "streamdrift_last_event_timestamp_seconds"),
    "realized performance": (("realized",), "streamdrift_model_error_rate"),
    "estimated performance": (("estimated",), "streamdrift_model_estimated_performance"),
    "drift score per feature": (("drift score", "feature"), "streamdrift_feature_drift_score"),
}


@pytest.mark.parametrize("view", sorted(REQUIRED_VIEWS))
def test_dashboard_has_each_required_view(dashboard: dict[str, Any], view: str) -> None:
    words, metric = REQUIRED_VIEWS[view]
    matching = [p for p in panels(dashboard)
                if all(w in p["title"].lower() for w in words)
                and any(metric in t["expr"] for t in p["targets"])]
    assert matching, f"no panel for {view!r}: a title with {words} querying {metric}"


def test_required_views_have_their_shape(dashboard: dict[str, Any]) -> None:
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in panels(dashboard)}
    latency = next(v for k, v in exprs.items() if "batch latency" in k.lower())
    quantiles = {float(m) for e in latency for m in re.findall(r"histogram_quantile\(([\d.]+)", e)}
    assert {0.5, 0.9, 0.99} <= quantiles
    age = next(v for k, v in exprs.items() if "last event age" in k.lower())
    assert all(e.startswith("time() - ") for e in age)
    per_model = next(v for k, v in exprs.items() if k.lower() == "events/s per model")
    assert all('model_id=~"$model"' in e and "by (model_id)" in e for e in per_model)
    alerts = next(v for k, v in exprs.items() if "alerts over time" in k.lower())
    assert all('feature=~"$feature"' in e and "kind" in e for e in alerts)


def test_drift_score_panel_shows_psi_by_default_with_a_line_at_0_2(
        dashboard: dict[str, Any]) -> None:
    panel = next(p for p in panels(dashboard) if "drift score" in p["title"].lower())
    assert panel["type"] == "timeseries"
    assert all('score=~"$score"' in t["expr"] and 'model_id=~"$model"' in t["expr"]
               for t in panel["targets"])
    assert all(t["legendFormat"] == "{{model_id}} / {{feature}} / {{score}}"
               for t in panel["targets"])
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"
    assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, 0.2]
    assert "0.1" in panel["description"] and "0.25" in panel["description"]
    score = next(v for v in dashboard["templating"]["list"] if v["name"] == "score")
    assert score["current"]["value"] == ["psi"]
    assert set(score["query"].split(",")) == {"psi", "jensen_shannon", "wasserstein"}


def test_dashboard_expressions_substitute_every_variable() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    for expr in expressions:
        assert "$" not in expr, expr
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr
        assert expr.count("[") == expr.count("]"), expr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_dashboard_expressions_parse_as_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr}
        for i, expr in enumerate(dashboard_expressions())]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_provisioning_points_at_the_compose_prometheus(
        services: dict[str, dict[str, Any]]) -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    sources = {d["uid"]: d for d in provisioned["datasources"]}
    prometheus = sources["prometheus"]
    assert prometheus["type"] == "prometheus"
    match = re.fullmatch(r"http://([a-z0-9_-]+):(\d+)/?", prometheus["url"])
    assert match, prometheus["url"]
    host, port = match.group(1), int(match.group(2))
    assert host in services, f"datasource host {host} is no compose service"
    assert port == 9090 and (9090, 9090) in published_ports(services["prometheus"])
    if "alertmanager" in sources:
        assert sources["alertmanager"]["url"].startswith("http://alertmanager:9093")


def test_dashboard_provider_reads_the_mounted_dashboards(
        services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = {source.rstrip("/"): target.rstrip("/") for source, target in bind_mounts(grafana)}
    assert mounts.get("./deploy/grafana/provisioning/datasources") == \
        "/etc/grafana/provisioning/datasources" or mounts.get(
        "./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    providers = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"]
    assert providers and all(p["type"] == "file" for p in providers)
    dashboards_target = mounts.get("./deploy/grafana/dashboards")
    assert dashboards_target, "grafana does not mount deploy/grafana/dashboards"
    for provider in providers:
        assert provider["options"]["path"].rstrip("/") == dashboards_target
    # The provisioning files themselves are inside what grafana mounts.
    for file in (DATASOURCES, PROVIDERS):
        relative = "./" + file.relative_to(REPO).as_posix()
        assert any(relative.startswith(source + "/") for source in mounts), relative
    home = grafana.get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert home.startswith(dashboards_target + "/")
        assert (REPO / "deploy/grafana/dashboards" / home[len(dashboards_target) + 1:]).is_file()
