"""Features: choose the columns the model sees and how each becomes features."""
from __future__ import annotations

from typing import get_args

import pandas as pd
import streamlit as st

from core import datasets
from core.data.profile import infer_task
from core.errors import BadInput
from core.modeling import plots
from core.prep.plan import ColumnTransform, Encoding, FeaturePlan, Interaction
from core.data.kinds import infer_kind
from core.prep.recipe import build_cleaning_pipeline, prepare_training_table, recipe_to_json
from core.prep.selection import auto_plan, importance_preview
from core.prep.pipeline import transformed_sample
from core.wording import decimal
from pages.common import (dataset_frame, dataset_profile, engine, md, require_dataset, settings, show_error,
                          type_fix_prompt)


@st.cache_resource(max_entries=8, show_spinner="Cleaning the table…")
def _cleaned_kinds(content_hash: str, recipe_json: str, target: str, _frame, _recipe) -> dict[str, str]:
    """Kind of each column the model can use: those left after the recipe, without the target."""
    x, _ = prepare_training_table(_frame.head(5_000), _recipe, target=target)
    cleaned = build_cleaning_pipeline(_recipe, target=target).fit_transform(x)
    return {str(c): infer_kind(cleaned[c]).value for c in cleaned.columns}


@st.cache_resource(max_entries=8, show_spinner="Building the transformed sample…")
def _sample(content_hash: str, recipe_json: str, plan_json: str, target: str, _frame, _recipe, _plan):
    return transformed_sample(_frame, _recipe, _plan, target=target, seed=settings().random_seed)


def _save_plan(dataset_id: int, plan: FeaturePlan) -> None:
    datasets.save_preparation(engine(), dataset_id, plan=plan)
    st.rerun()


def selection_section(dataset, frame, recipe, plan: FeaturePlan, target: str, kinds: dict[str, str]) -> FeaturePlan:
    st.subheader("Columns")
    available = list(kinds)
    # Identifier-like columns (keys, row numbers) stay out unless the analyst adds them.
    fallback = [c for c in available if kinds[c] != "identifier"]
    default = [c for c in (plan.include or fallback) if c in available and c not in plan.exclude]
    chosen = st.multiselect("Columns the model may use", available, default=default,
                            format_func=lambda c: f"{c} ({kinds[c]})" if kinds[c] == "identifier" else c)
    left, right = st.columns(2)
    if left.button("Automatic selection", icon=":material/auto_fix_high:",
                   help="Drops near-constant columns and near-duplicates (highly correlated pairs)."):
        with st.spinner("Looking for near-constant and duplicated columns…"):
            new_plan, reasons = auto_plan(frame, recipe, plan.model_copy(update={"include": tuple(chosen)}), target=target)
        st.session_state.setdefault("auto_reasons", {})[dataset.id] = reasons
        _save_plan(dataset.id, new_plan)
    reasons = st.session_state.get("auto_reasons", {}).get(dataset.id)
    if reasons:
        st.caption("Automatic selection excluded: " + "; ".join(md(r) for r in reasons))
    elif reasons is not None:  # it ran and found nothing: say so, or the click seems to do nothing
        st.caption("Automatic selection found no near-constant or near-duplicate column: every chosen column stays.")
    if right.button("Preview importance", icon=":material/insights:",
                    help="Mutual information and a fast model's held-out permutation importance, both computed inside cross-validation folds."):
        task = infer_task(frame[target]).value
        with st.spinner("Scoring features inside cross-validation folds…"):
            try:
                st.session_state["importance"] = (dataset.id, importance_preview(
                    frame, recipe, plan.model_copy(update={"include": tuple(chosen)}), target=target,
                    task=task, seed=settings().random_seed))
            except BadInput as exc:
                show_error(exc)
    preview = st.session_state.get("importance")
    if preview and preview[0] == dataset.id:
        importance_chart(preview[1])
    return plan.model_copy(update={"include": tuple(chosen), "exclude": ()})


def importance_chart(preview) -> None:
    verdict = "finds signal" if preview.has_signal else "finds no signal beyond chance"
    st.caption(
        f"A fast model's {preview.metric}, held out over {preview.folds} folds: {decimal(preview.score)}, against "
        f"{decimal(preview.baseline_score)} for the baseline. It {verdict}."
    )
    st.plotly_chart(plots.importance_preview_chart(preview), width="stretch")
    st.dataframe(pd.DataFrame([r.__dict__ for r in preview.rows]), hide_index=True, width="stretch")


