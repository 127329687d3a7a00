"""The real app in a real browser: `streamlit run app.py` on a free port, driven by Chromium."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import free_port, missing

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@contextlib.contextmanager
def running_app(workspace: Path) -> Iterator[str]:
    """``streamlit run app.py`` on a free port over ``workspace``; yields its URL once healthy."""
    port = free_port()
    env = {**os.environ, "SHIPML_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1"}
    env.pop("SHIPML_SERVE_TOKEN", None)  # deployments started from the page carry no token by default
    log = open(workspace / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("the app did not start:\n" + (workspace / "streamlit.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> Iterator[str]:
    """URL of the app running on a fresh workspace."""
    with running_app(tmp_path_factory.mktemp("e2e-workspace")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        missing("Chromium (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a cold app on a busy 2-core machine takes a while

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    item.rep = outcome.get_result()  # lets the page fixture see whether the test failed


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(60_000)  # generous: CI runs the suite on two busy cores
    yield page
    if getattr(request.node, "rep", None) is not None and request.node.rep.failed:
        out = ROOT / "test-results" / "failures"
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def screenshots() -> Path:
    """Where end-to-end tests leave their screenshots (also used in the README)."""
    out = ROOT / "test-results" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def settle(page) -> None:
    """Wait until the app is not running a script (a rerun leaves stale copies of elements).

    The app root's ``data-test-script-state`` changes as soon as a rerun is requested or starts
    (Streamlit's own end-to-end tests wait on it); the status widget appears only after a delay.
    """
    from playwright.sync_api import expect

    page.wait_for_timeout(200)
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=60_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)


def screenshot(page, path: Path) -> None:
    """A full-page screenshot of the settled page (the README's come from these): taken during a
    rerun, it can show a widget twice, its stale copy next to the new one."""
    settle(page)
    page.screenshot(path=str(path), full_page=True)


def click_until(page, button, outcome, *, tries: int = 3) -> None:
    """Click ``button`` until ``outcome`` shows, at most ``tries`` times.

    Streamlit drops a click that lands while a rerun replaces the page's elements; a rerun that
    starts just after ``settle`` returns (a fragment's timer, a late message) cannot be ruled out.
    Only use this for a click whose repetition is harmless.
    """
    from playwright.sync_api import expect

    for attempt in range(tries):
        settle(page)
        button.click()
        settle(page)
        try:
            expect(outcome).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise
