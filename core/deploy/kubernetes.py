"""The Kubernetes target: manifests written to a folder, applied with kubectl when configured.

No cluster is needed to deploy: the manifests (Deployment, Service, HorizontalPodAutoscaler,
ConfigMap) are always written and can be applied later with ``kubectl apply -f DIR``. They are
applied here only when a kubeconfig is given, with kubectl run from an argument list.
The bearer token never enters a manifest: the pods read it from a Secret (``<name>-token``,
key ``token``), created by ``apply`` from stdin when a token is given, else by the user.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.errors import BadInput
from core.files import write_text_atomically

PORT = 8080  # the image's service port (core.packaging)
RUN_AS_USER = 10001  # numeric, so runAsNonRoot can be verified by the kubelet
KUBECTL_TIMEOUT_S = 120
FILES = ("configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml")


@dataclass(frozen=True)
class KubeOptions:
    """What the manifests need beyond the model: image, namespace, size and scaling."""

    image: str
    namespace: str | None = None  # None: the kubeconfig context's namespace
    replicas: int = 1
    max_replicas: int = 4
    cpu_target_percent: int = 70
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"
    config: dict[str, str] = field(default_factory=dict)  # extra SHIPML_SERVE_* settings


def secret_name(name: str) -> str:
    return f"{name}-token"


def manifests(name: str, *, model_name: str, version: int, options: KubeOptions) -> dict[str, dict]:
    """The four manifests by file name. ``name`` must be a DNS label (``names.dns_label``).

    The raw model name only appears as an annotation value, which may hold any text.
    """
    labels = {"app.kubernetes.io/name": "shipml-model", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/version": str(int(version)), "app.kubernetes.io/managed-by": "shipml"}
    selector = {"app.kubernetes.io/instance": name}
    meta = {"name": name, "labels": labels, "annotations": {"shipml.io/model-name": model_name}}
    if options.namespace:
        meta["namespace"] = options.namespace
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics"}
    config = {"SHIPML_SERVE_LOG_URL": "sqlite:////data/predictions.db", **options.config}
    probe = {"periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container = {
        "name": "model",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": name}}],
        "env": [{"name": "SHIPML_SERVE_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": secret_name(name), "key": "token", "optional": True}}}],
        "startupProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 2,
                         "failureThreshold": 60},
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, **probe},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, **probe},
        "resources": {"requests": {"cpu": options.cpu_request, "memory": options.memory_request},
                      "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        # The root filesystem is read-only: temporary files and the prediction log get volumes.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": scrape},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "fsGroup": RUN_AS_USER,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {**meta, "annotations": {**meta["annotations"], **scrape}},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
    }
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": options.replicas, "maxReplicas": max(options.replicas, options.max_replicas),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": options.cpu_target_percent}}}],
        },
    }
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                 "data": {k: str(v) for k, v in config.items()}}
    return {"configmap.yaml": configmap, "deployment.yaml": deployment, "service.yaml": service, "hpa.yaml": hpa}


def write_manifests(folder: Path, docs: dict[str, dict]) -> Path:
    """Write each manifest to its own YAML file in ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, doc in docs.items():
        write_text_atomically(folder / file, yaml.safe_dump(doc, sort_keys=False))
    return folder


def endpoint(name: str, namespace: str | None) -> str:
    """The in-cluster URL of the Service."""
    return f"http://{name}.{namespace or 'default'}.svc.cluster.local"


def apply(folder: Path, *, kubeconfig: Path, name: str, namespace: str | None, token: str | None,
          timeout_s: float = KUBECTL_TIMEOUT_S) -> None:
    """``kubectl apply -f folder``, the token Secret first (from stdin), then wait for the rollout.

    Raises:
        BadInput: kubectl is missing, the kubeconfig does not exist, or kubectl failed (its last
            line of output is the message).
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise BadInput("kubectl is not installed; apply the manifests yourself")
    if not Path(kubeconfig).is_file():
        raise BadInput("the kubeconfig file does not exist")
    base = [kubectl, "--kubeconfig", str(kubeconfig), "--request-timeout", "20s"]
    if namespace:
        base += ["--namespace", namespace]
    if token:
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": secret_name(name)}, "stringData": {"token": token}}
        _kubectl([*base, "apply", "-f", "-"], stdin=yaml.safe_dump(secret), timeout_s=timeout_s)
    _kubectl([*base, "apply", "-f", str(folder)], timeout_s=timeout_s)
    _kubectl([*base, "rollout", "status", f"deployment/{name}", f"--timeout={int(timeout_s)}s"],
             timeout_s=timeout_s + 10)


def delete(folder: Path, *, kubeconfig: Path, namespace: str | None) -> None:
    """``kubectl delete -f folder`` (the Secret is left for the user to remove)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None or not Path(kubeconfig).is_file():
        raise BadInput("kubectl or the kubeconfig is missing; delete the resources yourself")
    base = [kubectl, "--kubeconfig", str(kubeconfig), "--request-timeout", "20s"]
    if namespace:
        base += ["--namespace", namespace]
    _kubectl([*base, "delete", "--ignore-not-found", "-f", str(folder)], timeout_s=KUBECTL_TIMEOUT_S)


def _kubectl(args: list[str], *, stdin: str | None = None, timeout_s: float) -> str:
    try:
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BadInput(f"kubectl did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise BadInput(f"kubectl failed: {lines[-1][:300] if lines else f'exit code {done.returncode}'}")
    return done.stdout
