"""A/B tests and shadow mode on a running deployment: start, promote, roll back, stop.

Each call rewrites the deployment's routing file (``<deployment>/routing.json``, see
``core.serving.routing``) and asks the service to apply it (``POST /admin/routing``). The service
loads and hash-verifies the new models first and then swaps its routing in one assignment, so no
request is refused or dropped and requests in progress finish on the models they started with.
The call returns once the service answers with the new routing.

Targets: **local** and **Docker** deployments. A Docker container serves from its mounted
``/data`` (``core.deploy.docker_target.data_dir``): the routing file and the models it names live
there, written with folders relative to the file so the app and the container read the same
file. A local deployment started before routing files existed is restarted once with one
(requests are refused for the second or two it takes); a container started without one must be
redeployed. **Kubernetes**: the service supports the same routing file (``--routing``), but these
functions do not manage volumes in a cluster and refuse with that explanation.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from core import registry
from core.config import Settings
from core.deploy import docker_target, local
from core.deploy.records import RUNNING, get_deployment, update_deployment
from core.deploy.source import check_folder, folder_identity, materialise, resolve_source
from core.errors import BadInput
from core.files import replaced_atomically
from core.serving.routing import RoutingSpec, read_spec, write_spec
from core.store.models import Deployment, utcnow

APPLY_TIMEOUT_S = 120.0  # loading and verifying a large model can take a while


@dataclass(frozen=True)
class Variant:
    """One served model version."""

    name: str
    version: int
    folder: str


@dataclass(frozen=True)
class ABState:
    """What a deployment serves now, as its routing file says and its service confirmed."""

    deployment_id: int
    mode: str  # single, split or shadow
    champion: Variant
    challenger: Variant | None
    weight_b: float  # the challenger's share of keys in a split (0 otherwise)
    previous: Variant | None  # the champion before the last promotion (what rollback restores)
    started_at: datetime | None = None  # when the running A/B test began (None without one)


def ab_state(engine: Engine, deployment_id: int, *, settings: Settings) -> ABState:
    """The routing of a deployment, read from its routing file (no call to the service).

    Raises:
        BadInput: No such deployment.
    """
    row = get_deployment(engine, deployment_id)
    return _state(row, *_read(row, settings), started=_started(row, settings))


def start_ab(engine: Engine, deployment_id: int, *, challenger: str, settings: Settings,
             weight: float = 0.1, shadow: bool = False) -> ABState:
    """Serve a challenger next to the champion: a share ``weight`` of keys, or in shadow mode.

    Args:
        engine: The store.
        deployment_id: A RUNNING local deployment.
        challenger: ``NAME@VERSION``, ``NAME@ALIAS`` or an exported model folder.
        settings: Gives the workspace.
        weight: The challenger's share of traffic (0-1), sticky by request key.
        shadow: Score every request with the challenger without answering with it.

    Raises:
        BadInput: Not a running local deployment, a challenger that is not READY or of another
            task, or the service refused the new routing (it then keeps serving the old one).
    """
    row = _running(engine, deployment_id, settings)
    if not shadow and not 0.0 < float(weight) < 1.0:
        raise BadInput("the challenger's weight must be between 0 and 1 (exclusive)")
    current, _ = _read(row, settings)
    source = resolve_source(engine, challenger)
    champion = _identity(current.champion)
    if (source.model_name, source.version) == (champion.name, champion.version):
        raise BadInput("the challenger is the version already serving as champion")
    folder = _materialise(row, source, settings)
    spec = RoutingSpec(champion=current.champion, challenger=Path(folder), weight_b=0.0 if shadow else float(weight),
                       shadow=shadow)
    state = _apply(engine, row, spec, previous=None, settings=settings, started=utcnow())
    share = "shadow mode" if shadow else f"{weight:.0%} of keys"
    update_deployment(engine, deployment_id, note=f"A/B test: version {source.version} as challenger ({share})")
    return state


def promote(engine: Engine, deployment_id: int, *, settings: Settings) -> ABState:
    """Make the challenger the champion: it serves all traffic and the registry alias moves.

    Raises:
        BadInput: No A/B test running, or the service refused the change.
    """
    row = _running(engine, deployment_id, settings)
    current, _ = _read(row, settings)
    if current.challenger is None:
        raise BadInput("no A/B test is running on this deployment; start one first")
    state = _apply(engine, row, RoutingSpec(champion=current.challenger), previous=current.champion, settings=settings)
    _after_switch(engine, row, state.champion, kind="promote", note=f"promoted version {state.champion.version} to champion")
    return state


def stop_ab(engine: Engine, deployment_id: int, *, settings: Settings) -> ABState:
    """End an A/B test keeping the champion; the challenger stops getting traffic.

    Raises:
        BadInput: Not a running local deployment, or the service refused the change.
    """
    row = _running(engine, deployment_id, settings)
    current, previous = _read(row, settings)
    state = _apply(engine, row, RoutingSpec(champion=current.champion), previous=previous, settings=settings)
    update_deployment(engine, deployment_id, note="A/B test stopped; the champion serves alone")
    return state


def rollback(engine: Engine, deployment_id: int, *, settings: Settings, to: str | None = None) -> ABState:
    """Undo: end a running A/B test, or go back to the champion before the last promotion, or
    to any READY version given as ``to`` (``NAME@VERSION``). The champion alias follows.

    Raises:
        BadInput: Nothing to roll back to, or the service refused the change.
    """
    row = _running(engine, deployment_id, settings)
    current, previous = _read(row, settings)
    if to is None and current.challenger is not None:
        return stop_ab(engine, deployment_id, settings=settings)
    if to is not None:
        target = _materialise(row, resolve_source(engine, to), settings)
    elif previous is not None:
        target = previous
        check_folder(target)  # never serve a folder changed since
    else:
        raise BadInput("there is no earlier champion to roll back to; name a version")
    state = _apply(engine, row, RoutingSpec(champion=target), previous=current.champion, settings=settings)
    _after_switch(engine, row, state.champion, kind="rollback", note=f"rolled back to version {state.champion.version}")
    return state


# ---------------------------------------------------------------------- helpers


def _running(engine: Engine, deployment_id: int, settings: Settings) -> Deployment:
    row = get_deployment(engine, deployment_id)
    if row.target not in ("local", "docker"):
        raise BadInput("A/B tests are managed for local and Docker deployments; on Kubernetes mount both model "
                       "folders and a routing file and reload the service (see the README)")
    if row.target == "local":
        alive = local.alive(row.pid, row.port)
    else:
        alive = bool(row.container_id) and docker_target.status(row.container_id).startswith("running")
    if row.status != RUNNING or not row.endpoint or not alive:
        raise BadInput(f"deployment {deployment_id} is not running")
    return row


def _home(row: Deployment, settings: Settings) -> Path:
    """The folder holding the routing file and the models it names (a container's /data)."""
    if row.target == "docker":
        return docker_target.data_dir(settings, row.id)
    return Path(row.manifest_dir)


def _materialise(row: Deployment, source, settings: Settings) -> Path:
    """A fresh copy of a version under the deployment's home, where its service can read it."""
    return Path(materialise(source, settings=settings, out_dir=_home(row, settings) / "models" / uuid.uuid4().hex[:12],
                            copy=row.target == "docker"))


def _read(row: Deployment, settings: Settings) -> tuple[RoutingSpec, Path | None]:
    """The deployment's routing file (or its single model, for deployments made before them)."""
    path = _home(row, settings) / local.ROUTING_FILE
    if not path.is_file():
        if not row.model_dir:
            raise BadInput(f"deployment {row.id} has no model folder (it failed before serving)")
        return RoutingSpec(champion=Path(row.model_dir)), None
    spec = read_spec(path)
    previous = json.loads(path.read_text()).get("previous")
    return spec, path.parent / previous if isinstance(previous, str) else None


def _started(row: Deployment, settings: Settings) -> datetime | None:
    path = _home(row, settings) / local.ROUTING_FILE
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _apply(engine: Engine, row: Deployment, spec: RoutingSpec, *, previous: Path | None,
           settings: Settings, started: datetime | None = None) -> ABState:
    """Write the routing file and have the service apply it (restart once if it predates them)."""
    home = _home(row, settings)
    path = home / local.ROUTING_FILE
    had_file = path.is_file()
    old_text = path.read_text() if had_file else None
    extra = {"previous": _portable(previous, home)} if previous is not None else {}
    if started is not None:
        extra["started"] = started.isoformat()
    write_spec(path, RoutingSpec(champion=Path(_portable(spec.champion, home)),
                                 challenger=Path(_portable(spec.challenger, home)) if spec.challenger else None,
                                 weight_b=spec.weight_b, shadow=spec.shadow), **extra)
    token = local.load_token(Path(row.manifest_dir))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(f"{row.endpoint}/admin/routing", headers=headers, timeout=APPLY_TIMEOUT_S)
    except httpx.HTTPError:
        _restore(path, old_text)
        raise BadInput("the service did not answer the routing change; see the deployment log") from None
    if answer.status_code == 409 and not had_file and row.target == "local":
        _restart_with_routing(engine, row, settings=settings)  # started before routing files: once, then never again
    elif answer.status_code == 409:
        _restore(path, old_text)
        raise BadInput("this service was started without a routing file; redeploy it to run A/B tests")
    elif answer.status_code != 200:
        detail = _detail(answer)
        _restore(path, old_text)  # the file keeps saying what the service really serves
        raise BadInput(f"the service kept its routing: {detail}")
    return _state(row, spec, previous, started=started)


def _portable(folder: Path, home: Path) -> str:
    """A folder under ``home`` relative to it, so a container resolves it under its own mount."""
    try:
        return str(Path(folder).resolve().relative_to(home.resolve()))
    except ValueError:
        return str(folder)


def _restore(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
    else:
        with replaced_atomically(path) as fh:
            fh.write(text)


def _restart_with_routing(engine: Engine, row: Deployment, *, settings: Settings) -> None:
    token = local.load_token(Path(row.manifest_dir))
    local.stop(row.pid, row.port)
    pid = local.spawn(Path(row.model_dir), row.port, folder=Path(row.manifest_dir), settings=settings, token=token)
    update_deployment(engine, row.id, pid=pid)
    local.wait_ready(pid, row.port)


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", "refused"))[:300]
    except ValueError:
        return f"status {answer.status_code}"


def _identity(folder: Path) -> Variant:
    # Only model.json: hashing every variant's model file on each Monitor page rerun cost a read
    # of every model; the service checks the hash before it serves a model.
    source = folder_identity(Path(folder))
    return Variant(name=source.model_name, version=source.version, folder=str(folder))


def _state(row: Deployment, spec: RoutingSpec, previous: Path | None, *, started: datetime | None) -> ABState:
    challenger = _identity(spec.challenger) if spec.challenger is not None else None
    return ABState(deployment_id=int(row.id), mode=spec.mode, champion=_identity(spec.champion),
                   challenger=challenger, weight_b=spec.weight_b if spec.mode == "split" else 0.0,
                   previous=_identity(previous) if previous is not None and previous.is_dir() else None,
                   started_at=started if challenger is not None else None)


def _after_switch(engine: Engine, row: Deployment, champion: Variant, *, kind: str, note: str) -> None:
    """Record the new champion on the deployment, move the registry's champion alias and add the
    change to the model's champion history (shown on the Monitor page with the retrains)."""
    from core.monitoring.retrain import record_change  # late: it brings the training stack

    version_id = None
    try:
        version = registry.get_version(engine, name=champion.name, version=champion.version)
        if version.status == registry.READY:
            registry.set_alias(engine, name=champion.name, alias="champion", version=champion.version)
            version_id = version.id
            record_change(engine, model_name=champion.name, kind=kind, to_version=champion.version,
                          from_version=row.version if row.model_name == champion.name else None,
                          note=f"A/B test on deployment {row.id}")
    except BadInput:
        pass  # a folder from outside the registry: nothing to move
    update_deployment(engine, row.id, model_name=champion.name, version=champion.version, version_id=version_id,
                      model_dir=champion.folder, note=note)
