"""A person's walk through the data steps, in a real Chromium against the real app."""
from __future__ import annotations

import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import expect

from core import registry
from core.config import SAMPLES_DIR
from tests.e2e.conftest import click_until, screenshot, settle

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def _messy_csv(path) -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "plan": rng.choice(["Basic", "basic ", "BASIC", "Pro", "pro"], n),
            "spend": [f"${v:,.2f}" for v in rng.uniform(10, 5000, n)],
            "visits": rng.poisson(5, n),
            "bought": rng.choice(["yes", "no"], n),
        }
    )
    frame.loc[rng.choice(n, 30, replace=False), "age"] = np.nan
    frame = pd.concat([frame, frame.head(10)], ignore_index=True)  # duplicate rows
    frame.to_csv(path, index=False)


def _choose(page, label: str, option: str, *, exact: bool = True) -> None:
    """Pick ``option`` (or, not ``exact``, the option starting with it) in a labelled selectbox."""
    settle(page)
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    expect(box).to_have_count(1)  # reruns briefly show stale copies; wait for the settled page
    box.locator("input").first.click()
    page.keyboard.type(option)
    name = option if exact else re.compile("^" + re.escape(option))
    page.get_by_role("option", name=name, exact=exact).first.click()


def _goto(page, title: str) -> None:
    link = page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True)
    click_until(page, link, page.get_by_role("heading", name=title, exact=True).first)  # going twice is harmless


def test_upload_fix_and_features(page, app_url, tmp_path, screenshots) -> None:
    data = tmp_path / "shop.csv"
    _messy_csv(data)
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Upload & profile").first).to_be_visible()

    page.locator("input[type=file]").first.set_input_files(str(data))
    expect(page.get_by_role("heading", name="shop.csv")).to_be_visible()
    _choose(page, "Target: the column to predict", "bought")
    expect(page.get_by_text(re.compile(r"Detected issues \(\d+\)"))).to_be_visible()
    expect(page.get_by_text("duplicate", exact=False).first).to_be_visible()
    screenshot(page, screenshots / "upload.png")

    # A second "Fix" would only fix the next issue too, which the rest of the test allows.
    click_until(page, page.get_by_role("button", name="Fix").first, page.get_by_text("In the recipe").first)

    _goto(page, "Clean")
    expect(page.get_by_text("1. ", exact=False).first).to_be_visible()
    screenshot(page, screenshots / "clean.png")

    _goto(page, "Features")
    count = page.get_by_test_id("stMetric").filter(has_text="Features the model will see").get_by_test_id("stMetricValue")
    expect(count).to_be_visible()
    before = int(count.inner_text())
    # Choose features: take "plan" (one-hot, several features) out of the model's columns.
    columns = page.get_by_test_id("stMultiSelect").filter(has_text="Columns the model may use")
    columns.get_by_role("button", name="Remove plan", exact=True).click()
    expect(count).not_to_have_text(str(before))
    assert int(count.inner_text()) < before
    page.get_by_role("button", name="Save feature plan").click()
    expect(page.get_by_text("Nothing saved yet")).to_have_count(0)
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible()
    screenshot(page, screenshots / "features.png")

    # A refresh starts a new session: the dataset, its recipe and plan come back from the store.
    page.reload()
    expect(page.get_by_text("Features the model will see")).to_be_visible()
    expect(page.get_by_text("Nothing saved yet")).to_have_count(0)
    _goto(page, "Clean")
    expect(page.get_by_text("Drop duplicate rows").first).to_be_visible()

    page.get_by_role("button", name="Close dataset").click()
    expect(page.get_by_text("Load a table on the Upload page first.")).to_be_visible()


