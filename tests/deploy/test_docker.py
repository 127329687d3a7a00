"""The Docker target against a real engine: build, run, ready, predict, non-root, logs, stop."""
from __future__ import annotations

import io
import json
import os

import httpx
import pandas as pd
import pytest

from core import deploy, registry
from core.deploy import abtest, docker_target
from core.errors import BadInput
from core.monitoring import health
from core.serving.predlog import read_rows
from core.serving_io import predict_frame
from tests.deploy.conftest import register_trained
from tests.packaging.conftest import host_has_extra_cas
from tests.services import missing

pytestmark = pytest.mark.xdist_group("docker")
TOKEN = "docker-token-1234567"


@pytest.fixture
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception:  # noqa: BLE001
        missing("a Docker engine (apt-get install docker.io; start dockerd)")
    return client


def docker_base_image() -> str:
    """SHIPML_TEST_BASE_IMAGE (CI builds it without Docker Hub), else the one CI's script names;
    skipped outside CI (failed under CI) when the engine or the image is missing."""
    name = os.environ.get("SHIPML_TEST_BASE_IMAGE", "shipml/python-base:bookworm")
    try:
        import docker

        docker.from_env(timeout=30).images.get(name)
    except Exception:  # noqa: BLE001 - no engine, or no such image
        missing(f"a Docker engine with the base image {name} (see .ci/run)")
    return name


@pytest.fixture
def base_image(docker_client) -> str:
    return docker_base_image()


