"""Each page run by AppTest against a fresh workspace and the real store."""
from __future__ import annotations

import json

import pytest

from core import datasets
from core.config import get_settings
from core.prep.steps import DropDuplicates, Impute, Recipe
from core.store.db import make_engine


@pytest.fixture
def store(app):
    """The engine of the workspace the app under test uses (after it has started once)."""
    engine = make_engine(get_settings().db_url)
    yield engine
    engine.dispose()


def _no_exceptions(at) -> None:
    assert [e.value for e in at.exception] == []


def _current_dataset_id(at) -> int:
    return int(at.query_params["dataset"][0] if isinstance(at.query_params["dataset"], list) else at.query_params["dataset"])


def test_upload_page_opens_on_the_demo_sample(app) -> None:
    at = app()
    _no_exceptions(at)
    assert at.title[0].value == "Upload & profile"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "5,000" and metrics["Task"] == "binary"
    assert any(s.label.startswith("Target") and s.value == "churn" for s in at.selectbox)
    assert any(h.value.startswith("Detected issues") for h in at.subheader)


def test_uploading_a_file_profiles_it(app, store) -> None:
    at = app()
    at.file_uploader[0].upload("shop.csv", b"price,colour,y\n$1,Red,0\n$2,red ,1\n$3,RED,0\n$4,blue,1\n", "text/csv").run()
    _no_exceptions(at)
    assert at.header[0].value.replace("\\", "") == "shop.csv"
    dataset = datasets.get_dataset(store, _current_dataset_id(at))
    assert (dataset.name, dataset.rows, dataset.columns) == ("shop.csv", 4, 3)


def test_a_bad_file_shows_a_clear_error_and_stores_nothing(app, store) -> None:
    at = app()
    before = _current_dataset_id(at)
    at.file_uploader[0].upload("empty.csv", b"", "text/csv").run()
    assert any("empty" in e.value for e in at.error)
    assert _current_dataset_id(at) == before


def test_a_target_of_dates_says_so_and_another_can_be_chosen(app, store) -> None:
    at = app()
    rows = "".join(f"2024-01-{d:02d},{d % 3},{d % 2}\n" for d in range(1, 29))
    at.file_uploader[0].upload("days.csv", f"day,x,y\n{rows}".encode(), "text/csv").run()
    target = next(s for s in at.selectbox if s.label.startswith("Target"))
    target.set_value("day").run()
    _no_exceptions(at)
    assert any("target column 'day' holds dates; pick a column with labels or numbers" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label.startswith("Target")).set_value("y").run()  # still offered
    _no_exceptions(at)
    assert not at.error and {m.label: m.value for m in at.metric}["Task"] == "binary"


def test_fix_adds_a_step_to_the_recipe(app, store) -> None:
    at = app()
    dataset_id = _current_dataset_id(at)
    at.button(key="fix_0").click().run()
    _no_exceptions(at)
    assert len(datasets.get_preparation(store, dataset_id).recipe.steps) == 1
    assert any("In the recipe" in c.value for c in at.caption)
    at.switch_page("pages/clean.py").run()  # a change made on another page can be undone too
    next(b for b in at.button if b.label == "Undo").click().run()
    _no_exceptions(at)
    assert datasets.get_preparation(store, dataset_id).recipe.steps == ()


def test_sample_button_switches_dataset(app, store) -> None:
    at = app()
    at.button(key="sample_penguins.csv").click().run()
    _no_exceptions(at)
    dataset = datasets.get_dataset(store, _current_dataset_id(at))
    assert dataset.name == "penguins.csv"
    assert datasets.get_preparation(store, dataset.id).target == "species"


def test_clean_page_lists_steps_and_can_remove_and_undo(app, store) -> None:
    at = app()
    dataset_id = _current_dataset_id(at)
    recipe = Recipe(steps=(DropDuplicates(reason="copies"), Impute(columns=["total_day_minutes"], strategy="median")))
    datasets.save_preparation(store, dataset_id, recipe=recipe)
    at.switch_page("pages/clean.py").run()
    _no_exceptions(at)
    assert "1. Drop duplicate rows" in at.markdown[0].value or any("Drop duplicate rows" in m.value for m in at.markdown)
    assert any(m.label == "Rows" for m in at.metric)
    at.button(key="remove_0").click().run()
    assert datasets.get_preparation(store, dataset_id).recipe.steps == recipe.steps[1:]
    undo = next(b for b in at.button if b.label == "Undo")
    undo.click().run()
    assert datasets.get_preparation(store, dataset_id).recipe == recipe


def test_clean_page_adds_a_step_from_the_form(app, store) -> None:
    at = app()
    dataset_id = _current_dataset_id(at)
    at.switch_page("pages/clean.py").run()
    step_box = next(s for s in at.selectbox if s.label == "Step")
    step_box.select("drop_duplicates").run()
    next(b for b in at.button if b.label == "Add step").click().run()
    _no_exceptions(at)
    assert [s.kind for s in datasets.get_preparation(store, dataset_id).recipe.steps] == ["drop_duplicates"]


def test_features_page_shows_the_transformed_sample_and_saves_the_plan(app, store) -> None:
    at = app()
    dataset_id = _current_dataset_id(at)
    at.switch_page("pages/features.py").run()
    _no_exceptions(at)
    features = next(m for m in at.metric if m.label == "Features the model will see")
    assert int(features.value) > 19  # one-hot encoding widens the 19 source columns
    next(b for b in at.button if b.label == "Save feature plan").click().run()
    _no_exceptions(at)
    plan = datasets.get_preparation(store, dataset_id).plan
    assert plan is not None and "churn" not in plan.include and "state" in plan.include


