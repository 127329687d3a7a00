"""Deployments: a model version served by a local process, a Docker container or Kubernetes.

The functions a page or the CLI calls:

- ``deploy(engine, model=..., target=..., settings=...)`` -> ``Deployment`` (RUNNING, endpoint set)
- ``build_image(engine, model=..., settings=...)`` -> ``BuiltImage`` (Docker: build now, deploy later)
- ``list_deployments(engine)``, ``get_deployment(engine, id)``, ``probe(deployment)`` (up/down)
- ``stop_deployment(engine, id, settings=...)``, ``deployment_logs(deployment)``
- ``restore_local_deployments(engine, settings=...)`` at app start
"""
from core.deploy.deployments import (
    Restored,
    build_image,
    deploy,
    deployment_dir,
    deployment_logs,
    kubernetes_dir,
    probe,
    restore_local_deployments,
    stop_deployment,
)
from core.deploy.names import dns_label
from core.deploy.records import (
    FAILED,
    RUNNING,
    STARTING,
    STATUSES,
    STOPPED,
    TARGETS,
    get_deployment,
    list_deployments,
)
from core.deploy.source import ModelSource, resolve_source

__all__ = [
    "FAILED", "RUNNING", "STARTING", "STATUSES", "STOPPED", "TARGETS", "ModelSource", "Restored", "build_image", "deploy",
    "deployment_dir", "deployment_logs", "dns_label", "get_deployment", "kubernetes_dir", "list_deployments",
    "probe", "resolve_source", "restore_local_deployments", "stop_deployment",
]
