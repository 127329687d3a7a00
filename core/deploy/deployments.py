"""Deploy a model version to a target, list, stop, and restore local deployments after a restart.

Every deployment gets a row in the store (written STARTING before anything starts, so a crash
leaves a trace) and a folder ``<workspace>/deployments/<id>/`` holding:

- ``model/``: the exported model version (local and Docker, when deployed from the registry);
- ``monitoring/``: ``prometheus.yml``, ``alerts.yml`` and ``grafana-dashboard.json``;
- ``kubernetes/``: the manifests (Kubernetes target), ready for ``kubectl apply -f``;
- ``service.log`` (local target) and ``token`` (0600, only when a bearer token was set).

The row's ``manifest_dir`` is that folder. Folder names are ids, never model names.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from core import packaging
from core.config import Settings
from core.deploy import docker_target, kubernetes, local, monitoring
from core.deploy.names import DNS_LABEL, dns_label
from core.deploy.records import (
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    TARGETS,
    create_deployment,
    get_deployment,
    list_deployments,
    update_deployment,
)
from core.deploy.source import ModelSource, check_folder, materialise, resolve_source
from core.errors import BadInput
from core.files import write_text_atomically
from core.serving.routing import RoutingSpec, write_spec
from core.store.models import Deployment, utcnow

_TOKEN = re.compile(r"[\x21-\x7e]{8,512}")  # visible ASCII: safe in an HTTP header


def deployment_dir(deployment_id: int, *, settings: Settings) -> Path:
    """The folder of one deployment's files."""
    return settings.workspace / "deployments" / str(int(deployment_id))


def kubernetes_dir(deployment: Deployment) -> Path | None:
    """The folder to ``kubectl apply -f`` (Kubernetes deployments only)."""
    if deployment.target != "kubernetes" or not deployment.manifest_dir:
        return None
    return Path(deployment.manifest_dir) / "kubernetes"


