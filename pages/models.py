"""Models: every registered version, its card, and the aliases that point at it."""
from __future__ import annotations

import json
import math

import pandas as pd
import streamlit as st

from core import registry
from core.data.ingest import read_bytes
from core.data.profile import Task
from core.errors import BadInput
from core.modeling import plots
from core.modeling.metrics import METRICS, format_score, in_display_order, same_positive, task_label, tuned_metric
from core.modeling.specs import family_title
from core.modeling.splits import CVScheme
from core.monitoring.export import to_safe_csv
from core.scoring import ScoredFile, TargetScores, score_table
from core.training import class_weighted, learnt_log_target, tuning_rows
from core.wording import plural
from pages.common import UPLOAD_TYPES, current_dataset, engine, md, scores_as_text, settings, show_error

st.title("Models")
names = registry.list_model_names(engine())
if not names:
    st.info("No model is registered yet: train one on the **Train** page.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
# Open on a model trained on the dataset in use, when there is one.
dataset = current_dataset()
trained_here = {v.model_name for v in registry.list_versions(engine()) if dataset and v.dataset_hash == dataset.content_hash}
name = st.selectbox("Model", names, index=next((i for i, n in enumerate(names) if n in trained_here), 0))
versions = registry.list_versions(engine(), name=name)
alias_map = registry.aliases(engine(), name=name)
by_version = {}
for alias, number in alias_map.items():
    by_version.setdefault(number, []).append(alias)


def _headline(version) -> str:
    """The metric the version was tuned for, then the task's next two, as cross-validated means."""
    metrics = json.loads(version.metrics_json or "{}")
    task = Task(version.task)
    tuned = tuned_metric(json.loads(version.cv_json or "{}"), task)
    names = in_display_order([n for n, v in metrics.items() if n in METRICS and isinstance(v, dict)], first=tuned)
    return ", ".join(f"{METRICS[n].label} {format_score(metrics[n]['mean'])}" for n in names[:3])


def _facts(version) -> dict[str, str]:
    """What a version is, beyond its scores: for the comparison's first table."""
    cv = json.loads(version.cv_json or "{}")
    params = json.loads(version.params_json or "{}")
    threshold = registry.decision_threshold(version)
    scheme = CVScheme.from_dict(cv)
    return {
        "family": family_title(version.model_family), "status": version.status, "data": version.dataset_hash[:12],
        "optimised metric": METRICS[tuned_metric(cv, Task(version.task))].label,
        **({"decision threshold": "" if threshold is None else f"{threshold:.4g}",
            "positive class": registry.positive_class(version) or ""} if version.task == "binary" else {}),
        **registry.preparation_summary(version),
        "validation": scheme.describe() if scheme is not None else "",
        "holdout share": f"{cv['holdout_share']:.0%}" if "holdout_share" in cv else "",
        "tuned on": f"a sample of {rows:,} rows" if (rows := tuning_rows(version)) else "all training rows",
        **({"class weights": "balanced" if class_weighted(version) else "none"} if version.task != "regression" else
           {"target learnt as": "log(1 + target)" if learnt_log_target(version) else "itself"}),
        "training seconds": f"{version.training_seconds:,.1f}",
        **{f"param {k}": f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in params.items()},
    }


@st.cache_data(max_entries=2, show_spinner="Reading and scoring the file…")
def _scored(version_id: int, file_id: str, _version, _upload) -> ScoredFile:
    """The upload read as the Upload page reads files, and scored; once per version and file."""
    loaded = read_bytes(_upload.name, _upload.getvalue(), settings=settings())
    return score_table(_version, loaded.frame, settings=settings(), content_hash=loaded.content_hash)


def score_section(name: str, ready: list[int]) -> None:
    """Predictions of a version for the rows of a file, to read here or download."""
    st.subheader("Score a file")
    st.caption("The version's predictions for every row of a file, labelled as its service would label them. "
               "Nothing is stored.")
    left, right = st.columns([1, 3])
    number = left.selectbox("Version to score with", ready, key="score_version")
    upload = right.file_uploader("CSV, TSV, Excel, Parquet or JSON lines to score", key="score_file",
                                 type=UPLOAD_TYPES)
    if upload is None:
        return
    version = registry.get_version(engine(), name=name, version=number)
    try:
        scored = _scored(version.id, upload.file_id, version, upload)
    except BadInput as exc:
        show_error(exc)
        return
    table = scored.table
    st.dataframe(table.head(1_000), hide_index=True, width="stretch")
    shown = f"the first 1,000 of {len(table):,} rows" if len(table) > 1_000 else f"{len(table):,} rows"
    st.caption(f"{shown}: the prediction first, then the file's own columns")
    if scored.refused:
        unseen = any("unknown category" in line for line in scored.refused)
        unreadable = any("unreadable string" in line for line in scored.refused)
        st.warning("Scored here, but the version's prediction service (with its default settings) would refuse "
                   "these rows in a request:\n" + "\n".join(f"- {md(line)}" for line in scored.refused)
                   + ("\n\nThe model reads a category it never saw as it reads any unknown value; the service "
                      "refuses one unless it runs with `SHIPML_SERVE_UNSEEN_CATEGORIES=accept`." if unseen else "")
                   + ("\n\nThe model reads a date or number it cannot parse as missing, and predicts as if the value "
                      "were not there; the service refuses it." if unreadable else ""),
                   icon=":material/rule:")
    else:
        st.caption("The version's prediction service would take every row as it is.")
    if scored.against_target is not None:
        against_target(version, scored.against_target)
    # Written when clicked, not on every rerun of the page.
    st.download_button("Download the predictions (CSV)", lambda: to_safe_csv(table),
                       file_name=f"predictions-v{number}.csv", mime="text/csv", icon=":material/download:")


def against_target(version, found: TargetScores) -> None:
    """The version's scores on a file that holds its target, next to its cross-validated ones."""
    recorded = json.loads(version.metrics_json or "{}")
    names = in_display_order(list(found.scores), first=tuned_metric(json.loads(version.cv_json or "{}"),
                                                                    Task(version.task)))
    st.markdown(f"**Against the file's '{md(found.target)}'** ({plural(found.rows, 'row')} with a value)")
    if found.trained_on:
        st.warning("This file is the data the version was trained on (the same hash): it learnt these rows, so "
                   "these scores flatter it. The cross-validated ones are the honest estimate.",
                   icon=":material/warning:")
    cross = [recorded.get(n, {}).get("mean") if isinstance(recorded.get(n), dict) else None for n in names]
    positive = registry.positive_class(version)
    table = pd.DataFrame({"metric": [task_label(n, version.task, positive) for n in names],
                          "this file": [found.scores[n] for n in names], "cross-validated in training": cross},
                         ).astype({"cross-validated in training": float})  # None, not an object column
    st.dataframe(scores_as_text(table, like="this file"), hide_index=True)
    if any(math.isnan(v) for v in found.scores.values()):
        st.caption("A blank score is undefined on these rows: a class the model never saw, or a single class.")


@st.cache_data(max_entries=1, show_spinner="Checking the model file and packing it…")
def _model_zip(version_id: int, _version) -> bytes:
    """The version's model folder as a zip; kept for the reruns until another is asked for."""
    return registry.export_zip(_version, settings=settings())


def download_model(version) -> None:
    """The version's model folder as a zip, for `core predict` or `core deploy` elsewhere. Packed
    on request, not on every rerun: that reads the whole model file to check its hash."""
    if st.session_state.get("model_zip") != version.id:
        if not st.button("Prepare the model for download", key="model_zip_button", icon=":material/inventory_2:",
                         help="A zip of the model folder `core train --out` writes: model.joblib, model.json (the "
                              "metadata and the file's SHA-256), MODEL_CARD.md and reference.parquet. Unzipped, it "
                              "is what `python -m core predict --model` and `core deploy --model` take."):
            return
        st.session_state["model_zip"] = version.id
    try:
        data = _model_zip(version.id, version)
    except BadInput as exc:
        show_error(exc)
        return
    st.download_button(f"Download the model ({len(data) / 1e6:,.1f} MB zip)", data,
                       file_name=f"{registry.export_name(version)}.zip", mime="application/zip",
                       icon=":material/download:")


def compare_versions(versions) -> None:
    st.subheader("Compare versions")
    a, b = st.columns(2)
    numbers = [v.version for v in versions]
    va = a.selectbox("A", numbers, index=0)
    vb = b.selectbox("B", numbers, index=1)
    pick = {v.version: v for v in versions}
    first, second = pick[va], pick[vb]
    facts = pd.DataFrame({f"A: v{va}": _facts(first), f"B: v{vb}": _facts(second)}).fillna("")
    params = sorted(row for row in facts.index if row.startswith("param "))
    facts = facts.loc[[row for row in facts.index if row not in params] + params]  # B's own parameters sorted in
    st.dataframe(facts, width="stretch", height=36 * (len(facts) + 1))  # every row, no inner scrolling
    tuned = tuned_metric(json.loads(first.cv_json or "{}"), Task(first.task))
    try:
        scores = plots.compare_versions_table(first.task, json.loads(first.metrics_json or "{}"),
                                              second.task, json.loads(second.metrics_json or "{}"), first=tuned)
    except BadInput as exc:  # a task overridden between versions
        show_error(exc)
    else:
        st.dataframe(scores_as_text(scores, like="A"), hide_index=True, width="stretch")
        positives = registry.positive_class(first), registry.positive_class(second)
        if first.task == "binary" and not same_positive(*positives):
            named = [f"'{md(p)}'" if p is not None else "the second class in sorted order" for p in positives]
            st.caption(f"Precision, recall, F1 and PR AUC are left out: A's describe {named[0]}, B's {named[1]}.")


table = pd.DataFrame(
    {
        "version": [v.version for v in versions],
        "status": [v.status for v in versions],
        "aliases": [", ".join(by_version.get(v.version, [])) for v in versions],
        "family": [family_title(v.model_family) for v in versions],
        "metrics (CV mean, the tuned one first)": [_headline(v) for v in versions],
        "data": [v.dataset_hash[:12] for v in versions],
        "created": [v.created_at for v in versions],
    }
)
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]")})
if len(versions) > 1:
    compare_versions(versions)

ready = [v.version for v in versions if v.status == "READY"]
if ready:
    score_section(name, ready)
    st.subheader("Aliases and model cards")
    left, right = st.columns(2)
    with left.form("alias"):
        chosen = st.selectbox("Version", ready)
        alias = st.selectbox("Alias", ["champion", "challenger"])
        if st.form_submit_button("Point alias here", icon=":material/label:"):
            try:
                registry.set_alias(engine(), name=name, alias=alias, version=chosen)
            except BadInput as exc:
                show_error(exc)
            else:
                st.rerun()
    with right:
        shown = st.selectbox("Model card of version", [v.version for v in versions])
        version = next(v for v in versions if v.version == shown)
        card = registry.model_card(version, aliases=alias_map)
        st.download_button("Download model card", card, file_name=f"model-card-v{shown}.md", mime="text/markdown",
                           icon=":material/download:")
        if version.status == "READY":
            download_model(version)
    with st.container(border=True):
        st.markdown(card)