def test_html_in_names_and_values_is_shown_as_text(page, app_url, tmp_path) -> None:
    evil = "<img src=x onerror=\"document.title='pwned'\">"
    data = tmp_path / "evil.csv"
    pd.DataFrame({evil: ["<script>document.title='pwned'</script>", "b"] * 20, "y": [0, 1] * 20}).to_csv(data, index=False)
    page.goto(app_url)
    page.locator("input[type=file]").first.set_input_files(str(data))
    expect(page.get_by_role("heading", name="evil.csv")).to_be_visible()
    _choose(page, "Look at one column", evil)
    expect(page.get_by_role("combobox", name="Look at one column")).to_have_value(evil)
    expect(page.get_by_test_id("stSidebar")).to_contain_text("evil.csv")
    assert page.locator("img[src=x]").count() == 0
    assert page.title() != "pwned"


def test_the_tab_icon_is_served_by_the_app(page, app_url) -> None:
    """The favicon is the app's own file, so a machine without internet access shows it too."""
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Upload & profile").first).to_be_visible()
    href = page.evaluate("() => document.querySelector('link[rel~=icon]').href")
    assert href.startswith(app_url), href
    resp = page.request.get(href)
    assert resp.ok and resp.headers["content-type"].startswith("image/"), (href, resp.status, resp.headers)


def test_train_and_evaluate_in_the_browser(page, app_url, screenshots, tmp_path) -> None:
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Upload & profile").first).to_be_visible()
    _choose(page, "Project", "Demo")
    _choose(page, "Dataset", "mlc_churn.csv", exact=False)
    _goto(page, "Train")
    models = page.get_by_test_id("stMultiSelect").filter(has_text="Models")
    models.locator("input").click()
    page.keyboard.type("Logistic")
    page.get_by_role("option", name="Logistic regression").click()
    page.keyboard.press("Escape")
    trials = page.get_by_label("Max trials (0 = no limit)")
    trials.fill("2")  # no Enter: inside a form it would submit
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Training finished (the trial cap was reached)")).to_be_visible(timeout=180_000)
    expect(page.get_by_text("Job 1 · mlc_churn")).to_be_visible()  # the first and only job
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    screenshot(page, screenshots / "train.png")

    page.get_by_role("link", name="See the evaluation").click()
    expect(page.get_by_role("heading", name="Evaluate", exact=True).first).to_be_visible()
    expect(page.get_by_role("tab", name="ROC")).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    screenshot(page, screenshots / "evaluate.png")

    # The version's model folder, downloaded as a zip, predicts once unzipped.
    _goto(page, "Models")
    page.get_by_role("button", name="Prepare the model for download").click()
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"^Download the model \(")).click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "mlc_churn-v1.zip"
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path)
    pipeline, info = registry.load_exported(tmp_path / "mlc_churn-v1")
    rows = pd.read_csv(SAMPLES_DIR / "mlc_churn.csv").head(20)
    assert info["name"] == "mlc_churn" and info["model_family"] == "logistic_regression"
    assert set(pipeline.predict(rows)) <= set(rows["churn"])


def test_a_running_job_is_listed_as_running_and_can_be_cancelled(page, app_url) -> None:
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Upload & profile").first).to_be_visible()
    _choose(page, "Project", "Demo")
    _choose(page, "Dataset", "mlc_churn.csv", exact=False)
    _goto(page, "Train")
    page.get_by_role("button", name="Start training").click()  # every family, a minute
    # The job list sits outside the panel that refreshes itself: it must follow the status too.
    # (Other tests may have trained on this app first: the new job is whichever the list shows.)
    jobs_box = page.get_by_role("combobox", name="Job", exact=True)
    expect(jobs_box).to_have_value(re.compile(r"^#\d+ · mlc_churn · running"), timeout=60_000)
    number = re.match(r"#(\d+)", jobs_box.input_value())[1]
    expect(page.get_by_text("Trials done")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()
    header = page.get_by_text(f"Job {number} · mlc_churn").locator("..")
    expect(header).to_contain_text("cancelled", timeout=60_000)
    expect(jobs_box).to_have_value(re.compile(rf"^#{number} · mlc_churn · cancelled"))
