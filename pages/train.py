"""Train: pick models and a budget, watch the search live, cancel at any time."""
from __future__ import annotations

import json

import streamlit as st

from core import datasets, jobs
from core.data.profile import Task, infer_task
from core.errors import BadInput
from core.modeling.metrics import METRICS, default_metric, format_score, metrics_for, positive_class
from core.modeling.plots import leaderboard_chart
from core.modeling.specs import family_title, log_target_skew, specs_for
from core.modeling.splits import date_columns, time_ordered_column
from core.modeling.tuning import SEARCH_TITLES, TuningConfig
from core.prep.recipe import prepare_training_table, recipe_to_json
from core.prep.steps import DropColumns
from core.store.models import utcnow
from core.training import TrainRequest
from core.wording import STOP_REASONS, plural
from pages.common import (dataset_frame, dataset_profile, engine, md, readable_trials, require_dataset, save_recipe,
                          settings, show_error, trial_columns, type_fix_prompt)

STATUS_ICON = {"QUEUED": ":material/schedule:", "RUNNING": ":material/progress_activity:", "DONE": ":material/check_circle:",
               "FAILED": ":material/error:", "CANCELLED": ":material/cancel:"}
CV_KINDS = {"auto": "auto", "stratified": "stratified (class shares kept)", "kfold": "k-fold, shuffled",
            "group": "grouped by a column", "time": "time-series (by a date)"}
BUDGET_STEPS_S = (10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800)


def leakage_gate(dataset, issues, recipe) -> bool:
    """Leakage suspects must be dropped or confirmed before training; True when none is open."""
    suspects = [i for i in issues if i.code == "target_leakage"]
    dropped = {c for s in recipe.steps if isinstance(s, DropColumns) for c in s.columns}
    confirmed = st.session_state.setdefault("leakage_confirmed", {}).setdefault(dataset.id, set())
    open_suspects = [i for i in suspects if i.columns[0] not in dropped | confirmed]
    if not open_suspects:
        return True
    st.warning("Possible target leakage: confirm or drop these columns before training.", icon=":material/warning:")
    for k, issue in enumerate(open_suspects):
        column = issue.columns[0]
        with st.container(border=True):
            st.markdown(f"**{md(issue.title)}**")
            st.caption(md(issue.explanation))
            left, right = st.columns(2)
            if left.button("Drop the column", key=f"leak_drop_{k}", icon=":material/delete:"):
                save_recipe(dataset.id, recipe, recipe.with_step(issue.fix))
                st.rerun()
            if right.button("Keep it: it is known at prediction time", key=f"leak_keep_{k}"):
                confirmed.add(column)
                st.rerun()
    return False


