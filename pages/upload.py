"""Upload & profile: bring a table in, see what it holds, pick the target, fix what is wrong."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import datasets
from core.data.charts import column_chart, correlation_chart, target_chart
from core.data.ingest import read_bytes, read_http, read_sql
from core.data.issues import Severity
from core.data.profile import infer_task
from core.errors import BadInput
from core.samples import SAMPLES, import_sample
from core.store import crud
from core.store.db import session_scope
from pages.common import (
    COUNT,
    UPLOAD_TYPES,
    current_dataset,
    dataset_frame,
    dataset_profile,
    engine,
    md,
    save_recipe,
    select_dataset,
    settings,
    show_error,
    workflow,
)

SEVERITY_ICON = {Severity.HIGH: ":material/error:", Severity.MEDIUM: ":material/warning:", Severity.LOW: ":material/info:"}


def _imported(loaded, name: str) -> None:
    state = workflow()
    dataset, created = datasets.import_table(engine(), loaded, project=state.project, name=name, settings=settings())
    select_dataset(dataset.id)
    note = "" if created else " (the same data was already in this project, so it was not stored twice)"
    st.session_state["flash"] = f"Loaded {dataset.name}: {dataset.rows:,} rows × {dataset.columns} columns{note}."


def load_section() -> None:
    state = workflow()
    with session_scope(engine()) as session:
        projects = [p.name for p in crud.list_projects(session)]
    left, right = st.columns([3, 2])
    with right:
        choice = st.selectbox("Project", [*projects, "+ New project"] if projects else ["+ New project"],
                              index=projects.index(state.project) if state.project in projects else None,
                              placeholder="Choose a project", key=f"project_{state.project}")
        # Keys name the current choice, so a change made elsewhere (a sample, closing the
        # dataset) gives a fresh widget showing it instead of the widget's stale value.
        if choice == "+ New project":
            with st.form("new_project", clear_on_submit=True):
                name = st.text_input("New project name", max_chars=200)
                if st.form_submit_button("Create") and name.strip():
                    with session_scope(engine()) as session:
                        crud.get_or_create_project(session, name=name)
                    state.project = name.strip()
                    select_dataset(None)
                    st.rerun()
        elif choice and choice != state.project:
            state.project = choice
            select_dataset(None)
            st.rerun()
        with session_scope(engine()) as session:
            project = crud.get_or_create_project(session, name=state.project)
            project_datasets = crud.list_datasets(session, project_id=project.id)
        if project_datasets:
            ids = [d.id for d in project_datasets]
            picked = st.selectbox(
                "Dataset", ids,
                index=ids.index(state.dataset_id) if state.dataset_id in ids else None,
                format_func=lambda i: next(f"{d.name} · {d.rows:,} rows · {d.created_at:%Y-%m-%d %H:%M}" for d in project_datasets if d.id == i),
                placeholder="Choose a dataset of this project", key=f"dataset_{state.dataset_id}",
            )
            if picked is not None and picked != state.dataset_id:
                select_dataset(picked)
                st.rerun()
    with left:
        tab_file, tab_sample, tab_db, tab_url = st.tabs(["File", "Sample data", "Database", "URL"])
        with tab_file:
            upload = st.file_uploader(
                "CSV, TSV, Excel, Parquet or JSON lines",
                type=UPLOAD_TYPES,
                help=f"Up to {settings().max_upload_mb} MB. The file is stored once and never changed.",
            )
            if upload is not None and st.session_state.get("uploaded_id") != upload.file_id:
                st.session_state["uploaded_id"] = upload.file_id
                try:
                    with st.spinner("Reading the file…"):
                        _imported(read_bytes(upload.name, upload.getvalue(), settings=settings()), upload.name)
                    st.rerun()
                except BadInput as exc:
                    show_error(exc)
        with tab_sample:
            cols = st.columns(2)
            for i, sample in enumerate(SAMPLES):
                with cols[i % 2]:
                    if st.button(f"{sample.title}", key=f"sample_{sample.file}", help=sample.description,
                                 icon=":material/dataset:", width="stretch"):
                        dataset_id = import_sample(engine(), sample, project=state.project, settings=settings())
                        select_dataset(dataset_id)
                        st.rerun()
                    st.caption(f"{sample.description} · target `{sample.target}` ({sample.task})")
        with tab_db:
            with st.form("sql"):
                url = st.text_input("SQLAlchemy URL", placeholder="postgresql+psycopg://user:password@host/db")
                query = st.text_area("SELECT query", placeholder="SELECT * FROM customers")
                if st.form_submit_button("Run query", icon=":material/database:"):
                    try:
                        with st.spinner("Running the query…"):
                            _imported(read_sql(url, query, settings=settings()), "query")
                        st.rerun()
                    except BadInput as exc:
                        show_error(exc)
        with tab_url:
            with st.form("http"):
                url = st.text_input("URL of a CSV, JSON or Parquet file", placeholder="https://example.org/data.csv")
                if st.form_submit_button("Fetch", icon=":material/download:"):
                    try:
                        with st.spinner("Downloading…"):
                            _imported(read_http(url, settings=settings()), url.rsplit("/", 1)[-1] or "download")
                        st.rerun()
                    except BadInput as exc:
                        show_error(exc)


def profile_section(dataset) -> None:
    frame = dataset_frame(dataset)
    prep = datasets.get_preparation(engine(), dataset.id)
    columns = [str(c) for c in frame.columns]
    target = st.selectbox(
        "Target: the column to predict", columns,
        index=columns.index(prep.target) if prep.target in columns else None,
        placeholder="Choose the target column", key=f"target_{dataset.id}_{prep.target}",
    )
    if target != prep.target and target is not None:
        datasets.save_preparation(engine(), dataset.id, target=target)
        st.rerun()
    profile, issues = dataset_profile(dataset, target)

    m = st.columns(5)
    m[0].metric("Rows", f"{profile.rows:,}")
    m[1].metric("Columns", profile.columns)
    m[2].metric("Memory", f"{profile.memory_bytes / 2**20:,.1f} MB")
    m[3].metric("Duplicate rows", f"{profile.duplicate_rows:,}")
    m[4].metric("Task", profile.task.value if profile.task else "—")

    if target is not None:
        with st.expander(f"Target distribution · {infer_task(frame[target]).value}", expanded=False):
            st.plotly_chart(target_chart(frame, target, infer_task(frame[target])), width="stretch")

    issues_section(dataset, issues, prep.recipe)

    st.subheader("Columns")
    overview = pd.DataFrame(
        {
            "column": [c.name for c in profile.column_profiles],
            "kind": [c.kind.value for c in profile.column_profiles],
            "dtype": [c.dtype for c in profile.column_profiles],
            "missing": [c.missing_share for c in profile.column_profiles],
            "unique": [c.unique for c in profile.column_profiles],
        }
    )
    st.dataframe(
        overview, hide_index=True, width="stretch",
        column_config={"missing": st.column_config.ProgressColumn("missing", format="percent", min_value=0, max_value=1),
                       "unique": COUNT},
    )
    name = st.selectbox("Look at one column", columns, index=0)
    col = profile.column(name)
    left, right = st.columns([1, 2])
    with left:
        stats = {"kind": col.kind.value, "missing": f"{col.missing_share:.1%}", "unique": f"{col.unique:,}"}
        stats.update({k: f"{v:,.4g}" for k, v in col.stats.items()})
        st.dataframe(pd.Series(stats, name="value").astype(str), width="stretch")
        if col.top_values:
            st.dataframe(pd.DataFrame(col.top_values, columns=["value", "count"]), hide_index=True, width="stretch",
                         column_config={"count": COUNT})
    with right:
        st.plotly_chart(column_chart(frame, col), width="stretch")
    with st.expander("Correlations between numeric columns"):
        st.plotly_chart(correlation_chart(frame, profile), width="stretch")
    with st.expander("First rows"):
        st.dataframe(frame.head(50), width="stretch")


def issues_section(dataset, issues, recipe) -> None:
    st.subheader(f"Detected issues ({len(issues)})")
    if not issues:
        st.success("No issues found.", icon=":material/check_circle:")
        return
    in_recipe = recipe.steps
    for i, issue in enumerate(issues):
        with st.container(border=True):
            text, action = st.columns([5, 1])
            with text:
                st.markdown(f"{SEVERITY_ICON[issue.severity]} **{md(issue.title)}** · {issue.severity.value}")
                st.caption(md(issue.explanation))
            with action:
                if issue.fix is None:
                    st.caption("No automatic fix")
                elif issue.fix in in_recipe:
                    st.caption(":material/check: In the recipe")
                elif st.button("Fix", key=f"fix_{i}", icon=":material/build:", help=f"Add a '{issue.fix.kind}' step to the cleaning recipe"):
                    save_recipe(dataset.id, recipe, recipe.with_step(issue.fix))
                    st.toast("Added to the cleaning recipe")
                    st.rerun()


st.title("Upload & profile")
if flash := st.session_state.pop("flash", None):
    st.success(flash, icon=":material/check_circle:")
load_section()
dataset = current_dataset()
if dataset is None:
    st.info("Load a file, a sample, a query result or a URL to start.")
else:
    st.divider()
    st.header(md(dataset.name), anchor=False)
    st.caption(f"Source: {md(dataset.source)} · stored as {dataset.content_hash[:12]}")
    try:
        profile_section(dataset)
    except BadInput as exc:
        show_error(exc)
