"""The Docker target: run a model image (built by ``core.packaging``) with the docker SDK.

Containers join a user-created bridge network and publish the service's port 8080 on
127.0.0.1 (on engines started with ``--bridge=none`` a port published on the default network
is silently ignored, while a user network's are honoured). The token goes in as an environment
variable of the container, never into the image. ``restart_policy=unless-stopped`` lets the
engine bring containers back after a reboot.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import packaging
from core.config import Settings
from core.errors import BadInput
from core.packaging.context import SERVICE_UID

NETWORK = "shipml"
PORT = 8080
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10
LABEL = "io.shipml.deployment"
DATA = "/data"  # the service's workspace in the image: its prediction log and, mounted, routing and models
ROUTING_FILE = "routing.json"
DATA_LABEL = "io.shipml.data"  # the host folder at /data: ids repeat across workspaces, folders do not


@dataclass(frozen=True)
class RunningContainer:
    container_id: str
    port: int
    endpoint: str


def client():
    """A docker SDK client, or BadInput with a clear reason when no engine answers."""
    try:
        import docker

        found = docker.from_env(timeout=30)
        found.ping()
        return found
    except Exception:  # noqa: BLE001 - the SDK raises many kinds; the user needs one message
        raise BadInput("no Docker engine answers (is dockerd running and DOCKER_HOST right?)") from None


def build(model_dir: Path, *, out_dir: Path, model_name: str, version: int, base_image: str | None,
          trust_host_ca: bool = False, on_log=None) -> packaging.BuiltImage:
    """Build the model's image with ``core.packaging`` (context in ``out_dir``)."""
    extra = {"base_image": base_image} if base_image else {}
    context = packaging.build_context(model_dir, out_dir, trust_host_ca=trust_host_ca, **extra)
    return packaging.build_image(context, tag=packaging.image_tag(model_name, version), on_log=on_log,
                                 labels={"io.shipml.model-version": str(int(version))})


def data_dir(settings: Settings, deployment_id: int) -> Path:
    """The host folder mounted at a deployment's ``/data``: its prediction log lives there."""
    return settings.workspace / "serving" / "docker" / f"deployment-{int(deployment_id)}"


def run(image: str, *, deployment_id: int, port: int, token: str | None, data: Path | None = None,
        routing: bool = False, timeout_s: float = READY_TIMEOUT_S) -> RunningContainer:
    """Start a container from ``image`` publishing 8080 on 127.0.0.1:``port`` and wait until ready.

    ``data``, a host folder, is bind-mounted at the container's ``/data`` so that the prediction log
    the service writes there is readable by the app and outlives the container. With ``routing``
    the service serves what ``data/routing.json`` says (``core.deploy.abtest`` changes it).

    Raises:
        BadInput: No engine, or the container did not become ready (it is then removed).
    """
    import docker as sdk

    docker = client()
    _network(docker)
    # Ids repeat across workspaces sharing one engine: a random suffix keeps names unique.
    name = f"shipml-deployment-{int(deployment_id)}-{uuid.uuid4().hex[:8]}"
    try:
        docker.images.get(image)  # never pull implicitly: registries may be out of reach
    except sdk.errors.APIError:  # not found, or not a valid reference
        raise BadInput("no such image on the Docker engine; build or pull it first") from None
    mount = _data_mount(data) if data is not None else {}
    labels = {LABEL: str(int(deployment_id)), **({DATA_LABEL: str(data.resolve())} if data is not None else {})}
    started = int(time.time()) - 1  # events are asked for by whole seconds
    try:
        container = docker.containers.run(
            image, detach=True, name=name, **mount,
            # The image's entrypoint stays; only its arguments change.
            command=["--port", str(PORT), "--routing", f"{DATA}/{ROUTING_FILE}"] if routing else None,
            environment={"SHIPML_SERVE_TOKEN": token} if token else {},
            labels=labels, network=NETWORK,
            ports={f"{PORT}/tcp": ("127.0.0.1", port)}, restart_policy={"Name": "unless-stopped"},
            # Least privilege: nothing to write but /data (the image's volume) and /tmp.
            read_only=True, tmpfs={"/tmp": "rw,size=64m"}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        )
    except sdk.errors.APIError as exc:
        remove(name)  # created but not started
        raise BadInput(f"the Docker engine refused to start the container: {_short(exc)}") from None
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            container.reload()
            # With a restart policy a crashing service shows as "restarting", not "exited".
            if container.status in ("exited", "dead", "restarting") or container.attrs.get("RestartCount"):
                code = _first_exit_code(docker, container.id, since=started)
                remove(container.id)
                detail = f" (exit code {code})" if code is not None else ""
                raise BadInput(f"the container stopped during start-up{detail}; see its logs")
            try:
                if http.get(f"{url}/health/ready").status_code == 200:
                    return RunningContainer(container_id=container.id, port=port, endpoint=url)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    remove(container.id)
    raise BadInput(f"the container was not ready within {timeout_s:.0f} s; see its logs")