def test_docker_deploy_serves_like_offline_as_non_root_and_stops(engine, settings, registered, trained,
                                                                 docker_client, base_image) -> None:
    log: list[str] = []
    row = deploy.deploy(engine, model="pen guins@champion", target="docker", settings=settings, token=TOKEN,
                        base_image=base_image, trust_host_ca=host_has_extra_cas(), on_log=log.append,
                        ready_timeout_s=90)
    try:
        assert row.status == deploy.RUNNING and row.container_id and row.image.startswith("shipml-model/")
        assert any("Successfully built" in line for line in log)
        container = docker_client.containers.get(row.container_id)
        assert container.exec_run(["id", "-u"]).output.strip() != b"0"  # not root
        assert container.attrs["HostConfig"]["ReadonlyRootfs"] and container.attrs["HostConfig"]["CapDrop"]
        assert TOKEN not in json.dumps(docker_client.images.get(row.image).attrs)  # not in the image
        frame = pd.read_parquet(trained / "reference.parquet").head(4)
        body = {"rows": json.loads(frame.to_json(orient="records"))}
        assert httpx.post(f"{row.endpoint}/predict", json=body, timeout=30).status_code == 401
        answer = httpx.post(f"{row.endpoint}/predict", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200, answer.text
        pipeline, meta = registry.load_exported(trained)
        offline = predict_frame(pipeline, frame, threshold=meta["metrics"].get("decision_threshold"))
        assert [p["prediction"] for p in answer.json()["predictions"]] == list(offline["prediction"])
        assert deploy.probe(row) == "up"
        assert "ready" in deploy.deployment_logs(row)
        assert (deploy.deployment_dir(row.id, settings=settings) / "monitoring" / "alerts.yml").is_file()
    finally:
        stopped = deploy.stop_deployment(engine, row.id, settings=settings)
    assert stopped.status == deploy.STOPPED
    assert not docker_client.containers.list(all=True, filters={"id": row.container_id})
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{row.endpoint}/health/live", timeout=2)
    # The container wrote its prediction log into a host folder: the app reads it after the container is gone.
    log_engine = health.log_engine_for(settings, deployment=stopped)
    try:
        logged = read_rows(log_engine)
    finally:
        log_engine.dispose()
    assert [r["prediction"] for r in logged] == list(offline["prediction"])
    assert {r["model_name"] for r in logged} == {"pen guins"}


def test_an_image_built_first_is_deployed_later(engine, settings, registered, trained, docker_client,
                                                base_image) -> None:
    log: list[str] = []
    built = deploy.build_image(engine, model="pen guins@champion", settings=settings, base_image=base_image,
                               trust_host_ca=host_has_extra_cas(), on_log=log.append)
    assert built.tag.startswith("shipml-model/") and built.size_bytes > 50_000_000  # Python, sklearn, LightGBM
    assert docker_client.images.get(built.tag).id == built.id and any("Step" in line for line in log)
    assert not list((settings.workspace / "deployments").glob("*"))  # a build alone deploys nothing
    row = deploy.deploy(engine, model="pen guins@champion", target="docker", settings=settings, image=built.tag,
                        token=TOKEN, ready_timeout_s=90)
    try:
        assert row.status == deploy.RUNNING and row.image == built.tag
        assert httpx.get(f"{row.endpoint}/health/ready", timeout=10).status_code == 200
        _ab_cycle(engine, settings, registered, row, trained)
    finally:
        deploy.stop_deployment(engine, row.id, settings=settings)


def _ab_cycle(engine, settings, registered, row, trained) -> None:
    """A/B on the running container: version 2 joins without a new image, is promoted, rolled back."""
    assert register_trained(engine, settings, trained).version == 2
    body = {"rows": json.loads(pd.read_parquet(trained / "reference.parquet").head(1).to_json(orient="records"))}
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def versions(n: int) -> set[str]:
        with httpx.Client(base_url=row.endpoint, headers=headers, timeout=30) as client:
            answers = [client.post("/predict", json={**body, "key": f"k{i}"}) for i in range(n)]
        assert {a.status_code for a in answers} == {200}
        return {a.headers["x-model-version"] for a in answers}

    state = abtest.start_ab(engine, row.id, challenger="pen guins@2", settings=settings, weight=0.5)
    assert state.mode == "split" and state.challenger.version == 2 and state.started_at is not None
    assert versions(40) == {"1", "2"}  # 40 keys at 50/50: both sides, but for a 1e-12 chance
    promoted = abtest.promote(engine, row.id, settings=settings)
    assert promoted.champion.version == 2 and versions(10) == {"2"}
    assert registry.aliases(engine, name="pen guins")["champion"] == 2
    back = abtest.rollback(engine, row.id, settings=settings)
    assert back.champion.version == 1 and versions(10) == {"1"}


def test_an_image_that_cannot_serve_fails_cleanly(engine, settings, registered, docker_client,
                                                  base_image) -> None:
    # An image whose entrypoint exits at once: the container stops, the deployment says so.
    exits, _ = docker_client.images.build(fileobj=io.BytesIO(
        f'FROM {base_image}\nENTRYPOINT ["/bin/sh", "-c", "exit 3"]\n'.encode()),
        tag="shipml-test/exits:v1", rm=True, network_mode="host")
    with pytest.raises(BadInput, match=r"deployment \d+ failed: the container stopped during start-up \(exit code 3\)"):
        deploy.deploy(engine, model="pen guins@1", target="docker", settings=settings, image=exits.tags[0],
                      ready_timeout_s=30)
    # The bare base image has no service to start: the engine refuses, the deployment says why.
    with pytest.raises(BadInput, match=r"deployment \d+ failed: the Docker engine refused to start the container"):
        deploy.deploy(engine, model="pen guins@1", target="docker", settings=settings, image=base_image,
                      ready_timeout_s=10)
    with pytest.raises(BadInput, match="no such image"):
        deploy.deploy(engine, model="pen guins@1", target="docker", settings=settings,
                      image="shipml-test/does-not-exist:v1", ready_timeout_s=10)
    # It crashes a second in, and its restart keeps running without ever being ready: when the
    # wait loop looks, the container's own state mostly reads exit code 0; the crash's code is 3.
    once, _ = docker_client.images.build(fileobj=io.BytesIO(
        f'FROM {base_image}\nENTRYPOINT ["/bin/sh", "-c", "if [ -e /data/crashed ]; then trap \'exit 0\' TERM; '
        f'sleep 60 & wait; else touch /data/crashed; sleep 1; exit 3; fi"]\n'.encode()),
        tag="shipml-test/crashes-once:v1", rm=True, network_mode="host")
    with pytest.raises(BadInput, match=r"stopped during start-up \(exit code 3\)"):
        deploy.deploy(engine, model="pen guins@1", target="docker", settings=settings, image=once.tags[0],
                      ready_timeout_s=30)
    rows = deploy.list_deployments(engine)
    assert [r.status for r in rows] == [deploy.FAILED] * 4
    # Nothing left behind: no container of this workspace's failed deployments (other tests, in other
    # workers or runs, use the same engine meanwhile, so a before/after count would race).
    for row in rows:
        data = docker_target.data_dir(settings, row.id).resolve()
        assert not docker_client.containers.list(all=True, filters={"label": f"{docker_target.DATA_LABEL}={data}"})