def transforms_section(plan: FeaturePlan, chosen: list[str], numeric: list[str], kinds: dict[str, str]) -> FeaturePlan:
    st.subheader("Transformations")
    if not chosen:
        return plan
    column = st.selectbox("Column", chosen, format_func=lambda c: f"{c} ({kinds.get(c, 'unknown')})")
    kind = kinds.get(column, "numeric")
    current = plan.transform_for(column)
    fields = current.model_dump()
    c = st.columns(4)
    if kind == "numeric":
        fields["power"] = c[0].selectbox("Power", ["none", "log", "yeo_johnson"], index=["none", "log", "yeo_johnson"].index(current.power))
        fields["bins"] = c[1].number_input("Bins (0 = off)", min_value=0, max_value=100, value=current.bins or 0) or None
        fields["scaling"] = c[2].selectbox("Scaling", ["standard", "minmax", "robust", "none"],
                                           index=["standard", "minmax", "robust", "none"].index(current.scaling),
                                           disabled=fields["bins"] is not None)
    elif kind in ("categorical", "identifier", "boolean"):
        fields["encoding"] = c[0].selectbox("Encoding", list(get_args(Encoding)),
                                            index=list(get_args(Encoding)).index(current.encoding),
                                            help="auto: one-hot, but ordinal codes in tree models (forests, "
                                                 "boosting) for a column of more than 10 levels. Target encoding is "
                                                 "fit inside folds, so it never sees the row it encodes.")
    elif kind == "datetime":
        fields["date_parts"] = tuple(st.multiselect("Date parts", ["year", "month", "day", "dayofweek", "hour", "weekend"],
                                                    default=list(current.date_parts)))
    elif kind == "text":
        fields["tfidf_max_features"] = c[0].number_input("TF-IDF terms", min_value=1, max_value=20000, value=current.tfidf_max_features)
    else:
        st.caption("This column is not used (see the summary below).")
    transform = ColumnTransform(**fields)
    if transform != current:
        plan = plan.model_copy(update={"transforms": {**plan.transforms, column: transform}})

    st.markdown("**New feature from two numeric columns**")
    i = st.columns([2, 1, 2, 1])
    left = i[0].selectbox("Left", numeric, index=None, key="inter_left")
    op = i[1].selectbox("Op", ["ratio", "product"], key="inter_op")
    right = i[2].selectbox("Right", numeric, index=None, key="inter_right")
    interactions = list(plan.interactions)
    if i[3].button("Add", icon=":material/add:", disabled=not (left and right and left != right)):
        interactions.append(Interaction(left=left, right=right, op=op))
    for k, inter in enumerate(plan.interactions):
        if st.button(f"Remove {inter.name}", key=f"rm_inter_{k}", icon=":material/delete:"):
            interactions.remove(inter)
    return plan.model_copy(update={"interactions": tuple(interactions)})


st.title("Features")
dataset = require_dataset()
frame = dataset_frame(dataset)
prep = datasets.get_preparation(engine(), dataset.id)
if prep.target is None:
    st.info("Choose the target column on the **Upload** page first.")
    st.page_link("pages/upload.py", label="Go to Upload", icon=":material/upload:")
    st.stop()
type_fix_prompt(dataset, dataset_profile(dataset, prep.target)[1], prep.recipe)
plan = prep.plan or FeaturePlan()
recipe_json = recipe_to_json(prep.recipe)
try:
    kinds = _cleaned_kinds(dataset.content_hash, recipe_json, prep.target, frame, prep.recipe)
except BadInput as exc:
    show_error(exc)
    st.stop()
numeric = [c for c, kind in kinds.items() if kind == "numeric"]
plan = selection_section(dataset, frame, prep.recipe, plan, prep.target, kinds)
plan = transforms_section(plan, list(plan.include), numeric, kinds)
if plan != prep.plan and st.button("Save feature plan", type="primary", icon=":material/save:"):
    _save_plan(dataset.id, plan)
if prep.plan is None:
    st.caption("Nothing saved yet: save the plan to use it for training.")

st.subheader("Result")
try:
    sample = _sample(dataset.content_hash, recipe_json, plan.model_dump_json(), prep.target, frame, prep.recipe, plan)
except BadInput as exc:
    show_error(exc)
else:
    st.metric("Features the model will see", sample.n_features)
    st.dataframe(pd.DataFrame([f.__dict__ for f in sample.summary]), hide_index=True, width="stretch",
                 column_config={"n_features": st.column_config.NumberColumn("features")})
    st.caption(f"First {len(sample.frame)} rows of the transformed table (fit on {sample.n_rows_used:,} rows).")
    st.dataframe(sample.frame, width="stretch")
