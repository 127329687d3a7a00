"""Evaluate: an honest look at a trained model, always next to the dummy baseline."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import jobs
from core.errors import BadInput
from core.explain import explain_version, version_rows, worst_predictions
from core.learning_curve import learning_curve
from core.modeling import plots
from core.modeling.evaluation import baseline_notes, per_class_table, threshold_note
from core.modeling.metrics import METRICS, format_score, same_positive, task_label
from core.modeling.specs import family_title
from core.training import class_weighted, learnt_log_target, tuning_folds, tuning_rows
from pages.common import (COUNT, dataset_frame, engine, md, readable_trials, require_dataset, scores_as_text, settings,
                          show_error, trial_columns)


@st.cache_resource(max_entries=8)
def _report(job_id: int):
    return jobs.load_report(job_id, settings=settings())


@st.cache_resource(max_entries=4, show_spinner="Refitting the model without its holdout rows and shuffling "
                                                 "each column on them…")
def _explanation(version_id: int, _version, _frame):
    return explain_version(_version, _frame, settings=settings())


@st.cache_resource(max_entries=12, show_spinner=False)
def _dependence(version_id: int, column: str, _explained, task: str, classes: tuple | None):
    """One partial-dependence chart (20,000 predictions): once per version and column, not on each
    rerun (a move of the threshold slider took 0.4 s more for the three)."""
    return plots.partial_dependence_chart(_explained.pipeline, _explained.X, column, task=task, classes=classes)


@st.cache_resource(max_entries=4, show_spinner="Finding the rows the model gets most wrong…")
def _worst(job_id: int, version_id: int, _report, _version, _frame):
    return worst_predictions(_report, version_rows(_version, _frame, settings=settings()))


def _learning_curve(version, frame):
    """The version's learning curve, computed once per session with a progress bar (a cached
    function would replay the bar)."""
    key = f"learning_curve_{version.id}"
    if key not in st.session_state:
        bar = st.progress(0.0, text="Refitting the model on growing shares of its folds…")
        try:
            st.session_state[key] = learning_curve(
                version, frame, settings=settings(),
                on_fit=lambda done, total: bar.progress(done / total, text=f"Refitting the model: fit {done} of {total}"))
        finally:
            bar.empty()
    return st.session_state[key]


def _row_label(report, m) -> str:
    label = task_label(m.name, report.task, report.cv.classes[1] if report.task == "binary" else None)
    return f"{label} (optimised)" if m.name == report.primary_metric else label


def metrics_table(report, *, class_weighted: bool) -> None:
    rows = [
        {
            "metric": _row_label(report, m),
            "cross-validated": f"{format_score(m.mean)} ± {format_score(m.std, like=m.mean)}",
            "baseline": f"{format_score(m.baseline_mean)} ± {format_score(m.baseline_std, like=m.baseline_mean)}",
            "holdout": format_score(report.holdout[m.name]) if m.name in (report.holdout or {}) else "",
            # Words, not a checkbox: an empty box is easy to miss.
            "vs baseline": "better" if m.better_than_baseline else "⚠ no better than baseline",
        }
        for m in report.metrics
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 # The flag's own width: auto-sized columns pushed it past the right edge at 1400 px.
                 column_config={"holdout": st.column_config.TextColumn(
                                    width="small",
                                    help="Rows kept out of all tuning, scored once by the winner fitted on the rest"
                                         + (": the latest rows by time" if report.scheme.kind == "time" else "")),
                                "vs baseline": st.column_config.TextColumn(width="medium")})
    positive = md(str(report.cv.classes[1])) if report.task == "binary" else None
    if report.threshold_metric:
        st.caption(threshold_note(report.threshold, report.threshold_metric, positive,
                                  time_ordered=report.scheme.kind == "time"))
    for note in baseline_notes(report, class_weighted=class_weighted, positive=positive):
        st.caption(note)


def charts(report, target: str) -> None:
    # Split by time: how predictions followed what happened, where a drift or a season shows.
    over_time = report.times is not None
    if report.task == "regression":
        tabs = st.tabs(["Residuals", "Predicted vs actual"] + ["Over time"] * over_time)
        tabs[0].plotly_chart(plots.residuals_chart(report), width="stretch")
        tabs[1].plotly_chart(plots.predicted_vs_actual_chart(report), width="stretch")
        if over_time:
            tabs[2].plotly_chart(plots.over_time_chart(report, target), width="stretch")
        return
    tabs = st.tabs(["ROC", "Precision-recall", "Confusion matrix", "Calibration", "Lift / gain"]
                   + ["Over time"] * over_time)
    tabs[0].plotly_chart(plots.roc_chart(report), width="stretch")
    tabs[1].plotly_chart(plots.pr_chart(report), width="stretch")
    with tabs[2]:
        threshold = 0.5
        if report.task == "binary":
            start = min(max(report.threshold or 0.5, 0.01), 0.99)  # a confident model's cut can lie outside
            threshold = st.slider(f"Decision threshold on the probability of '{md(report.cv.classes[1])}'",
                                  0.01, 0.99, start, step=0.01,
                                  help="It starts at the threshold the model predicts with. Move it to see "
                                       "what another cut-off would do; the model keeps its own.")
        st.plotly_chart(plots.confusion_chart(report, threshold), width="stretch")
        classes = per_class_table(report, threshold)
        # In percent with one decimal for every row: Streamlit's "percent" drops trailing zeros (36% next to 44.36%).
        st.dataframe(classes.assign(share=classes["share"] * 100), hide_index=True, width="stretch",
                     column_config={"share": st.column_config.NumberColumn(format="%.1f%%"),
                                    "rows": COUNT, "predicted": COUNT,
                                    **{c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "F1")}})
        st.caption("Each class's precision (of the rows predicted as it, the share that are), recall (of its rows, "
                   "the share found) and F1, out-of-fold" + (" at the threshold above." if report.task == "binary" else
                                                             ": the metrics table averages these over the classes."))
    tabs[3].plotly_chart(plots.calibration_chart(report), width="stretch")
    tabs[4].plotly_chart(plots.lift_chart(report), width="stretch")
    if over_time:
        tabs[5].plotly_chart(plots.over_time_chart(report, target), width="stretch")


st.title("Evaluate")
dataset = require_dataset()
done = [j for j in jobs.list_jobs(engine(), dataset_id=dataset.id) if j.status == "DONE"]
if not done:
    st.info("No finished training job for this dataset yet.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
labels = {j.id: f"#{j.id} · {j.model_name} · {family_title(j.best_model or '')} · {j.created_at:%Y-%m-%d %H:%M}"
          for j in done}
job_id = st.selectbox("Training job", list(labels), format_func=labels.get)
job = next(j for j in done if j.id == job_id)
try:
    report = _report(job.id)
    version = jobs.job_version(engine(), job)
except BadInput as exc:
    show_error(exc)
    st.stop()

st.caption(f"{md(version.model_name)} version {version.version} · {md(family_title(version.model_family))} · "
           f"{report.scheme.describe()}" + (" · learnt the log of the target" if learnt_log_target(version) else "")
           + (f" · tuned and cross-validated on a sample of {rows:,} rows" if (rows := tuning_rows(version)) else ""))
if report.no_better_than_baseline:
    st.error("This model is no better than the dummy baseline on the primary metric: it has not learned anything "
             "useful. Check the target, the features and the data.", icon=":material/block:")
metrics_table(report, class_weighted=class_weighted(version))
charts(report, version.target)

with st.expander("The rows the model gets most wrong"):
    try:
        worst = _worst(job.id, version.id, report, version, dataset_frame(dataset))
    except BadInput as exc:
        show_error(exc)
    else:
        st.dataframe(worst, hide_index=True, width="stretch")
        st.caption(("The largest errors" if report.task == "regression" else
                    "The lowest probabilities given to the actual class (the most confident mistakes)")
                   + ", out-of-fold, each with its row of the uploaded table (the first data row is 1). A wrong "
                     "label, a unit slip or a case the columns cannot tell apart usually shows here first.")

st.subheader("What drives the predictions")
if st.button("Compute permutation importance and partial dependence", icon=":material/insights:"):
    st.session_state.setdefault("importance_jobs", set()).add(job.id)
if job.id in st.session_state.get("importance_jobs", set()):
    try:
        explained = _explanation(version.id, version, dataset_frame(dataset))
    except BadInput as exc:
        show_error(exc)
    else:
        label = METRICS[explained.metric].label
        st.caption(f"How much {label} ({explained.score:.4f} as they are) drops when one column is shuffled, on "
                   f"{explained.n_rows:,} {explained.scored_on} rows"
                   + (", with the model refit without them: a column it only memorised scores about 0 here."
                      if explained.scored_on == "holdout" else " (this version recorded no holdout)."))
        st.plotly_chart(plots.importance_chart(explained.importance), width="stretch")
        top = [str(c) for c in explained.importance["column"].head(3)]
        cols = st.columns(len(top) or 1)
        for slot, column in zip(cols, top):
            slot.plotly_chart(_dependence(version.id, column, explained, report.task, report.cv.classes),
                              width="stretch")

st.subheader("Would more rows help?")
if st.button("Compute the learning curve", icon=":material/trending_up:",
             help="The model, with its tuned parameters, refit on 10 %, 25 %, 50 %, 75 % and all of each "
                  "cross-validation fold's training rows (about 2.6 times the time of one cross-validation)."):
    st.session_state.setdefault("curve_jobs", set()).add(job.id)
if job.id in st.session_state.get("curve_jobs", set()):
    try:
        curve = _learning_curve(version, dataset_frame(dataset))
    except BadInput as exc:
        show_error(exc)
    else:
        st.plotly_chart(plots.learning_curve_chart(curve), width="stretch")
        st.caption(md(curve.reading()))

st.subheader("Leaderboard: every trial")
trials = jobs.job_trials(engine(), job.id)
st.dataframe(readable_trials(jobs.rank_trials(trials, report.primary_metric)), hide_index=True, width="stretch",
             column_config=trial_columns(report.primary_metric, trials["score"]))
if (searched := tuning_folds(version)) > report.scheme.n_folds:
    st.caption(f"The search scored these trials with {searched} folds (a small table: each fold's model learns from "
               f"more rows); the table at the top cross-validated the winner again with the {report.scheme.n_folds} "
               "asked for, so its scores differ a little from its row here.")
if report.threshold_metric and not METRICS[report.primary_metric].needs_proba:
    st.caption(f"The search scored {METRICS[report.primary_metric].label} with labels at 0.5; the table at the top "
               "scores the winner at its decision threshold.")

if len(done) > 1:
    st.subheader("Compare two runs")
    other = st.selectbox("Compare with", [i for i in labels if i != job.id], format_func=labels.get)
    st.caption(f"A: {md(labels[job.id])} · B: {md(labels[other])}")
    try:
        other_report = _report(other)
        st.dataframe(scores_as_text(plots.compare_runs_table(report, other_report), like="A"), hide_index=True,
                     width="stretch")
        st.plotly_chart(plots.compare_folds_chart(report, other_report), width="stretch")
    except BadInput as exc:  # e.g. a run whose task was overridden
        show_error(exc)
    else:
        a, b = report.cv.classes, other_report.cv.classes
        if report.task == "binary" and not same_positive(a[1], b[1]):
            st.caption(f"Precision, recall, F1 and PR AUC are left out: A's describe '{md(a[1])}', "
                       f"B's '{md(b[1])}'.")
