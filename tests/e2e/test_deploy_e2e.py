"""Deploy in a real Chromium: a registered model goes live locally from the page and predicts."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from core import deploy, registry
from core.config import Settings
from core.deploy import local
from core.store.db import make_engine
from tests.deploy.conftest import MODEL_NAME, register_trained, trained  # noqa: F401 - session fixture
from tests.e2e.conftest import click_until, running_app, screenshot, settle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def _register(settings: Settings, model_dir) -> None:
    """The exported model as version 1 of MODEL_NAME, aliased champion, in this workspace's store."""
    engine = make_engine(settings.db_url)
    try:
        version = register_trained(engine, settings, model_dir)
        registry.set_alias(engine, name=MODEL_NAME, alias="champion", version=version.version)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def deploy_app(tmp_path_factory, trained) -> Iterator[tuple[str, Settings]]:  # noqa: F811
    """The app on a workspace holding one registered model; every deployment stopped at the end."""
    workspace = tmp_path_factory.mktemp("e2e-deploy")
    settings = Settings(workspace=workspace)
    _register(settings, trained)
    try:
        with running_app(workspace) as url:
            yield url, settings
    finally:
        engine = make_engine(settings.db_url)
        for row in deploy.list_deployments(engine):  # the services are detached: stop them here
            local.stop(row.pid, row.port, grace_s=2)
        engine.dispose()


def test_deploy_locally_and_predict_from_the_try_it_form(page, deploy_app, screenshots) -> None:
    url, settings = deploy_app
    page.goto(url)
    click_until(page, page.get_by_test_id("stSidebarNav").get_by_text("Deploy", exact=True),
                page.get_by_role("heading", name="Deploy", exact=True).first)
    expect(page.get_by_text("No deployment yet.")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Deploy", exact=True).click()
    # The background deployment finishes, the page reruns once and lists it, up.
    expect(page.get_by_text(re.compile(r"^Deployed pen guins@champion → local in \d+ s"))).to_be_visible(timeout=90_000)
    settle(page)
    engine = make_engine(settings.db_url)
    try:
        (row,) = deploy.list_deployments(engine)
    finally:
        engine.dispose()
    assert row.status == deploy.RUNNING and row.endpoint
    expect(page.get_by_role("heading", name="Try it")).to_be_visible()
    form = page.get_by_test_id("stForm")
    expect(form.get_by_test_id("stSelectbox").filter(has_text="island")).to_have_count(1)
    expect(form.get_by_test_id("stNumberInput").first).to_be_visible()
    form.get_by_role("button", name="Predict").click()
    prediction = page.get_by_test_id("stMetric").filter(has_text="Prediction").get_by_test_id("stMetricValue")
    expect(prediction).to_have_text(re.compile(r"^(Adelie|Chinstrap|Gentoo)$"))
    expect(page.get_by_text(re.compile(r"^Request id"))).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
    expect(page.get_by_text(f"{row.endpoint}/predict", exact=False).first).to_be_attached()
    settle(page)
    page.set_viewport_size({"width": 1400, "height": 2100})  # the whole page, examples included
    settle(page)
    screenshot(page, screenshots / "deploy.png")
