"""Clean: the cleaning recipe, step by step, with why, what it changed, and before/after."""
from __future__ import annotations

import streamlit as st

from core import datasets
from core.errors import BadInput
from core.prep import steps as S
from core.prep.recipe import preview_recipe, recipe_from_json, recipe_to_json, recipe_to_python
from pages.common import dataset_frame, engine, md, require_dataset, save_recipe, show_error


@st.cache_resource(max_entries=8, show_spinner="Applying the recipe…")
def _previews(content_hash: str, recipe_json: str, target: str | None, _frame):
    return preview_recipe(_frame, recipe_from_json(recipe_json), target=target)


def _save(dataset_id: int, old: S.Recipe, new: S.Recipe) -> None:
    save_recipe(dataset_id, old, new)
    st.rerun()


def step_list(dataset, frame, recipe: S.Recipe, target: str | None) -> None:
    if not recipe.steps:
        st.info("The recipe is empty. Add a step below, or use **Fix** on the Upload page's issues.")
        return
    try:
        previews = _previews(dataset.content_hash, recipe_to_json(recipe), target, frame)
    except BadInput as exc:
        show_error(exc)
        previews = ()
    for i, step in enumerate(recipe.steps):
        with st.container(border=True):
            head, buttons = st.columns([6, 2])
            with head:
                where = "before training (removes rows)" if step.is_row_step else "inside the model pipeline"
                st.markdown(f"**{i + 1}. {S.STEP_TITLES[step.kind]}** · runs {where}")
                st.caption(md(step.reason) if step.reason else "Added by hand.")
                details = step.model_dump(exclude={"kind", "reason"})
                st.code(", ".join(f"{k}={v!r}" for k, v in details.items()) or "(no options)", language=None)
            with buttons:
                b = st.columns(3)
                if b[0].button("", key=f"up_{i}", icon=":material/arrow_upward:", help="Move up", disabled=i == 0):
                    _save(dataset.id, recipe, recipe.moved(i, -1))
                if b[1].button("", key=f"down_{i}", icon=":material/arrow_downward:", help="Move down",
                               disabled=i == len(recipe.steps) - 1):
                    _save(dataset.id, recipe, recipe.moved(i, 1))
                if b[2].button("", key=f"remove_{i}", icon=":material/delete:", help="Remove this step"):
                    _save(dataset.id, recipe, recipe.without(i))
            if i < len(previews):
                report = previews[i].report
                m = st.columns(3)
                m[0].metric("Rows", f"{report.rows_after:,}", delta=report.rows_after - report.rows_before or None)
                m[1].metric("Cells changed", f"{report.cells_changed:,}")
                changed = [*(f"+{c}" for c in report.columns_added), *(f"−{c}" for c in report.columns_removed)]
                m[2].metric("Columns added/removed", len(changed))
                with st.expander("Before / after"):
                    left, right = st.columns(2)
                    left.caption("Before")
                    left.dataframe(previews[i].before, width="stretch")
                    right.caption("After")
                    right.dataframe(previews[i].after, width="stretch")


def add_step_form(dataset, frame, recipe: S.Recipe, target: str | None) -> None:
    columns = [str(c) for c in frame.columns]
    features = [c for c in columns if c != target]
    kind = st.selectbox("Step", list(S.STEP_TITLES), format_func=S.STEP_TITLES.get)
    with st.form("add_step", clear_on_submit=True):
        reason = st.text_input("Why (shown with the step)", max_chars=300)
        try:
            step = _step_fields(kind, columns, features, target, reason)
        except BadInput as exc:
            step = exc
        if st.form_submit_button("Add step", icon=":material/add:"):
            if isinstance(step, BadInput):
                show_error(step)
            else:
                _save(dataset.id, recipe, recipe.with_step(step))


