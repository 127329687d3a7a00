"""What every page shares: settings, the store, the typed workflow state and cached loads.

Only rendering helpers live here; all computing is in ``core``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from core import datasets
from core.config import Settings, get_settings
from core.data.issues import Issue, detect_issues, unfixed_type_issues
from core.data.profile import TableProfile, profile_table
from core.errors import BadInput
from core.modeling.metrics import METRICS, format_score, score_decimals
from core.modeling.specs import family_title
from core.prep.steps import Recipe
from core.store import crud
from core.store.db import make_engine, session_scope
from core.store.models import Dataset
from core.wording import trial_state

DEFAULT_PROJECT = "My project"
_STATE_KEY = "workflow"

# The file types the uploaders accept; the content decides the format (core.data.ingest).
UPLOAD_TYPES = ["csv", "tsv", "txt", "xlsx", "parquet", "jsonl", "json"]
# Counts in a table with thousands separators, as the app writes them in text and charts
# (Streamlit's default number format has none).
COUNT = st.column_config.NumberColumn(format="localized")


@dataclass
class WorkflowState:
    """Where the analyst is. Everything else (recipes, plans) lives in the store."""

    project: str = DEFAULT_PROJECT
    dataset_id: int | None = None


@st.cache_resource
def _engine(url: str) -> Engine:
    return make_engine(url)


def settings() -> Settings:
    return get_settings()


def engine() -> Engine:
    """The store's engine, created once per process."""
    return _engine(settings().db_url)


def workflow() -> WorkflowState:
    """The one accessor for the workflow state.

    The dataset id is mirrored into the URL (``?dataset=N``), so a browser refresh, which
    starts a new session, comes back to the same dataset.
    """
    state = st.session_state.get(_STATE_KEY)
    if state is None:
        state = _restored_state(st.query_params.get("dataset"))
        st.session_state[_STATE_KEY] = state
    if state.dataset_id is not None:
        st.query_params["dataset"] = str(state.dataset_id)
    return state


def _restored_state(wanted: str | None) -> WorkflowState:
    """The dataset named in the URL, else the newest dataset of the newest project."""
    with session_scope(engine()) as session:
        dataset = crud.get_dataset(session, dataset_id=int(wanted)) if wanted and wanted.isdigit() else None
        if dataset is None:
            projects = crud.list_projects(session)
            for project in reversed(projects):
                newest = crud.list_datasets(session, project_id=project.id)
                if newest:
                    dataset = newest[0]
                    break
            else:
                return WorkflowState(project=projects[-1].name if projects else DEFAULT_PROJECT)
        project = crud.get_project(session, project_id=dataset.project_id)
        return WorkflowState(project=project.name, dataset_id=dataset.id)


def select_dataset(dataset_id: int | None, project: str | None = None) -> None:
    state = workflow()
    state.dataset_id = dataset_id
    if project is not None:
        state.project = project
    if dataset_id is None:
        st.query_params.pop("dataset", None)


def current_dataset() -> Dataset | None:
    state = workflow()
    if state.dataset_id is None:
        return None
    try:
        return datasets.get_dataset(engine(), state.dataset_id)
    except BadInput:
        select_dataset(None)
        return None


@st.cache_resource(max_entries=8, show_spinner="Loading the table…")
def _frame(content_hash: str, _dataset: Dataset) -> pd.DataFrame:
    # cache_resource, not cache_data: frames are shared read-only instead of copied per rerun;
    # core functions never mutate their inputs.
    return datasets.load_dataset_frame(_dataset, settings=settings())


def dataset_frame(dataset: Dataset) -> pd.DataFrame:
    """The dataset's table, loaded once per process."""
    return _frame(dataset.content_hash, dataset)


@st.cache_resource(max_entries=16, show_spinner="Profiling…")
def _profile(content_hash: str, target: str | None, _frame: pd.DataFrame) -> tuple[TableProfile, tuple[Issue, ...]]:
    profile = profile_table(_frame, target=target)
    return profile, detect_issues(_frame, profile, target=target, seed=settings().random_seed)


def dataset_profile(dataset: Dataset, target: str | None) -> tuple[TableProfile, tuple[Issue, ...]]:
    """Profile and issues of a dataset, computed once per dataset and target."""
    return _profile(dataset.content_hash, target, dataset_frame(dataset))


def require_dataset() -> Dataset:
    """The current dataset, or a pointer to the Upload page and a stop."""
    dataset = current_dataset()
    if dataset is None:
        st.info("Load a table on the **Upload** page first.")
        st.page_link("pages/upload.py", label="Go to Upload", icon=":material/upload:")
        st.stop()
    return dataset