def test_features_page_offers_to_convert_dates_stored_as_text(app, store) -> None:
    at = app()
    at.button(key="sample_chicago.csv").click().run()
    at.switch_page("pages/features.py").run()
    _no_exceptions(at)
    assert any("'date' holds dates stored as text" in m.value for m in at.markdown)
    assert any("of the values in 'date' are dates" in c.value for c in at.caption)  # what was found, in words
    before = int(next(m for m in at.metric if m.label == "Features the model will see").value)
    next(b for b in at.button if b.label.startswith("Convert it")).click().run()
    _no_exceptions(at)
    (step,) = datasets.get_preparation(store, _current_dataset_id(at)).recipe.steps
    assert (step.kind, step.column, step.to) == ("fix_type", "date", "datetime")
    assert not any("stored as text" in m.value for m in at.markdown)
    # The date is no longer left out: its year, month and weekday are features now.
    assert int(next(m for m in at.metric if m.label == "Features the model will see").value) == before + 3


def test_pages_without_a_dataset_point_to_upload(app) -> None:
    from pages.common import WorkflowState

    at = app()
    # AppTest (streamlit 1.67) reruns only the page script after the first run, so the sidebar's
    # "Close dataset" button is exercised by the browser test; here the state is set directly.
    at.session_state["workflow"] = WorkflowState(project="Demo", dataset_id=None)
    for page in ("pages/clean.py", "pages/features.py"):
        at.switch_page(page).run()
        _no_exceptions(at)
        assert any("Upload" in i.value for i in at.info)


def test_features_page_previews_importance_and_selects_automatically(app, store) -> None:
    at = app()
    dataset_id = _current_dataset_id(at)
    at.switch_page("pages/features.py").run()
    next(b for b in at.button if b.label == "Preview importance").click().run(timeout=120)
    _no_exceptions(at)
    assert any(c.value.startswith("A fast model's ROC AUC, held out over") for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["xaxis"]["title"]["text"] == "drop in held-out ROC AUC when the column is shuffled"
    next(b for b in at.button if b.label == "Automatic selection").click().run()
    _no_exceptions(at)
    assert datasets.get_preparation(store, dataset_id).plan is not None
    # The charges are the minutes times a rate: near-duplicates, and the page names what it left out.
    assert any(c.value.startswith("Automatic selection excluded: ") and "charge" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Automatic selection").click().run()  # again: nothing left to drop
    _no_exceptions(at)
    assert any(c.value.startswith("Automatic selection found no near-constant") for c in at.caption)


@pytest.fixture
def csv_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving one CSV file."""
    import functools
    import http.server
    import threading

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "fetched.csv").write_text("a,b,y\n1,x,0\n2,y,1\n3,x,0\n4,y,1\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetching_a_url_loads_the_table(app, store, csv_server) -> None:
    at = app()
    next(t for t in at.text_input if t.label.startswith("URL")).set_value(f"{csv_server}/fetched.csv")
    next(b for b in at.button if b.label == "Fetch").click().run()
    _no_exceptions(at)
    dataset = datasets.get_dataset(store, _current_dataset_id(at))
    assert (dataset.name, dataset.rows, dataset.format) == ("fetched.csv", 4, "csv")


def test_a_sql_query_loads_the_table_and_a_bad_url_says_why(app, store, tmp_path) -> None:
    import sqlalchemy as sa

    db = tmp_path / "shop.db"
    source = sa.create_engine(f"sqlite:///{db}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (amount REAL, region TEXT, late INTEGER)")
        conn.exec_driver_sql("INSERT INTO orders VALUES (10.5, 'north', 0), (3.0, 'south', 1), (7.25, 'north', 1)")
    source.dispose()
    at = app()
    before = _current_dataset_id(at)
    next(t for t in at.text_input if t.label == "SQLAlchemy URL").set_value("postgresql+psycopg://nobody:pw@127.0.0.1:1/db")
    next(t for t in at.text_area if t.label == "SELECT query").set_value("SELECT * FROM orders")
    next(b for b in at.button if b.label == "Run query").click().run()
    assert any("could not connect" in e.value.lower() for e in at.error)
    assert _current_dataset_id(at) == before
    next(t for t in at.text_input if t.label == "SQLAlchemy URL").set_value(f"sqlite:///{db}")
    next(t for t in at.text_area if t.label == "SELECT query").set_value("SELECT * FROM orders")
    next(b for b in at.button if b.label == "Run query").click().run()
    _no_exceptions(at)
    dataset = datasets.get_dataset(store, _current_dataset_id(at))
    assert (dataset.rows, dataset.columns, dataset.format) == (3, 3, "sql")


def test_the_profile_is_computed_once_per_dataset(app, monkeypatch) -> None:
    import pages.common as common

    calls = []
    original = common.profile_table

    def counting(frame, **kwargs):
        calls.append(kwargs.get("target"))
        return original(frame, **kwargs)

    monkeypatch.setattr(common, "profile_table", counting)
    common._profile.clear()
    at = app()
    at.run()
    at.run()
    _no_exceptions(at)
    assert calls == ["churn"]  # three runs, one profile
    assert at.metric[0].value == "5,000"