def _step_fields(kind: str, columns, features, target, reason: str):
    """Draw the fields of one step kind and return the step they describe."""
    if kind == "drop_duplicates":
        return S.DropDuplicates(reason=reason)
    if kind == "drop_missing_target":
        if target is None:
            raise BadInput("choose a target on the Upload page first")
        return S.DropMissingTarget(target=target, reason=reason)
    if kind == "drop_columns":
        return S.DropColumns(columns=st.multiselect("Columns to drop", features), reason=reason)
    if kind == "fix_type":
        column = st.selectbox("Column", columns)
        to = st.radio("Parse as", ["number", "datetime", "boolean"], horizontal=True)
        fmt = st.text_input("Date format (optional, e.g. %d/%m/%Y)") or None
        dayfirst = st.checkbox("Day first (31/01/2024)")
        return S.FixType(column=column, to=to, date_format=fmt, dayfirst=dayfirst, reason=reason)
    if kind == "normalize_categories":
        return S.NormalizeCategories(columns=st.multiselect("Columns", columns), reason=reason)
    if kind == "impute":
        cols = st.multiselect("Columns", features)
        strategy = st.selectbox("Fill with", ["median", "mean", "most_frequent", "constant"])
        fill = st.text_input("Constant value (for 'constant')")
        indicator = st.checkbox("Add a missing-value indicator column")
        fill_value = (float(fill) if fill.replace(".", "", 1).lstrip("-").isdigit() else fill) if fill else None
        return S.Impute(columns=cols, strategy=strategy, fill_value=fill_value, add_indicator=indicator, reason=reason)
    if kind == "outliers":
        cols = st.multiselect("Numeric columns", features)
        method = st.radio("Method", ["iqr", "zscore"], horizontal=True)
        threshold = st.number_input("Threshold (IQR multiplier or z)", min_value=0.1, value=1.5 if method == "iqr" else 3.0)
        action = st.radio("Action", ["clip", "drop"], horizontal=True, help="Dropping rows happens before training only.")
        return S.Outliers(columns=cols, method=method, threshold=threshold, action=action, reason=reason)
    cols = st.multiselect("Categorical columns", features)
    share = st.slider("Minimum share to keep a category", 0.001, 0.2, 0.01, format="%.3f")
    label = st.text_input("Label for the rest", value="Other", max_chars=50)
    return S.GroupRareCategories(columns=cols, min_share=share, label=label or "Other", reason=reason)


def export_section(dataset, recipe: S.Recipe, target: str | None) -> None:
    c = st.columns(3)
    c[0].download_button("Recipe JSON", recipe_to_json(recipe), file_name="recipe.json",
                         mime="application/json", icon=":material/download:")
    c[1].download_button("Python script", recipe_to_python(recipe, target=target), file_name="recipe.py",
                         mime="text/x-python", icon=":material/code:")
    upload = c[2].file_uploader("Load a recipe JSON", type=["json"], label_visibility="collapsed")
    if upload is not None and st.session_state.get("recipe_upload") != upload.file_id:
        st.session_state["recipe_upload"] = upload.file_id
        try:
            loaded = recipe_from_json(upload.getvalue().decode("utf-8", errors="replace"))
        except BadInput as exc:
            show_error(exc)
        else:
            _save(dataset.id, recipe, loaded)


st.title("Clean")
dataset = require_dataset()
frame = dataset_frame(dataset)
prep = datasets.get_preparation(engine(), dataset.id)
st.caption(
    f"{md(dataset.name)} · target **{md(prep.target) if prep.target else 'not chosen'}** · "
    "row steps run on the training table only; column steps become part of the model, so predictions "
    "get exactly the same cleaning."
)
undo_stack = st.session_state.get("recipe_undo", {}).get(dataset.id, [])
if st.button("Undo", icon=":material/undo:", disabled=not undo_stack):
    datasets.save_preparation(engine(), dataset.id, recipe=undo_stack.pop())
    st.rerun()
step_list(dataset, frame, prep.recipe, prep.target)
st.subheader("Add a step")
add_step_form(dataset, frame, prep.recipe, prep.target)
st.subheader("Export")
export_section(dataset, prep.recipe, prep.target)