def _first_exit_code(docker, container_id: str, *, since: int) -> int | None:
    """The exit code of the container's first stop since ``since`` (Unix seconds), or None.

    Read from the engine's ``die`` events, not the container's state: with the restart policy
    a container that crashed may already be running again when the wait loop looks, and its
    state then reads exit code 0 (CI once reported 0 for an entrypoint that exits with 3).
    """
    import docker as sdk
    import requests

    try:
        events = docker.events(since=since, until=int(time.time()) + 1, decode=True,
                               filters={"container": container_id, "event": "die"})
    except (sdk.errors.APIError, requests.RequestException):
        return None
    try:
        for event in events:
            code = event.get("Actor", {}).get("Attributes", {}).get("exitCode")
            if code is not None:
                return int(code)
    except (requests.RequestException, ValueError):
        return None
    finally:
        events.close()
    return None


def _data_mount(data: Path) -> dict:
    """``containers.run`` arguments that mount ``data`` at /data, writable by the service.

    As root the app hands the folder to the image's service user; otherwise the service runs as
    the app's own (non-root) user, so the files it writes belong to the reader as well: SQLite
    readers of a WAL database need write access to its shared-memory file.
    """
    data.mkdir(parents=True, exist_ok=True)
    mount = {"volumes": {str(data.resolve()): {"bind": DATA, "mode": "rw"}}}
    if os.geteuid() == 0:
        for path in (data, *data.rglob("*")):
            os.chown(path, SERVICE_UID, SERVICE_UID)
        return mount
    return {**mount, "user": f"{os.getuid()}:{os.getgid()}"}


def _network(docker) -> None:
    import docker as sdk

    try:
        docker.networks.get(NETWORK)
    except sdk.errors.NotFound:
        try:
            docker.networks.create(NETWORK, driver="bridge", labels={"io.shipml": "deploy"})
        except sdk.errors.APIError:
            docker.networks.get(NETWORK)  # created meanwhile by another process


def status(container_id: str) -> str:
    """The container's state (running, exited, ...), with its health when it has a HEALTHCHECK."""
    import docker as sdk

    try:
        container = client().containers.get(container_id)
    except sdk.errors.NotFound:
        return "gone"
    health = (container.attrs.get("State", {}).get("Health") or {}).get("Status")
    return f"{container.status} ({health})" if health else container.status


def logs(container_id: str, *, lines: int = 200) -> str:
    import docker as sdk

    try:
        return client().containers.get(container_id).logs(tail=lines).decode("utf-8", errors="replace")
    except sdk.errors.NotFound:
        return ""


def remove(container_id: str) -> None:  # an id or a name
    """Stop (SIGTERM, then SIGKILL after 10 s) and remove the container; the image stays."""
    import docker as sdk

    try:
        container = client().containers.get(container_id)
    except sdk.errors.NotFound:
        return
    try:
        container.stop(timeout=STOP_TIMEOUT_S)
    except sdk.errors.APIError:
        pass
    try:
        container.remove(force=True)
    except sdk.errors.NotFound:
        pass


def _short(exc, limit: int = 200) -> str:
    text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