def _duration(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{seconds / 60:g} min"


@st.cache_resource(max_entries=4, show_spinner="Reading the cleaned table…")
def _cleaned_facts(content_hash: str, recipe_json: str, target: str, _frame, _recipe) -> tuple:
    """The cleaned table's date columns, the one its rows are ordered by (if any), and for a
    two-class target its share of rows per class (as text: a recipe may rename classes) and
    the default positive class."""
    X, y = prepare_training_table(_frame, _recipe, target=target)
    shares = y.astype(str).value_counts(normalize=True).sort_index().to_dict() if y.nunique() == 2 else {}
    return date_columns(X), time_ordered_column(X), shares, positive_class(y) if shares else None


def train_form(dataset, frame, target: str, recipe) -> None:
    y = frame[target].dropna()
    inferred = infer_task(y)
    # Outside the form, so that choosing a task reruns the page: the metrics and models offered
    # below depend on it (inside, they stayed the inferred task's until a submit failed).
    task_choice = st.columns(3)[0].selectbox("Task", ["auto", "binary", "multiclass", "regression"],
                                             format_func=lambda t: f"auto ({inferred.value})" if t == "auto" else t,
                                             help="Inferred from the target; override it here.",
                                             key=f"task_{dataset.id}_{target}")  # one choice per dataset and target
    task = inferred if task_choice == "auto" else Task(task_choice)
    # From the cleaned table: a date column the recipe parsed from text is a time column too.
    try:
        dates, ordered, shares, rarer = _cleaned_facts(dataset.content_hash, recipe_to_json(recipe), target, frame,
                                                       recipe)
    except BadInput:  # a recipe that no longer fits the table: the job will say why, in words
        dates, ordered, shares, rarer = [], None, {}, None
    with st.form("train"):
        c = st.columns(3)
        name = c[0].text_input("Model name", value=dataset.name.rsplit(".", 1)[0][:100], max_chars=100)
        metric = c[1].selectbox("Optimise", metrics_for(task), index=metrics_for(task).index(default_metric(task)),
                                format_func=lambda m: METRICS[m].label)
        positive = None
        if task == Task.BINARY and shares:
            positive = c[2].selectbox(
                "Positive class", list(shares), index=list(shares).index(rarer),
                format_func=lambda v: f"{v} ({shares[v]:.0%} of rows)",
                help="The class precision, recall, F1 and PR AUC describe, and whose probability the decision "
                     "threshold cuts. It starts at the rarer class, usually the one to find.")
        specs = specs_for(task)
        models = st.multiselect("Models (empty: search across all)", [s.name for s in specs], default=[],
                                format_func=lambda n: next(s.title for s in specs if s.name == n))
        c = st.columns(4)
        search = c[0].selectbox("Search", ["bayes", "random", "grid"],
                                format_func=SEARCH_TITLES.get)
        # Steps that grow with the budget: on a plain 10-1800 s slider a minute sat at the far left.
        budget = c[1].select_slider("Time budget", BUDGET_STEPS_S, value=60, format_func=_duration)
        trials = c[2].number_input("Max trials (0 = no limit)", min_value=0, value=0)
        per_model = c[3].number_input("Seconds per model (0 = shared)", min_value=0, value=0, step=10,
                                      help="A cap on the time one model family's trials take together. "
                                           "By default the budget is shared among the families.")
        c = st.columns(4)
        cv_kind = c[0].selectbox("Cross-validation", list(CV_KINDS), format_func=CV_KINDS.get,
                                 help="Auto splits by time when a time column is set, by group when a group "
                                      "column is, keeps class shares for classes, and shuffles otherwise.")
        folds = c[1].number_input("Folds", min_value=2, max_value=20, value=5)
        time_column = c[2].selectbox("Time column", [None, *dates], index=dates.index(ordered) + 1 if ordered else 0,
                                     format_func=lambda v: "none" if v is None else v,
                                     help=f"The rows are ordered by '{md(ordered)}', so it is chosen: the folds then never "
                                          "train on the future. Choose none for shuffled folds." if ordered else
                                          "Choosing one splits the folds by time, so they never train on the future.")
        group_column = c[3].selectbox("Group column", [None, *[str(col) for col in frame.columns if col != target]],
                                      format_func=lambda v: "none" if v is None else v)
        c = st.columns(3)
        holdout = c[0].slider("Holdout share (scored once)", 0.1, 0.4, 0.2, step=0.05,
                              help="Rows kept out of all tuning and scored once by the winner. With a time "
                                   "column they are the latest rows: the future, as the model will meet it.")
        class_weight = log_target = False
        if task == Task.REGRESSION:
            skew = log_target_skew(y)
            log_target = c[1].checkbox(
                "Learn the log of the target", value=False,
                help="Every model learns log(1 + target) and predicts in the target's units: large values of a "
                     "long-tailed target (amounts, durations) then weigh less on the fit. Needs no value below 0.")
            if skew:
                st.caption(f"'{md(target)}' has a long tail of large values (skewness {skew:.1f}): learning its log "
                           "may fit it better. Compare both runs on Evaluate.")
        else:
            class_weight = c[1].checkbox("Balance class weights", value=False,
                                         help="Weigh each class by the inverse of its share, in the models that can: "
                                              + ", ".join(s.title for s in specs if s.supports_class_weight) + ".")
        allow_shuffle = c[2].checkbox("Allow a shuffled split on time-ordered data")
        if (training_rows := round(len(y) * (1 - holdout))) > (cap := settings().tuning_max_rows):
            st.caption(f"About {training_rows:,} training rows: the search and its cross-validation run on a sample of "
                       f"{cap:,} of them, so that the budget covers more than a few trials; the model that ships "
                       "learns from every row.")
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if submitted:
        request = TrainRequest(
            model_name=name.strip(), target=target, task=None if task_choice == "auto" else task,
            config=TuningConfig(models=tuple(models), search=search, budget_s=float(budget), max_trials=int(trials) or None,
                                per_model_s=float(per_model) or None, metric=metric, class_weight=class_weight,
                                seed=settings().random_seed, positive_class=positive, log_target=log_target),
            cv_kind=None if cv_kind == "auto" else cv_kind, n_folds=int(folds), time_column=time_column,
            group_column=group_column, allow_shuffled_time=allow_shuffle, holdout_share=holdout,
        )
        try:
            request.config.validate(task)
            job_id = jobs.submit_job(engine(), dataset_id=dataset.id, request=request, settings=settings())
        except BadInput as exc:
            show_error(exc)
        else:
            st.session_state["watch_job"] = job_id
            st.rerun()


def job_panel(job) -> None:
    """One job's progress and result (its trials read from the store)."""
    request = jobs.request_from_json(job.request_json)
    stage = f" · {job.stage}" if job.status in jobs.ACTIVE else ""  # a finished job's is said below, in words
    st.markdown(f"{STATUS_ICON[job.status]} **Job {job.id} · {md(job.model_name)}** · {job.status.lower()}{stage}")
    elapsed = ((job.finished_at or utcnow()) - (job.started_at or job.created_at)).total_seconds()
    budget = request.config.budget_s or 0
    m = st.columns(4)
    m[0].metric("Trials done", job.trials_done)
    m[1].metric("Best score", "—" if job.best_score is None else format_score(job.best_score),
                help=family_title(job.best_model) if job.best_model else None)
    m[2].metric("Elapsed", f"{elapsed:,.0f} s")
    m[3].metric("Budget left", f"{max(0.0, budget - elapsed):,.0f} s" if budget and job.status == "RUNNING" else "—")
    if job.status == "RUNNING" and (budget or request.config.max_trials):
        cap = f" · {job.trials_done} of {plural(request.config.max_trials, 'trial')}" if request.config.max_trials else ""
        st.progress(jobs.search_progress(elapsed, job.trials_done, request.config), text=f"{job.stage}{cap}…")
    trials = jobs.job_trials(engine(), job.id)
    if not trials.empty:
        metric = jobs.ranking_metric(request)
        st.plotly_chart(leaderboard_chart(trials, greater_is_better=METRICS[metric].greater_is_better,
                                          score_label=METRICS[metric].label),
                        width="stretch", key=f"lb_{job.id}_{len(trials)}")
        board = readable_trials(jobs.best_per_family(trials, metric))
        st.dataframe(board[["model", "score", "score_std", "trials", "seconds", "params"]], hide_index=True,
                     width="stretch", column_config={
                         **trial_columns(metric, board["score"]),
                         "trials": st.column_config.NumberColumn(help="The family's trials so far, stopped ones too"),
                         "seconds": st.column_config.NumberColumn(format="%.1f",
                                                                  help="The search's time on the family so far")})
    if job.status in jobs.ACTIVE:
        if st.button("Cancel", icon=":material/stop:", key=f"cancel_{job.id}"):
            jobs.cancel_job(engine(), job.id)
    elif job.status == "DONE":
        warnings = json.loads(job.warnings_json or "[]")
        for warning in warnings:
            st.warning(warning)
        reason = STOP_REASONS.get(job.stage)  # None for jobs finished before it was recorded
        st.success(f"Training finished{f' ({reason})' if reason else ''} and the model is registered.",
                   icon=":material/check_circle:")
        st.page_link("pages/evaluate.py", label="See the evaluation", icon=":material/analytics:")
    elif job.error:
        st.error(job.error, icon=":material/error:")


@st.fragment(run_every=1.0)
def live_job_panel(job_id: int, listed_status: str) -> None:
    """While a job runs: its panel refreshed every second, and a full rerun when its status moves
    on (queued to running, or to its end): the job list above shows the status too, and a
    finished job is shown without polling."""
    jobs.reap_dead_jobs(engine())
    job = jobs.get_job(engine(), job_id)
    if job.status != listed_status:
        st.rerun()  # the whole page
    job_panel(job)


st.title("Train")
dataset = require_dataset()
prep = datasets.get_preparation(engine(), dataset.id)
if prep.target is None:
    st.info("Choose the target column on the **Upload** page first.")
    st.stop()
frame = dataset_frame(dataset)
_, issues = dataset_profile(dataset, prep.target)
st.caption(f"{md(dataset.name)} · target **{md(prep.target)}** · {plural(len(prep.recipe.steps), 'cleaning step')} · "
           f"feature plan {'saved' if prep.plan else 'default (all usable columns)'}")
if leakage_gate(dataset, issues, prep.recipe):
    type_fix_prompt(dataset, issues, prep.recipe)
    train_form(dataset, frame, prep.target, prep.recipe)
jobs.reap_dead_jobs(engine())
history = jobs.list_jobs(engine(), dataset_id=dataset.id)
if history:
    st.subheader("Training jobs")
    ids = [j.id for j in history]
    watched = st.session_state.get("watch_job", ids[0])
    chosen = st.selectbox("Job", ids, index=ids.index(watched) if watched in ids else 0,
                          format_func=lambda i: next(f"#{j.id} · {j.model_name} · {j.status.lower()} · {j.created_at:%Y-%m-%d %H:%M}"
                                                     for j in history if j.id == i))
    job = next(j for j in history if j.id == chosen)
    if job.status in jobs.ACTIVE:
        live_job_panel(job.id, job.status)
    else:
        job_panel(job)
