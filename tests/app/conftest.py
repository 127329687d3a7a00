"""AppTest runs each page's script in-process against a fresh workspace."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.config import get_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path, monkeypatch):
    """A function returning a fresh AppTest of ``app.py`` (run once) on a fresh workspace."""
    monkeypatch.setenv("SHIPML_WORKSPACE", str(tmp_path / "workspace"))
    get_settings.cache_clear()
    # The pages cache by ids (job 1, version 1) that each fresh workspace numbers from 1 again.
    st.cache_resource.clear()
    st.cache_data.clear()

    def start(page: str | None = None, query: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        if page:
            at.switch_page(page).run()
        return at

    yield start
    get_settings.cache_clear()
