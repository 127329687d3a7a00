"""Kubernetes manifests: strict offline validation, security settings, hostile names, no secrets."""
from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from core import deploy
from core.deploy import kubernetes
from core.deploy.names import DNS_LABEL
from core.errors import BadInput
from core.store.models import Deployment

K8S_VERSION = "1.33.0"  # one of the schema sets kubernetes-validate ships
TOKEN = "s3cret-token-value-123"
HOSTILE = ["$(rm -rf /)", "Churn Model.v2", "'; DROP TABLE x; --", "x" * 100, "a\nb"]


def _docs(folder) -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))}


@pytest.mark.parametrize("model_name", HOSTILE)
def test_manifests_validate_strictly_for_any_model_name(tmp_path, model_name) -> None:
    name = deploy.dns_label(model_name, 7)
    docs = kubernetes.manifests(name, model_name=model_name, version=7,
                                options=kubernetes.KubeOptions(image="shipml/model:7", namespace="ml"))
    folder = kubernetes.write_manifests(tmp_path / "k8s", docs)
    written = _docs(folder)
    assert set(written) == set(kubernetes.FILES)
    kinds = set()
    for doc in written.values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any unknown field
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"]) and doc["metadata"]["namespace"] == "ml"
        kinds.add((doc["apiVersion"], doc["kind"]))
    assert kinds == {("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"),
                     ("autoscaling/v2", "HorizontalPodAutoscaler")}
    # The raw name survives only as an annotation value, exactly.
    assert written["deployment.yaml"]["metadata"]["annotations"]["shipml.io/model-name"] == model_name


def test_the_pod_is_probed_limited_non_root_and_scraped(tmp_path) -> None:
    docs = kubernetes.manifests("shipml-churn-v1", model_name="churn", version=1,
                                options=kubernetes.KubeOptions(image="img:1"))
    pod = docs["deployment.yaml"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert set(container["resources"]) == {"requests", "limits"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] > 0 and security["readOnlyRootFilesystem"]
    assert not security["allowPrivilegeEscalation"] and security["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                                              "prometheus.io/path": "/metrics"}
    token = next(e for e in container["env"] if e["name"] == "SHIPML_SERVE_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "shipml-churn-v1-token"
    hpa = docs["hpa.yaml"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "shipml-churn-v1" and hpa["maxReplicas"] >= hpa["minReplicas"]
    assert docs["configmap.yaml"]["metadata"]["name"] == "shipml-churn-v1"
    assert container["envFrom"] == [{"configMapRef": {"name": "shipml-churn-v1"}}]


def test_deploy_without_kubeconfig_writes_the_bundle_and_says_so(engine, settings, registered) -> None:
    row = deploy.deploy(engine, model="pen guins@champion", target="kubernetes", settings=settings, token=TOKEN,
                        image="registry.example/pen:1")
    assert row.status == deploy.STOPPED and row.endpoint is None and row.auth
    assert "not applied: no kubeconfig configured" in row.note and "shipml-" in row.note
    folder = deploy.kubernetes_dir(row)
    assert folder.parent == deploy.deployment_dir(row.id, settings=settings)
    assert sorted(p.name for p in folder.iterdir()) == sorted(kubernetes.FILES)
    for doc in _docs(folder).values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    bundle = folder.parent / "monitoring"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(["alerts.yml", "grafana-dashboard.json",
                                                                "prometheus.yml"])
    everything = "".join(p.read_text() for p in folder.parent.rglob("*") if p.is_file())
    assert TOKEN not in everything  # the token lives only in a Secret the user creates
    stored = json.dumps(deploy.get_deployment(engine, row.id).model_dump(mode="json"))
    assert TOKEN not in stored
    assert deploy.stop_deployment(engine, row.id, settings=settings).status == deploy.STOPPED


def test_an_unreachable_cluster_fails_with_kubectls_reason(engine, settings, registered, tmp_path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "c", "user": "u"}}],
    }))
    with pytest.raises(BadInput, match=r"deployment \d+ failed: kubectl failed: .*"):
        deploy.deploy(engine, model="pen guins@1", target="kubernetes", settings=settings, kubeconfig=kubeconfig)
    (row,) = deploy.list_deployments(engine)
    assert row.status == deploy.FAILED and row.error.startswith("kubectl failed")
    assert (deploy.kubernetes_dir(row) / "deployment.yaml").is_file()  # the manifests are still there


def test_bad_kubernetes_arguments(engine, settings, registered) -> None:
    with pytest.raises(BadInput, match="namespace"):
        deploy.deploy(engine, model="pen guins@1", target="kubernetes", settings=settings, namespace="Bad NS")
    with pytest.raises(BadInput, match="token"):
        deploy.deploy(engine, model="pen guins@1", target="kubernetes", settings=settings, token="has space s")
    with pytest.raises(BadInput, match="no version 9"):
        deploy.deploy(engine, model="pen guins@9", target="kubernetes", settings=settings)
    with pytest.raises(BadInput, match="no alias"):
        deploy.deploy(engine, model="pen guins@staging", target="kubernetes", settings=settings)
    assert deploy.list_deployments(engine) == []  # nothing recorded for bad input
    assert Deployment  # the table is importable from the store's models