def md(text: object) -> str:
    """User text made safe to embed in Markdown: no markup, links or HTML from data."""
    out = str(text)
    for ch in "\\`*_{}[]()<>#+-.!|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def show_error(exc: BadInput) -> None:
    """An error for the user, escaped: core messages quote column, model and file names. It
    starts with a capital letter: some core messages are written to follow "error: " in the CLI."""
    text = str(exc)
    st.error(md(text[:1].upper() + text[1:]), icon=":material/error:")


def save_recipe(dataset_id: int, old: Recipe, new: Recipe) -> None:
    """Save a dataset's new cleaning recipe, keeping the old one for the Clean page's Undo
    (whichever page made the change: a Fix on Upload, a dropped leakage suspect on Train)."""
    st.session_state.setdefault("recipe_undo", {}).setdefault(dataset_id, []).append(old)
    datasets.save_preparation(engine(), dataset_id, recipe=new)


def type_fix_prompt(dataset, issues, recipe) -> None:
    """Dates and numbers stored as text that the recipe leaves as text, with one button that
    converts them all (Features and Train pages): an analyst who skipped the Upload page's
    issues should not lose these columns unawares."""
    pending = unfixed_type_issues(issues, recipe)
    if not pending:
        return
    with st.container(border=True):
        columns = "1 column holds" if len(pending) == 1 else f"{len(pending)} columns hold"
        st.markdown(f":material/lightbulb: **{columns} dates or numbers stored as text.** "
                    "As text, a model leaves out a date that differs in every row (or splits it into unrelated "
                    "categories) and reads numbers as categories. Converted, it can use a date's year, month "
                    "and weekday, and the size of a number.")
        st.markdown("\n".join(f"- {md(issue.title)}" for issue in pending))
        with st.expander("What was found, and how each would be read"):  # e.g. which way round a date is read
            for issue in pending:
                st.caption(md(issue.explanation))
        steps = "1 step" if len(pending) == 1 else f"{len(pending)} steps"
        if st.button(f"Convert {'it' if len(pending) == 1 else 'them'} (add {steps} to the cleaning recipe)",
                     icon=":material/build:", key="type_fixes"):
            fixed = recipe
            for issue in pending:
                fixed = fixed.with_step(issue.fix)
            save_recipe(dataset.id, recipe, fixed)
            st.rerun()


def readable_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """A trials table for people: families by their titles, a pruned trial as stopped early with
    why and after how many folds, and each trial's parameters as ``name=value`` pairs, not JSON,
    in the last column."""

    def pairs(text: str) -> str:
        params = json.loads(text or "{}")
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())

    # Last: a long parameter list placed earlier pushes the scores off the right edge.
    states = [trial_state(state, stop if isinstance(stop, str) else None, None if pd.isna(folds) else int(folds))
              for state, stop, folds in zip(trials["state"], trials["stop"], trials["folds"], strict=True)]
    return trials.drop(columns=["params_json", "stop", "folds"]).assign(
        model=trials["model"].map(family_title), state=states, params=trials["params_json"].map(pairs))


def trial_columns(metric: str, scores: pd.Series) -> dict[str, object]:
    """Headers for :func:`readable_trials`' table, its score named by the metric the search ranked
    by and written with the decimals a score the size of ``scores``' median needs."""
    number = st.column_config.NumberColumn
    typical = scores.abs().median() if scores.notna().any() else 0.0
    form = f"%.{score_decimals(typical)}f"
    return {"number": number("trial"), "model": st.column_config.TextColumn(width="medium"),  # whole while it runs
            "score": number(f"{METRICS[metric].label} (CV mean)", format=form),
            "score_std": number("± std over folds", format=form), "duration_s": number("seconds", format="%.1f"),
            "params": "parameters"}


def scores_as_text(table: pd.DataFrame, *, like: str) -> pd.DataFrame:
    """A table of several metrics, one a row, its numbers written as the model card writes them,
    each row with the decimals of its ``like`` column: an RMSE in thousands and an R² below 1
    cannot share one column format. A missing score is a dash."""
    def written(values: pd.Series) -> list[str]:
        return [format_score(v, like=ref) if pd.notna(v) else "–" for v, ref in zip(values, table[like], strict=True)]

    return table.assign(**{c: written(table[c]) for c in table.select_dtypes("number").columns})
