"""deploy/k8s/: the Kubernetes manifests, checked without a cluster.

The core objects (ConfigMap, Service, StatefulSet, PodDisruptionBudget) are validated
against the Kubernetes OpenAPI schemas that kubernetes-validate ships (strict: no
unknown fields); the KEDA ScaledObject, a custom resource those schemas do not hold,
gets a structural check of the fields KEDA's Apache Kafka scaler reads
(https://keda.sh/docs/latest/scalers/apache-kafka/). The wiring between them (labels,
ports, names) and the config the pods get (the ConfigMap's file plus the
StatefulSet's STREAMDRIFT_* variables) are checked with the app's own config loader.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream.cli import build_parser
from stream.config import AppConfig, load_config

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
#: The Kubernetes release the core objects are validated for.
K8S_VERSION = "1.31.0"
CONFIG_PATH = "/etc/streamdrift/streamdrift.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    """Every object of deploy/k8s, by kind (one object per file)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        assert len(docs) == 1, f"{path.name}: one object per file"
        assert docs[0]["kind"] not in out, f"{path.name}: a second {docs[0]['kind']}"
        out[docs[0]["kind"]] = docs[0] | {"__file__": path.name}
    return out


OBJECTS = _documents()
CORE = ("ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget")


def _obj(kind: str) -> dict[str, Any]:
    return {k: v for k, v in OBJECTS[kind].items() if k != "__file__"}


def _container() -> dict[str, Any]:
    containers = _obj("StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def _pod_config(pod_name: str, tmp_path: Path) -> AppConfig:
    """The config a pod of that name loads: the ConfigMap's file and the container's env
    (``$(VAR)`` expanded as the kubelet does, from the variables defined before it)."""
    config_file = tmp_path / "streamdrift.yaml"
    config_file.write_text(_obj("ConfigMap")["data"]["streamdrift.yaml"], encoding="utf-8")
    env: dict[str, str] = {}
    for var in _container()["env"]:
        if "valueFrom" in var:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            env[var["name"]] = pod_name
        else:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
    return load_config(config_file, env={k: v for k, v in env.items()
                                         if k.startswith("STREAMDRIFT_")})


def test_every_manifest_is_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == files


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_renders_every_object() -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True,
                              text=True, timeout=60, check=True).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    assert kinds == sorted(set(OBJECTS) - {"Kustomization"})


@pytest.mark.parametrize("kind", CORE)
def test_core_objects_match_the_kubernetes_schemas(kind: str) -> None:
    assert kind in OBJECTS, f"no {kind} in deploy/k8s"
    kubernetes_validate.validate(_obj(kind), K8S_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    # The validation above is real: an unknown field in a pod spec is refused.
    broken = _obj("StatefulSet")
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_each_pod_gets_its_name_as_group_instance_and_transactional_id(
        tmp_path: Path) -> None:
    for pod in ("streamdrift-0", "streamdrift-5"):
        config = _pod_config(pod, tmp_path)
        assert config.kafka.group_instance_id == pod
        assert config.kafka.transactional_id == f"streamdrift-{pod}"
    assert (_pod_config("streamdrift-0", tmp_path).kafka.transactional_id
            != _pod_config("streamdrift-1", tmp_path).kafka.transactional_id)


def test_the_container_runs_streamdrift_run_on_the_mounted_config() -> None:
    args = build_parser().parse_args(_container()["args"])
    assert args.command == "run"
    assert args.config == CONFIG_PATH
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _obj("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    config_volume = next(name for name, path in mounts.items()
                         if path == str(Path(CONFIG_PATH).parent))
    assert volumes[config_volume]["configMap"]["name"] == _obj("ConfigMap")["metadata"]["name"]


def test_probes_and_service_reach_the_metrics_port(tmp_path: Path) -> None:
    port = _pod_config("streamdrift-0", tmp_path).metrics.port
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = _obj("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]
    assert service["spec"]["clusterIP"] == "None"  # every pod scraped on its own


def test_service_pdb_and_statefulset_select_the_pods() -> None:
    statefulset = _obj("StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selectors = [statefulset["spec"]["selector"]["matchLabels"],
                 _obj("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 _obj("Service")["spec"]["selector"]]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
    assert statefulset["spec"]["serviceName"] == _obj("Service")["metadata"]["name"]
    assert _obj("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_pods_request_cpu_and_memory_below_their_limit() -> None:
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "cpu" not in resources.get("limits", {})  # no CFS throttling of the loop
    mib = {"Mi": 1, "Gi": 1024}

    def size(text: str) -> int:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", text).groups()  # type: ignore[union-attr]
        return int(number) * mib[unit]

    assert size(resources["requests"]["memory"]) <= size(resources["limits"]["memory"])


# --- the KEDA ScaledObject (a custom resource: structural check) ---------------------------

KAFKA_TRIGGER_KEYS = {  # KEDA's Apache Kafka scaler parameters
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag",
    "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag", "partitionLimitation",
    "version", "sasl", "tls", "unsafeSsl", "ensureEvenDistributionOfPartitions"}


def test_the_scaled_object_scales_the_statefulset_on_the_groups_lag(tmp_path: Path) -> None:
    scaled = _obj("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    statefulset = _obj("StatefulSet")
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": statefulset["apiVersion"], "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"]}
    triggers = scaled["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["kafka"]
    meta = triggers[0]["metadata"]
    assert meta.keys() <= KAFKA_TRIGGER_KEYS
    assert all(isinstance(v, str) for v in meta.values())  # KEDA reads strings only
    kafka = _pod_config("streamdrift-0", tmp_path).kafka
    assert meta["bootstrapServers"] == kafka.bootstrap_servers
    assert meta["consumerGroup"] == kafka.group_id
    assert meta["topic"] == kafka.events_topic
    assert meta["offsetResetPolicy"] == kafka.auto_offset_reset
    assert int(meta["lagThreshold"]) > 0


def test_replicas_are_capped_at_the_partition_count(tmp_path: Path) -> None:
    scaled = _obj("ScaledObject")
    partitions = _pod_config("streamdrift-0", tmp_path).kafka.topic_partitions
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    assert scaled["spec"]["triggers"][0]["metadata"]["allowIdleConsumers"] == "false"
