"""The Deploy page with real local deployments: deploy from the page, list, try it, stop."""
from __future__ import annotations

import time

import httpx
import pytest

from core import deploy
from core.deploy import local
from tests.deploy.conftest import MODEL_NAME, registered, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.xdist_group("deploy-local")
TOKEN = "page-token-1234567"
PAGE = "pages/deploy.py"


@pytest.fixture(autouse=True)
def _stop_everything(engine, settings):
    """No test leaves a service running: wait for starts in flight, then stop every process."""
    yield
    deadline = time.monotonic() + 60
    while any(r.status == deploy.STARTING for r in deploy.list_deployments(engine)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def _no_exceptions(at) -> None:
    assert [e.value for e in at.exception] == []


def _schema(endpoint: str) -> dict:
    return httpx.get(f"{endpoint}/schema", timeout=10).json()


def _wait_started(engine, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        rows = deploy.list_deployments(engine)
        if rows and rows[0].status != deploy.STARTING:
            return rows[0]
        assert time.monotonic() < deadline, "the deployment did not finish starting"
        time.sleep(0.2)


def test_without_models_or_deployments(app) -> None:
    at = app(PAGE)
    _no_exceptions(at)
    assert any("No model is registered yet" in i.value for i in at.info)
    assert any("No deployment yet." in c.value for c in at.caption)


def test_deploy_from_the_page_try_it_and_stop(app, engine, registered) -> None:  # noqa: F811
    at = app(PAGE)
    _no_exceptions(at)
    refs = at.selectbox(key="deploy_ref")
    assert refs.options == ["champion (v1)", "v1"]  # the alias first, then every READY version
    assert at.radio(key="deploy_target").value == "local"
    assert at.button(key="deploy_go").label == "Deploy"
    at.button(key="deploy_go").click().run()
    _no_exceptions(at)
    row = _wait_started(engine)
    assert row.status == deploy.RUNNING, row.error
    assert (row.model_name, row.version, row.target, row.auth) == (MODEL_NAME, 1, "local", False)
    at.run()
    _no_exceptions(at)
    # The finished task, the list with a live probe, and the endpoint.
    assert any(row.endpoint in c.value for c in at.code)
    listing = at.dataframe[0].value
    assert listing.loc[0, "status"] == "RUNNING" and listing.loc[0, "live"] == "up"
    assert listing.loc[0, "endpoint"] == row.endpoint and listing.loc[0, "model"] == f"{MODEL_NAME}@v1"

    # The try-it form has one widget per schema column, of the schema's kind.
    schema = _schema(row.endpoint)
    categorical = {c["name"]: c["categories"] for c in schema["columns"] if c.get("categories")}
    numeric = [c["name"] for c in schema["columns"] if c["type"] in ("number", "integer")]
    assert categorical and numeric
    boxes = {s.label: s for s in at.selectbox if s.key and s.key.startswith(f"try_{row.id}_")}
    assert {k.replace("\\", ""): list(v.options) for k, v in boxes.items()} == categorical
    numbers = [n.label.replace("\\", "") for n in at.number_input if n.key and n.key.startswith(f"try_{row.id}_")]
    assert sorted(numbers) == sorted(numeric)  # laid out in three columns
    # Prefilled from a training row, so the default submission is valid.
    assert all(n.value is not None for n in at.number_input if n.key and n.key.startswith(f"try_{row.id}_"))
    next(b for b in at.button if b.label == "Predict").click().run()
    _no_exceptions(at)
    prediction = next(m for m in at.metric if m.label == "Prediction")
    assert prediction.value in schema["classes"]
    assert any("Request id" in c.value for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 1  # class probabilities
    # Copyable examples with the endpoint and a sample row.
    curl = next(c.value for c in at.code if c.value.startswith("curl"))
    assert f"{row.endpoint}/predict" in curl and "$SHIPML_TOKEN" not in curl  # no token: no header
    assert any(c.value.startswith("import httpx") for c in at.code)

    next(b for b in at.button if b.key == f"stop_{row.id}").click().run()
    _no_exceptions(at)
    assert deploy.get_deployment(engine, row.id).status == deploy.STOPPED
    assert not local.alive(row.pid, row.port)
    assert at.dataframe[0].value.loc[0, "status"] == "STOPPED"
    assert any("Deploy a model" in c.value for c in at.caption)  # nothing left to try


def test_deployment_with_a_token_needs_it_and_never_shows_it(app, engine, settings, registered) -> None:  # noqa: F811
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@1", target="local", settings=settings, token=TOKEN)
    at = app(PAGE)
    _no_exceptions(at)
    assert at.dataframe[0].value.loc[0, "token"] == "yes"
    # Without the token the service says 401, and the page says why.
    next(b for b in at.button if b.label == "Predict").click().run()
    _no_exceptions(at)
    assert any("bearer token" in e.value for e in at.error)
    assert not any(m.label == "Prediction" for m in at.metric)
    at.text_input(key=f"try_token_{row.id}").input(TOKEN)
    next(b for b in at.button if b.label == "Predict").click().run()
    _no_exceptions(at)
    assert any(m.label == "Prediction" for m in at.metric)
    # The examples carry a placeholder; the real token appears in no element of the page.
    curl = next(c.value for c in at.code if c.value.startswith("curl"))
    assert 'Authorization: Bearer $SHIPML_TOKEN' in curl
    python = next(c.value for c in at.code if "import httpx" in c.value)
    assert "os.environ['SHIPML_TOKEN']" in python
    shown = [c.value for c in at.code] + [m.value for m in at.markdown] + [c.value for c in at.caption]
    assert not any(TOKEN in text for text in shown)
    # A stopped service is no longer offered, and its logs stay readable.
    assert deploy.stop_deployment(engine, row.id, settings=settings).status == deploy.STOPPED
    at.run()
    _no_exceptions(at)
    assert not any(b.label == "Predict" for b in at.button)


def _wait_task(at, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    # (AppTest 1.67 reports every st.status as complete: the label tells a running task)
    while any(s.label.startswith("Deploying") and "failed after" not in s.label for s in at.status):
        assert time.monotonic() < deadline, "the deploy task did not end"
        time.sleep(0.3)
        at.run()


def _errors(at) -> list[str]:
    return [e.value.replace("\\", "").lower() for e in at.error]  # errors start with a capital


def test_failed_deployments_are_explained(app, engine, settings, registered) -> None:  # noqa: F811
    at = app(PAGE)
    at.text_input(key="deploy_token").input("short")  # refused before anything starts
    at.button(key="deploy_go").click().run()
    _no_exceptions(at)
    assert at.text_input(key="deploy_token").value == ""  # the token box is cleared at once
    _wait_task(at)
    assert any("8-512 visible" in e for e in _errors(at))
    assert deploy.list_deployments(engine) == []
    next(b for b in at.button if b.label == "Dismiss").click().run()
    assert not at.status

    # A model file changed behind the registry's back: the row is FAILED, with the reason listed.
    (settings.models_dir / registered.artifact_file).write_bytes(b"not the model")
    at.button(key="deploy_go").click().run()
    _wait_task(at)
    _no_exceptions(at)
    (row,) = deploy.list_deployments(engine)
    assert row.status == deploy.FAILED
    assert any(f"deployment {row.id} failed" in e for e in _errors(at))
    listing = at.dataframe[0].value
    assert listing.loc[0, "status"] == "FAILED" and listing.loc[0, "note / error"] == row.error


def test_kubernetes_manifests_are_written_and_explained(app, engine, registered) -> None:  # noqa: F811
    at = app(PAGE)
    at.radio(key="deploy_target").set_value("kubernetes").run()
    assert at.button(key="deploy_go").label == "Write manifests"
    assert not any(n.key == "deploy_port" for n in at.number_input)  # no host port for a cluster
    at.text_input(key="deploy_namespace").input("ml-team")
    at.button(key="deploy_go").click().run()
    _wait_task(at)
    _no_exceptions(at)
    (row,) = deploy.list_deployments(engine)
    assert row.status == deploy.STOPPED and "not applied" in row.note
    folder = deploy.kubernetes_dir(row)
    assert (folder / "deployment.yaml").exists() or any(folder.glob("*.yaml"))
    assert any(c.value == f"kubectl apply -f {folder}" for c in at.code)
    assert at.dataframe[0].value.loc[0, "note / error"] == row.note


def test_docker_build_image_first_then_deploy_it(app, engine, settings, registered) -> None:  # noqa: F811
    from tests.deploy.test_docker import docker_base_image
    from tests.packaging.conftest import host_has_extra_cas

    base = docker_base_image()
    at = app(PAGE)
    at.radio(key="deploy_target").set_value("docker").run()
    assert at.button(key="deploy_go").label == "Build image and deploy"
    at.text_input(key="deploy_base_image").input(base)
    if host_has_extra_cas():  # a network that intercepts TLS (this machine's)
        at.checkbox(key="deploy_trust_ca").check()
    at.button(key="deploy_build").click().run()
    _no_exceptions(at)
    deadline = time.monotonic() + 300
    while not any("Built:" in c.value for c in at.caption):
        assert time.monotonic() < deadline, "the image build did not finish"
        time.sleep(1)
        at.run()
        _no_exceptions(at)
    assert not deploy.list_deployments(engine)  # building deploys nothing
    assert any("MB" in c.value and "shipml" in c.value for c in at.caption if "Built:" in c.value)  # tag, size
    assert at.button(key="deploy_go").label == "Deploy"
    at.button(key="deploy_go").click().run()
    row = _wait_started(engine, timeout=150)
    try:
        assert row.status == deploy.RUNNING, row.error
        assert row.image.startswith("shipml-model/") and row.container_id
    finally:
        deploy.stop_deployment(engine, row.id, settings=settings)