def deploy(
    engine: Engine,
    *,
    model: str,
    target: str,
    settings: Settings,
    port: int | None = None,
    token: str | None = None,
    base_image: str | None = None,
    trust_host_ca: bool = False,
    image: str | None = None,
    namespace: str | None = None,
    kubeconfig: Path | None = None,
    ready_timeout_s: float = local.READY_TIMEOUT_S,
    on_log: Callable[[str], None] | None = None,
) -> Deployment:
    """Deploy a model and return its deployment row once it is ready (or its manifests written).

    Args:
        engine: The store.
        model: An exported model folder, or ``NAME@VERSION``, ``NAME@ALIAS`` (e.g. champion) or
            ``NAME`` (latest READY version) from the registry.
        target: ``local`` (a process on 127.0.0.1), ``docker`` or ``kubernetes``.
        settings: Gives the workspace.
        port: Host port for local and Docker (default: a free one).
        token: Optional bearer token for /predict and /feedback; never stored in the database.
        base_image: Docker: the base image of the build (default: core.packaging's).
        trust_host_ca: Docker: trust the host's extra CA certificates during the build (networks
            that intercept TLS).
        image: Docker: run this image instead of building one. Kubernetes: the image the pods
            run (default: core.packaging's tag for the version).
        namespace: Kubernetes namespace (default: the kubeconfig context's).
        kubeconfig: Kubernetes: apply with kubectl using this file (default
            ``settings.kubeconfig`` if set); without one the manifests are only written.
        ready_timeout_s: How long to wait for /health/ready.
        on_log: Docker: receives the image build log line by line.

    Returns:
        The deployment: RUNNING with its endpoint; for Kubernetes without a kubeconfig, STOPPED
        with a note that the manifests were written but not applied.

    Raises:
        BadInput: Bad arguments, or the deployment failed (the row is then FAILED with the reason).
    """
    if target not in TARGETS:
        raise BadInput(f"unknown target; choose one of {', '.join(TARGETS)}")
    if token is not None and not _TOKEN.fullmatch(token):
        raise BadInput("a token needs 8-512 visible ASCII characters and no spaces")
    if namespace is not None and not (DNS_LABEL.fullmatch(namespace) and len(namespace) <= 63):
        raise BadInput("a namespace is a DNS label: lowercase letters, digits and '-'")
    if port is not None and target != "kubernetes":
        local.check_port(port)
    source = resolve_source(engine, model)
    row = create_deployment(engine, model_name=source.model_name, version=source.version,
                            version_id=source.version_id, target=target, auth=bool(token))
    folder = deployment_dir(row.id, settings=settings)
    update_deployment(engine, row.id, manifest_dir=str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target == "local":
            _deploy_local(engine, row.id, source, folder=folder, settings=settings, port=port, token=token,
                          timeout_s=ready_timeout_s)
        elif target == "docker":
            _deploy_docker(engine, row.id, source, folder=folder, settings=settings, port=port, token=token,
                           base_image=base_image, trust_host_ca=trust_host_ca, image=image,
                           timeout_s=ready_timeout_s, on_log=on_log)
        else:
            _deploy_kubernetes(engine, row.id, source, folder=folder, settings=settings, token=token,
                               image=image, namespace=namespace, kubeconfig=kubeconfig)
    except (BadInput, local.StartFailed) as exc:
        update_deployment(engine, row.id, status=FAILED, error=str(exc), pid=None)
        raise BadInput(f"deployment {row.id} failed: {exc}") from None
    except BaseException as exc:
        update_deployment(engine, row.id, status=FAILED, pid=None,
                          error=f"deployment stopped on an internal error ({type(exc).__name__})")
        raise
    return get_deployment(engine, row.id)


def _deploy_local(engine: Engine, deployment_id: int, source: ModelSource, *, folder: Path, settings: Settings,
                  port: int | None, token: str | None, timeout_s: float) -> None:
    model_dir = materialise(source, settings=settings, out_dir=folder / "model")
    port = port or local.free_port()
    name = dns_label(source.model_name, source.version)
    monitoring.write_bundle(folder / "monitoring", name=name, scrape=monitoring.Scrape(address=f"127.0.0.1:{port}"))
    local.save_token(folder, token)  # 0600: needed to restart the service after a reboot
    # A routing file from the start: A/B tests later swap models without restarting the process.
    write_spec(folder / local.ROUTING_FILE, RoutingSpec(champion=model_dir))
    pid = local.spawn(model_dir, port, folder=folder, settings=settings, token=token)
    update_deployment(engine, deployment_id, pid=pid, port=port, model_dir=str(model_dir))
    started = local.wait_ready(pid, port, timeout_s=timeout_s)
    update_deployment(engine, deployment_id, status=RUNNING, endpoint=started.endpoint)


def _deploy_docker(engine: Engine, deployment_id: int, source: ModelSource, *, folder: Path, settings: Settings,
                   port: int | None, token: str | None, base_image: str | None, trust_host_ca: bool,
                   image: str | None, timeout_s: float, on_log) -> None:
    docker_target.client()  # fail fast, before exporting and building, when there is no engine
    if image is None:
        image = docker_target.build(materialise(source, settings=settings, out_dir=folder / "model"),
                                    out_dir=folder / "context", model_name=source.model_name,
                                    version=source.version, base_image=base_image, trust_host_ca=trust_host_ca,
                                    on_log=on_log).tag
    # The container serves the version from its mounted /data through a routing file (relative
    # folders), like a local deployment: A/B tests then add a challenger without a new image.
    data = docker_target.data_dir(settings, deployment_id)
    model_dir = materialise(source, settings=settings, out_dir=data / "models" / "deployed", copy=True)
    write_spec(data / docker_target.ROUTING_FILE, RoutingSpec(champion=model_dir.relative_to(data)))
    update_deployment(engine, deployment_id, image=image, model_dir=str(model_dir))
    local.save_token(folder, token)  # 0600: A/B changes call the service's /admin/routing with it
    port = port or local.free_port()
    name = dns_label(source.model_name, source.version)
    monitoring.write_bundle(folder / "monitoring", name=name, scrape=monitoring.Scrape(address=f"127.0.0.1:{port}"))
    running = docker_target.run(image, deployment_id=deployment_id, port=port, token=token, data=data,
                                routing=True, timeout_s=timeout_s)
    update_deployment(engine, deployment_id, status=RUNNING, port=port, container_id=running.container_id,
                      endpoint=running.endpoint)


def _deploy_kubernetes(engine: Engine, deployment_id: int, source: ModelSource, *, folder: Path,
                       settings: Settings, token: str | None, image: str | None, namespace: str | None,
                       kubeconfig: Path | None) -> None:
    name = dns_label(source.model_name, source.version)
    image = image or _default_image(source)
    docs = kubernetes.manifests(name, model_name=source.model_name, version=source.version,
                                options=kubernetes.KubeOptions(image=image, namespace=namespace))
    manifest_dir = kubernetes.write_manifests(folder / "kubernetes", docs)
    monitoring.write_bundle(folder / "monitoring", name=name, scrape=monitoring.Scrape(kubernetes_instance=name))
    write_text_atomically(folder / "namespace", namespace or "")
    update_deployment(engine, deployment_id, image=image)
    kubeconfig = kubeconfig or settings.kubeconfig
    if not kubeconfig:
        secret = kubernetes.secret_name(name)
        hint = f"; create Secret '{secret}' (key 'token') for a token" if token else ""
        update_deployment(engine, deployment_id, status=STOPPED,
                          note=f"manifests written, not applied: no kubeconfig configured "
                               f"(pass --kubeconfig or set SHIPML_KUBECONFIG){hint}")
        return
    kubernetes.apply(manifest_dir, kubeconfig=Path(kubeconfig), name=name, namespace=namespace, token=token)
    update_deployment(engine, deployment_id, status=RUNNING, endpoint=kubernetes.endpoint(name, namespace),
                      note=f"applied with kubeconfig {Path(kubeconfig).name}")


def _default_image(source: ModelSource) -> str:
    return packaging.image_tag(source.model_name, source.version)


def build_image(
    engine: Engine,
    *,
    model: str,
    settings: Settings,
    base_image: str | None = None,
    trust_host_ca: bool = False,
    on_log: Callable[[str], None] | None = None,
) -> packaging.BuiltImage:
    """Build a model version's Docker image without running it (deploy it later with ``image=``).

    The version is exported to a fresh folder under ``<workspace>/images/`` next to its build
    context, so a build never touches a deployment's files.

    Args:
        engine: The store.
        model: As for :func:`deploy`: a model folder, ``NAME@VERSION``, ``NAME@ALIAS`` or ``NAME``.
        settings: Gives the workspace.
        base_image: The base image of the build (default: core.packaging's).
        trust_host_ca: Trust the host's extra CA certificates during the build.
        on_log: Receives the build log line by line.

    Returns:
        The image: id, tag and size in bytes.

    Raises:
        BadInput: No Docker engine, an unknown model, or the build failed (naming its step).
    """
    docker_target.client()  # fail fast, before exporting, when there is no engine
    source = resolve_source(engine, model)
    folder = settings.workspace / "images" / uuid.uuid4().hex
    model_dir = materialise(source, settings=settings, out_dir=folder / "model")
    return docker_target.build(model_dir, out_dir=folder / "context", model_name=source.model_name,
                               version=source.version, base_image=base_image, trust_host_ca=trust_host_ca,
                               on_log=on_log)


def stop_deployment(engine: Engine, deployment_id: int, *, settings: Settings,
                    kubeconfig: Path | None = None) -> Deployment:
    """Stop a deployment: end the process, remove the container, or delete the Kubernetes objects.

    Stopping a stopped deployment does nothing. Returns the updated row.

    Raises:
        BadInput: No such deployment, or its resources could not be removed.
    """
    row = get_deployment(engine, deployment_id)
    if row.status == STOPPED:
        return row
    if row.target == "local":
        local.stop(row.pid, row.port)
    elif row.target == "docker" and row.container_id:
        docker_target.remove(row.container_id)
    elif row.target == "kubernetes" and row.status == RUNNING:
        kubeconfig = kubeconfig or settings.kubeconfig
        if not kubeconfig:
            raise BadInput("this deployment was applied to a cluster; give a kubeconfig to delete it")
        namespace = _read_namespace(row)
        kubernetes.delete(kubernetes_dir(row), kubeconfig=Path(kubeconfig), namespace=namespace)
    update_deployment(engine, deployment_id, status=STOPPED, pid=None)
    if row.manifest_dir:
        (Path(row.manifest_dir) / local.TOKEN_FILE).unlink(missing_ok=True)
    return get_deployment(engine, deployment_id)


def _read_namespace(row: Deployment) -> str | None:
    try:
        return (Path(row.manifest_dir) / "namespace").read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class Restored:
    """What restoring did to one local deployment."""

    deployment_id: int
    status: str  # RUNNING or FAILED
    error: str | None = None


def restore_local_deployments(engine: Engine, *, settings: Settings,
                              timeout_s: float = 30.0) -> list[Restored]:
    """Restart RUNNING local deployments whose process is gone (after a reboot or a kill).

    Each is restarted on its recorded port with its model folder; when that cannot be done
    (port taken, folder gone, token lost) it is marked FAILED with the reason. Deployments left
    STARTING by a crashed app for longer than the start-up timeout are marked FAILED. Safe when
    several app processes call it at once: each deployment is claimed by one of them.

    Returns:
        One entry per deployment it restarted or failed; living ones are left alone.
    """
    outcomes: list[Restored] = []
    stale = utcnow() - timedelta(seconds=local.READY_TIMEOUT_S * 2)
    for row in list_deployments(engine, target="local", status=STARTING):
        if row.updated_at < stale and not local.alive(row.pid, row.port):
            if update_deployment(engine, row.id, only_if={"status": STARTING, "pid": row.pid},
                                 status=FAILED, pid=None, error="interrupted during start-up"):
                outcomes.append(Restored(row.id, FAILED, "interrupted during start-up"))
    waiting: list[tuple[int, int, int]] = []
    for row in list_deployments(engine, target="local", status=RUNNING):
        if local.alive(row.pid, row.port):
            continue
        if not update_deployment(engine, row.id, only_if={"status": RUNNING, "pid": row.pid},
                                 status=STARTING, pid=None):
            continue  # another process claimed it
        try:
            pid = _respawn(row, settings=settings)
        except BadInput as exc:
            update_deployment(engine, row.id, status=FAILED, error=f"not restarted: {exc}")
            outcomes.append(Restored(row.id, FAILED, f"not restarted: {exc}"))
            continue
        update_deployment(engine, row.id, pid=pid)
        waiting.append((row.id, pid, row.port))
    deadline = time.monotonic() + timeout_s
    for deployment_id, pid, port in waiting:  # the services start in parallel; wait for each
        try:
            started = local.wait_ready(pid, port, timeout_s=max(1.0, deadline - time.monotonic()))
        except local.StartFailed as exc:
            update_deployment(engine, deployment_id, status=FAILED, pid=None, error=f"not restarted: {exc}")
            outcomes.append(Restored(deployment_id, FAILED, f"not restarted: {exc}"))
            continue
        update_deployment(engine, deployment_id, status=RUNNING, endpoint=started.endpoint, error=None)
        outcomes.append(Restored(deployment_id, RUNNING))
    return outcomes


def _respawn(row: Deployment, *, settings: Settings) -> int:
    if not row.model_dir or not Path(row.model_dir).is_dir() or not row.manifest_dir:
        raise BadInput("its model folder is gone")
    check_folder(Path(row.model_dir))  # hash check: never serve a folder changed since
    if not row.port or not local.wait_port_free(row.port):
        raise BadInput(f"port {row.port} is now used by another program")
    folder = Path(row.manifest_dir)
    token = local.load_token(folder)
    if row.auth and token is None:
        raise BadInput("its token file is gone; deploy it again with a token")
    return local.spawn(Path(row.model_dir), row.port, folder=folder, settings=settings, token=token)


def probe(deployment: Deployment, *, timeout_s: float = 1.0) -> str:
    """A live look at a deployment for listings: ``up``, ``down`` or the container's state.

    Local and Docker deployments with an endpoint are asked for /health/ready; Kubernetes ones
    are reported as recorded (``-``), since only kubectl could tell more.
    """
    import httpx

    if deployment.status != RUNNING or deployment.target == "kubernetes" or not deployment.endpoint:
        return "-"
    if deployment.target == "local" and not local.alive(deployment.pid, deployment.port):
        return "down"
    try:
        ok = httpx.get(f"{deployment.endpoint}/health/ready", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        ok = False
    return "up" if ok else "down"


def deployment_logs(deployment: Deployment, *, lines: int = 200) -> str:
    """The last lines of the service's log (local: its log file; Docker: the container's)."""
    if deployment.target == "local" and deployment.manifest_dir:
        return local.tail_log(Path(deployment.manifest_dir), lines=lines)
    if deployment.target == "docker" and deployment.container_id:
        return docker_target.logs(deployment.container_id, lines=lines)
    return ""
