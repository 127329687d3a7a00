"""Monitor: is the service healthy, has the data moved, is the model still right — and what to do.

Everything is computed in ``core.monitoring`` (health, drift, performance, alerts, retraining,
A/B statistics) and ``core.deploy``; this page picks a deployment and a window and renders.
Retraining runs in its own process (``core.monitoring.retrain.submit_retrain``), so a rerun or a
page change never cuts it; the page watches its recorded run.
"""
from __future__ import annotations

import html
import time
from datetime import timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core import deploy, registry
from core.errors import BadInput
from core.modeling.metrics import METRICS
from core.monitoring import alerts, health, performance, retrain, triggers
from core.monitoring.export import to_safe_csv
from core.monitoring.policy import PromotionPolicy
from core.monitoring.window import MIN_BUCKET_ROWS, drift_over_time, window_drift
from core.store.models import Deployment, utcnow
from pages.common import engine, md, scores_as_text, settings, show_error

WINDOWS = {"Last hour": timedelta(hours=1), "Last day": timedelta(days=1), "Last week": timedelta(days=7),
           "All": None}
BUCKETS = {"Last hour": "5min", "Last day": "1h", "Last week": "1D", "All": "1D"}
COLLECT_EVERY_S = 30


@st.cache_resource
def _log_engine(url: str):
    return health.log_engine_for(settings(), log_url=url)


def log_engine(row: Deployment):
    """The prediction log ``row`` writes (local deployments share one, a Docker one has its own),
    one engine per log and process."""
    return _log_engine(health.log_url_for(settings(), row))


def _since(window: str):
    span = WINDOWS[window]
    return None if span is None else utcnow() - span


def _one_point_spread(figure: go.Figure, times: pd.Series, pad: pd.Timedelta) -> go.Figure:
    """``figure`` with its time axis ``pad`` either side of a lone point: plotly spans one
    timestamp by a millisecond and labels the axis in fractions of a second."""
    if times.nunique() == 1:
        at = pd.Timestamp(times.iloc[0])
        figure.update_xaxes(range=[at - pad, at + pad])
    return figure


def _ms(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value * 1000:.1f} ms"


# --------------------------------------------------------------------------- health


@st.fragment(run_every=COLLECT_EVERY_S)
def periodic_collect(row: Deployment) -> None:
    """While the page is open, a snapshot every ``COLLECT_EVERY_S`` seconds (rates need two).

    Not on the page's own run: "Collect now" right after opening would otherwise cover a second.
    """
    key = f"mon_collected_{row.id}"
    last = st.session_state.setdefault(key, time.monotonic())
    if row.status == deploy.RUNNING and time.monotonic() - last >= COLLECT_EVERY_S - 1:
        st.session_state[key] = time.monotonic()
        health.collect(engine(), row, settings())


def health_section(row: Deployment, window: str) -> None:
    st.subheader("Service health")
    key = f"mon_health_{row.id}"
    if st.button("Collect now", key="mon_collect", icon=":material/refresh:"):
        st.session_state[key] = health.current_health(engine(), row, settings())
        st.session_state[f"mon_collected_{row.id}"] = time.monotonic()
    now = st.session_state.get(key)
    if now is None:
        st.caption("Press **Collect now** to scrape the service's /metrics (the page also collects every "
                   f"{COLLECT_EVERY_S} s while it is open).")
    elif not now.up:
        st.warning(f"The service did not answer: {md(now.error or 'unknown error')}", icon=":material/cloud_off:")
    else:
        cols = st.columns(7)
        cols[0].metric("Requests/s", "–" if now.requests_per_s is None else f"{now.requests_per_s:.3g}")
        cols[1].metric("p50", _ms(now.p50_s))
        cols[2].metric("p95", _ms(now.p95_s))
        cols[3].metric("p99", _ms(now.p99_s))
        cols[4].metric("Error rate", "–" if now.error_rate is None else f"{now.error_rate:.2%}",
                       help="Requests the service failed (5xx).")
        cols[5].metric("Refused", "–" if now.refused_rate is None else f"{now.refused_rate:.2%}",
                       help="Requests the service refused (4xx): rows that break the schema, a missing token. "
                            "A rise means a client sends something new.")
        cols[6].metric("In flight", f"{now.in_flight:.0f}")
        span = "since the service started" if now.window_s is None else f"over the last {now.window_s:.0f} s"
        st.caption(f"{now.requests:.0f} requests {span}; {now.requests_total:.0f} in total.")
    try:
        series = health.service_health(engine(), row, settings(), since=_since(window) or utcnow() - timedelta(days=14))
    except BadInput as exc:
        show_error(exc)
        series = pd.DataFrame()
    source = "Prometheus" if settings().prometheus_url else "stored snapshots"
    if series.empty:
        st.caption(f"No health history yet (from {source}); it needs two snapshots.")
    else:
        left, right = st.columns(2)
        charts = (("Requests/s", {"requests_per_s": "requests/s"}, left, "mon_rps"),
                  ("Latency (s)", {"p50_s": "p50", "p95_s": "p95", "p99_s": "p99"}, right, "mon_latency"),
                  ("Error rate", {"error_rate": "failed (5xx)", "refused_rate": "refused (4xx)"}, left, "mon_errors"),
                  ("In flight", {"in_flight": "in flight"}, right, "mon_inflight"))
        for title, names, slot, key in charts:
            # Markers: two snapshots give one rate, a single point that a bare line would not draw.
            figure = px.line(series.rename(columns=names), x="time", y=list(names.values()), title=title,
                             markers=True)
            figure.update_layout(legend_title_text="", yaxis_title=None, showlegend=len(names) > 1)
            if series[list(names)].isna().all(axis=None):  # latency and error rate need requests
                figure.add_annotation(text="no requests in this window", showarrow=False, xref="paper",
                                      yref="paper", x=0.5, y=0.5)
            slot.plotly_chart(_one_point_spread(figure, series["time"], pd.Timedelta(minutes=1)), key=key)
        quiet = series["requests_per_s"].eq(0).any()
        st.caption(f"From {source}." + (" Where no request came between two snapshots, latency and error rate have "
                                        "nothing to measure, so their lines break there." if quiet else ""))

    st.subheader("Predictions")
    since = _since(window)
    volume = health.prediction_volume(log_engine(row), model_name=row.model_name, version=row.version, since=since,
                                      freq=BUCKETS[window])
    if volume.empty:
        st.caption("No predictions logged in this window.")
        return
    left, right = st.columns(2)
    left.plotly_chart(px.bar(volume, x="time", y=["requests", "rows"], barmode="group", title="Volume")
                      .update_layout(legend_title_text="", yaxis_title="count"), key="mon_volume")
    dist = health.prediction_distribution(log_engine(row), model_name=row.model_name, version=row.version, since=since,
                                          freq=BUCKETS[window])
    if "label" in dist.columns and not dist.empty:
        # A bar as wide as its bucket: left to plotly, one bucket's stacked bars are a millisecond
        # wide and the time axis is labelled in fractions of a second.
        width = pd.Timedelta(BUCKETS[window]).total_seconds() * 1000 * 0.8
        # go.Bar, not px.bar: px puts each class in its own offset group, and those do not stack
        # (one bucket's classes were drawn over each other, the largest share hiding the rest).
        classes = go.Figure([go.Bar(x=part["time"], y=part["share"], name=html.escape(str(label)), width=width)
                             for label, part in dist.groupby("label", sort=True)])
        classes.update_layout(barmode="stack", title="Predicted classes", xaxis_title="time",
                              yaxis={"title": "share of the rows", "range": [0, 1]})
        right.plotly_chart(classes, key="mon_dist")
    elif not dist.empty:
        right.plotly_chart(px.line(dist, x="time", y=["p10", "p50", "p90"], title="Predicted values"),
                           key="mon_dist")


# --------------------------------------------------------------------------- drift


def drift_section(row: Deployment, window: str) -> float | None:
    """Renders the drift of the window; returns the share of drifted features when computed."""
    st.subheader("Data drift")
    key = f"mon_drift_{row.id}_{window}"
    if st.button("Compute drift", key="mon_drift_go", icon=":material/query_stats:"):
        try:
            with st.spinner("Comparing the window with the training reference sample…"):
                st.session_state[key] = window_drift(engine(), row, settings(), log_engine(row), since=_since(window))
                st.session_state[f"{key}_time"] = drift_over_time(engine(), row, settings(), log_engine(row),
                                                                  since=_since(window), freq=BUCKETS[window])
        except BadInput as exc:
            st.session_state.pop(key, None)
            show_error(exc)
    result = st.session_state.get(key)
    if result is None:
        st.caption("Compares the logged inputs of the window with the reference sample stored with the model "
                   "version (methods and thresholds as Evidently's defaults, chosen by sample size).")
        return None
    r = result.result
    cols = st.columns(3)
    cols[0].metric("Drifted features", f"{len(r.drifted_columns)} of {len(r.columns)}")
    cols[1].metric("Share drifted", f"{r.share_drifted:.0%}", help=f"The dataset drifts at {r.drift_share:.0%}.")
    if result.prediction is not None:
        p = result.prediction
        cols[2].metric("Prediction drift", "drifted" if p.drifted else "stable",
                       help=f"{p.method}: {p.score:.4g} (threshold {p.threshold:.4g})")
    st.caption(f"{r.n_current:,} logged rows against {r.n_reference:,} reference rows.")
    table = result.table()
    st.dataframe(table, hide_index=True, key="mon_drift_table", column_config={
        # p-values reach 1e-18: in plain decimals the column showed only the last digits.
        "score": st.column_config.NumberColumn(format="%.3g"),
        "threshold": st.column_config.NumberColumn(format="%.3g"),
        "severity": st.column_config.NumberColumn(
            format="%.2f", help="The score against the column's own threshold: 1 at the threshold, above 1 "
                                "drifted (a p-value's log ratio, a distance's ratio), capped at 10"),
        "importance": st.column_config.NumberColumn(
            format="percent", help="How much the model leans on the column, as a share of all columns: what "
                                   "shuffling it on the reference sample does to the model's own predictions")})
    # Severity, not the raw score: a p-value of 1e-18 and a distance of 0.3 on one axis showed the
    # drifted p-value columns as no bar at all.
    chart = go.Figure(go.Bar(
        x=table["column"].map(lambda c: html.escape(str(c))), y=table["severity"],
        marker_color=table["drifted"].map({True: "#d62728", False: "#1f77b4"}),
        customdata=list(zip(table["method"], table["score"], table["threshold"])),
        hovertemplate="%{x}: %{y:.2f} times the threshold (%{customdata[0]} %{customdata[1]:.3g}, threshold "
                      "%{customdata[2]:.3g})<extra></extra>"))
    chart.add_hline(y=1, line_dash="dash", annotation_text="drift threshold")
    chart.update_layout(title="How far each column moved (1 = its drift threshold; red: drifted)",
                        yaxis={"title": "severity", "range": [0, 10.5]})
    st.plotly_chart(chart, key="mon_drift_chart")
    over_time = st.session_state.get(f"{key}_time")
    if over_time is not None and not over_time.empty:
        st.plotly_chart(_drift_over_time_chart(over_time, BUCKETS[window]), key="mon_drift_time")
        span = {"5min": "five minutes", "1h": "hour", "1D": "day"}[BUCKETS[window]]
        st.caption(f"Each {span} of the window against the reference sample; one with fewer than {MIN_BUCKET_ROWS} "
                   "logged rows is left out.")
    for note in result.notes:
        st.caption(md(note))
    for skipped in r.skipped:
        st.caption(f"Not compared: {md(skipped.column)} ({md(skipped.reason)})")
    left, right = st.columns(2)
    left.download_button("Drift table (CSV)", to_safe_csv(table), file_name="drift.csv", mime="text/csv",
                         key="mon_drift_csv")
    if right.button("Prepare the HTML report", key="mon_report_go"):
        from core.monitoring.report import drift_report_html

        with st.spinner("Evidently is building the report…"):
            st.session_state[f"{key}_html"] = drift_report_html(result.reference, result.current)
    report_html = st.session_state.get(f"{key}_html")
    if report_html is not None:
        right.download_button("Drift report (HTML)", report_html, file_name="drift_report.html", mime="text/html",
                              key="mon_report_dl")
    return r.share_drifted


def _drift_over_time_chart(over_time: pd.DataFrame, bucket: str) -> go.Figure:
    """The share of drifted features per bucket against the dataset's threshold; the drifted
    columns in the hover text."""
    figure = go.Figure(go.Scatter(
        x=over_time["time"], y=over_time["share_drifted"], mode="lines+markers", name="share drifted",
        customdata=list(zip(over_time["rows"], over_time["drifted"].map(lambda c: html.escape(c) or "none"))),
        hovertemplate="%{x}: %{y:.0%} of the features drifted (%{customdata[0]} rows): %{customdata[1]}"
                      "<extra></extra>"))
    threshold = float(over_time["drift_share"].iloc[0])
    figure.add_hline(y=threshold, line_dash="dash", annotation_text=f"the dataset drifts at {threshold:.0%}")
    figure.update_layout(title="Drift over time", xaxis_title="time", showlegend=False,
                         yaxis={"title": "share of features drifted", "range": [0, 1.05], "tickformat": ".0%"})
    return _one_point_spread(figure, over_time["time"], pd.Timedelta(bucket))


# --------------------------------------------------------------------------- performance


def performance_section(row: Deployment, window: str) -> None:
    st.subheader("Performance")
    upload = st.file_uploader("Labels file (CSV with request_id or key, and label)", type=["csv"],
                              key="mon_labels")
    labels = None
    if upload is not None:
        try:
            labels = performance.labels_from_frame(pd.read_csv(upload))
        except BadInput as exc:
            show_error(exc)
        except (ValueError, UnicodeDecodeError):
            st.error("The labels file is not a readable CSV.", icon=":material/error:")
    try:
        report = performance.deployment_performance(engine(), log_engine(row), row, since=_since(window),
                                                    freq=BUCKETS[window], labels=labels)
    except BadInput as exc:
        show_error(exc)
        return
    if report.windows.empty:
        st.caption("No labelled predictions yet: send labels to the service's /feedback, or upload a file.")
        return
    metric = report.model.primary_metric
    label = METRICS[metric].label
    figure = px.line(report.windows, x="window_start", y=metric, markers=True, title=label,
                     labels={metric: label, "window_start": "window"})
    _one_point_spread(figure, report.windows["window_start"], pd.Timedelta(BUCKETS[window]))
    if metric in report.model.training:
        figure.add_hline(y=report.model.training[metric], line_dash="dash", annotation_text="training CV")
    st.plotly_chart(figure, key="mon_perf_chart")
    table = report.comparison()
    direction = table["change"] * table["greater_is_better"].map({True: 1, False: -1})
    table["vs training"] = direction.map(lambda d: "" if pd.isna(d) else "better" if d > 0 else
                                         "worse" if d < 0 else "same")
    # Written as Evaluate and the model card write scores; a change carries its sign.
    shown = scores_as_text(table, like="training_cv")
    shown["change"] = [f"+{text}" if change > 0 else text for change, text in zip(table["change"], shown["change"])]
    st.dataframe(shown, hide_index=True, key="mon_perf_table",
                 column_order=("label", "training_cv", "latest", "change", "vs training"),
                 column_config={"label": "metric", "training_cv": "training CV", "latest": "latest window"})
    of = (f" Precision, recall, F1 and PR AUC describe '{md(report.model.positive_class)}', the version's positive "
          "class." if report.model.positive_class is not None else "")
    unmatched = (f"; {report.unmatched_labels:,} labels matched no prediction of version {row.version} in the window "
                 "(they may be another version's, such as an A/B test's challenger)" if report.unmatched_labels else "")
    st.caption(f"{report.labelled_rows:,} labelled rows{unmatched}.{of}")


# --------------------------------------------------------------------------- alerts


def alerts_section(row: Deployment, drift_share: float | None) -> None:
    st.subheader("Alerts")
    with st.form("mon_rule_form", clear_on_submit=False):
        cols = st.columns(4)
        kind = cols[0].selectbox("Kind", alerts.KINDS, key="mon_rule_kind", format_func=alerts.kind_label)
        threshold = cols[1].number_input("Threshold", value=0.5, min_value=0.0, format="%.4f", key="mon_rule_threshold")
        minutes = cols[2].number_input("Window (minutes)", value=15, min_value=1, max_value=7 * 24 * 60,
                                       key="mon_rule_window")
        webhook = cols[3].text_input("Webhook URL (optional)", key="mon_rule_webhook")
        if st.form_submit_button("Add rule"):
            try:
                alerts.create_rule(engine(), deployment_id=row.id, kind=kind, threshold=float(threshold),
                                   window_minutes=int(minutes), webhook_url=webhook.strip() or None)
            except BadInput as exc:
                show_error(exc)
    if st.button("Evaluate now", key="mon_evaluate", icon=":material/notifications_active:"):
        try:
            if row.status == deploy.RUNNING:  # a fresh snapshot, as the scheduler takes before evaluating
                health.collect(engine(), row, settings())
            alerts.evaluate(engine(), row, settings(), drift_share=drift_share, log_engine=log_engine(row))
        except BadInput as exc:
            show_error(exc)
        else:
            st.rerun()  # the sidebar, drawn before this page, shows the new firing state too
    rules = alerts.list_rules(engine(), deployment_id=row.id)
    if not rules:
        st.caption("No alert rules on this deployment.")
        return
    st.dataframe(pd.DataFrame([{"id": r.id, "rule": alerts.describe(r), "state": r.state, "enabled": r.enabled,
                                "value": r.last_value, "since": r.state_since, "webhook": r.webhook_url or ""}
                               for r in rules]), hide_index=True, key="mon_rules")
    for r in rules:
        cols = st.columns([4, 1, 1])
        icon = ":material/warning:" if r.state == "firing" else ":material/check_circle:"
        cols[0].markdown(f"{icon} {md(alerts.describe(r))} — **{md(r.state)}**")
        if cols[1].button("Disable" if r.enabled else "Enable", key=f"mon_toggle_{r.id}"):
            alerts.set_enabled(engine(), r.id, not r.enabled)
            st.rerun()
        if cols[2].button("Delete", key=f"mon_delete_{r.id}"):
            alerts.delete_rule(engine(), r.id)
            st.rerun()
    history = alerts.events(engine(), deployment_id=row.id, limit=100)
    if history:
        st.caption("History")
        st.dataframe(pd.DataFrame([{"time": e.created_at, "rule": e.rule_id, "state": e.state, "value": e.value,
                                    "message": e.message, "webhook": e.notified or ""} for e in history]),
                     hide_index=True, key="mon_events")


# --------------------------------------------------------------------------- retraining


def retrain_section(row: Deployment) -> None:
    st.subheader("Retraining")
    with st.expander("Retrain with new data"):
        upload = st.file_uploader("New rows (CSV, same columns as the training data)", type=["csv"],
                                  key="mon_retrain_file")
        st.caption("The retrained challenger replaces the champion only if it beats it on the champion's "
                   "holdout by the margin, with the lower end of the confidence interval above 0.")
        cols = st.columns(2)
        margin = cols[0].number_input("Margin (in the tuning metric's units)", min_value=0.0, max_value=1.0,
                                      value=PromotionPolicy.margin, step=0.005, format="%.3f", key="mon_retrain_margin")
        confidence = cols[1].slider("Confidence", 0.80, 0.99, PromotionPolicy.confidence, step=0.01,
                                    key="mon_retrain_confidence")
        if st.button("Retrain", key="mon_retrain_go", disabled=upload is None):
            try:
                frame = pd.read_csv(upload)
                job = retrain.submit_retrain(model_name=row.model_name, new_data=frame, settings=settings(),
                                             reason="button",
                                             policy=PromotionPolicy(margin=float(margin), confidence=float(confidence)))
                st.success(f"Retraining started (process {job.pid}); its run appears below when it finishes.")
            except BadInput as exc:
                show_error(exc)
            except (ValueError, UnicodeDecodeError):
                st.error("The file is not a readable CSV.", icon=":material/error:")
    triggers_form(row)
    retrain_history(row)
    rollback_controls(row)


def triggers_form(row: Deployment) -> None:
    """The model's automatic retraining triggers, saved together on a button press."""
    name = row.model_name
    policies = triggers.get_triggers(engine(), model_name=name)
    policy = policies[0] if policies else None
    st.markdown("**Automatic retraining**")
    confirmation = st.session_state.pop(f"mon_trig_saved_{name}", None)
    if confirmation is not None:  # set by the save below, before its rerun
        st.success(confirmation, icon=":material/check_circle:")
    st.caption(f"Model {md(name)}: {md(triggers.describe(policy))}.")
    # Keys name the model: each model's switches keep their own state when the deployment changes.
    with st.form(f"mon_triggers_{name}", clear_on_submit=False):
        cols = st.columns(3)
        drift = cols[0].toggle("On a firing drift alert", value=bool(policy and policy.on_drift_alert),
                               key=f"mon_trig_drift_{name}")
        perf = cols[1].toggle("On a firing performance alert", value=bool(policy and policy.on_performance_alert),
                              key=f"mon_trig_perf_{name}")
        new_data = cols[2].toggle("On new data uploaded to the project", value=bool(policy and policy.on_new_data),
                                  key=f"mon_trig_new_data_{name}", help="An upload with the model's target column.")
        cols = st.columns([1, 3])
        watch = cols[0].toggle("Watch a folder", value=bool(policy and policy.watch_folder),
                               key=f"mon_trig_watch_{name}")
        folder = cols[1].text_input("Watched folder (full path)", value=(policy.watch_folder or "") if policy else "",
                                    key=f"mon_trig_folder_{name}",
                                    help="Each new complete CSV or Parquet file in it retrains the model once.")
        cooldown = st.number_input("Cool-down between alert-started retrains (minutes)", min_value=0.0,
                                   max_value=60.0 * 24 * 365, step=5.0,
                                   value=(policy.cooldown_s if policy else 3600.0) / 60,
                                   key=f"mon_trig_cooldown_{name}")
        if st.form_submit_button("Save triggers", icon=":material/save:"):
            try:
                saved = triggers.set_triggers(engine(), model_name=name, on_drift_alert=drift,
                                              on_performance_alert=perf, on_new_data=new_data,
                                              watch_folder=folder if watch else None, clear_watch_folder=not watch,
                                              cooldown_s=float(cooldown) * 60)
            except BadInput as exc:
                show_error(exc)
            else:  # rerun so everything above shows the saved policy; the confirmation survives it
                st.session_state[f"mon_trig_saved_{name}"] = \
                    f"Triggers saved for model {md(name)}: {md(triggers.describe(saved))}."
                st.rerun()
    if drift or perf:
        st.caption("Alert triggers retrain on the deployment's labelled recent window (predictions with ground "
                   "truth from /feedback); without labels the run is recorded as skipped.")


def retrain_history(row: Deployment) -> None:
    """Every retrain, promotion and rollback of the model with its reason and outcome."""
    runs = retrain.list_runs(engine(), model_name=row.model_name, limit=50)
    if not runs:
        st.caption("No retrain, promotion or rollback recorded for this model yet.")
        return
    st.dataframe(pd.DataFrame([{"run": r.id, "started": r.started_at, "kind": r.kind,
                                "trigger": (r.trigger or "").replace("_", " "),
                                "status": r.status, "decision": (r.decision or "").replace("_", " "),
                                "champion": r.champion_version, "challenger": r.challenger_version,
                                "metric": METRICS[r.metric].label if r.metric in METRICS else r.metric,
                                "champion score": r.champion_score,
                                "challenger score": getattr(r, "challenger_score", None),
                                "message": r.message, "note": r.note} for r in runs]),
                 hide_index=True, key="mon_runs")
    # A skipped run trained nothing: say why in full, not only in a narrow table cell.
    for r in [r for r in runs if r.decision == triggers.SKIPPED][:5]:
        trigger = md(r.trigger.replace("_", " "))
        st.caption(f"Run {r.id} ({trigger}, {r.started_at:%Y-%m-%d %H:%M} UTC) was skipped: {md(r.message)}")


def rollback_controls(row: Deployment) -> None:
    """Roll back to any earlier READY version in one click."""
    champion = registry.aliases(engine(), name=row.model_name).get("champion")
    earlier = [v.version for v in registry.list_versions(engine(), name=row.model_name)
               if v.status == "READY" and champion is not None and v.version < champion]
    if earlier:
        cols = st.columns([2, 1])
        target = cols[0].selectbox("Roll back to", sorted(earlier, reverse=True), key="mon_rollback_to",
                                   format_func=lambda v: f"version {v}")
        if cols[1].button("Roll back", key="mon_rollback_go", icon=":material/undo:"):
            try:
                change = retrain.rollback(engine(), model_name=row.model_name, to_version=int(target),
                                          settings=settings())
                st.success(md(change.message))
            except BadInput as exc:
                show_error(exc)


# --------------------------------------------------------------------------- A/B


def ab_section(row: Deployment) -> None:
    try:
        from core.deploy import abtest
        from core.monitoring import abtest as abstats
    except ImportError:
        return
    if not row.manifest_dir or not row.model_dir:
        return  # a deployment that failed before its folders existed has no routing, and so no A/B test
    try:
        state = abtest.ab_state(engine(), row.id, settings=settings())
    except BadInput:
        return
    st.subheader("A/B test")
    if state.mode == "single" or state.challenger is None:
        start_ab_form(row, state.champion.version)
        return
    share = "shadow mode" if state.mode == "shadow" else f"{state.weight_b:.0%} of keys"
    st.caption(f"Champion version {state.champion.version}, challenger version {state.challenger.version} ({share}).")
    # The log is shared by every local deployment and keeps earlier tests: count this test's rows only.
    scope = abstats.scope_of(state, row)
    if scope.since is not None:
        st.caption(f"Predictions of these two versions logged since {scope.since:%Y-%m-%d %H:%M:%S} UTC.")
    traffic = abstats.variant_traffic(log_engine(row), scope=scope)
    if traffic:
        table = pd.DataFrame([abstats.as_dict(t) for t in traffic])
        # Shares and quantiles as words, not a JSON object with 17 digits per number.
        table["predictions"] = [", ".join(f"{k} {v:.0%}" for k, v in t.class_shares.items()) if t.class_shares else
                                ", ".join(f"{k} {v:.4g}" for k, v in (t.value_quantiles or {}).items())
                                for t in traffic]
        st.dataframe(table, hide_index=True, key="mon_ab_traffic",
                     column_order=("variant", "model_version", "requests", "rows", "latency_p50_ms", "latency_p95_ms",
                                   "latency_p99_ms", "predictions"),
                     column_config={"model_version": "version",
                                    **{f"latency_{p}_ms": st.column_config.NumberColumn(f"{p} latency (ms)",
                                                                                        format="%.2f")
                                       for p in ("p50", "p95", "p99")}})
    try:
        verdict = abstats.compare_variants(log_engine(row), scope=scope)
    except BadInput as exc:
        show_error(exc)
    else:
        named = "error rate" if verdict.metric == "error_rate" else verdict.metric.upper()
        st.dataframe(pd.DataFrame([{"variant": v.variant, "version": v.model_version, "labelled predictions": v.n,
                                    named: v.value,
                                    "95% interval": "" if v.ci_low is None else f"{v.ci_low:.4f} – {v.ci_high:.4f}"}
                                   for v in (verdict.champion, verdict.challenger)]),
                     hide_index=True, key="mon_ab_performance",
                     column_config={named: st.column_config.NumberColumn(format="%.4f")})
        st.info(md(verdict.verdict), icon=":material/balance:")
    actions = (("Promote the challenger", "mon_ab_promote", abtest.promote),
               ("Stop (keep the champion)", "mon_ab_stop", abtest.stop_ab))
    for col, (label, key, action) in zip(st.columns(2), actions):
        if col.button(label, key=key):
            try:
                action(engine(), row.id, settings=settings())
                st.rerun()
            except BadInput as exc:
                show_error(exc)


def start_ab_form(row: Deployment, champion: int) -> None:
    """Put another READY version of the served model next to the champion: a share of keys, or shadow."""
    from core.deploy import abtest

    others = [v.version for v in registry.list_versions(engine(), name=row.model_name)
              if v.status == registry.READY and v.version != champion]
    if row.target not in ("local", "docker") or row.status != deploy.RUNNING:
        st.caption("A/B tests are started here on running local and Docker deployments.")
        return
    if not others:
        st.caption(f"Version {champion} serves alone. Register (or retrain) another version of "
                   f"{md(row.model_name)} to test it against the champion.")
        return
    with st.form("mon_ab_start"):
        cols = st.columns(3)
        challenger = cols[0].selectbox("Challenger", sorted(others, reverse=True), key="mon_ab_challenger",
                                       format_func=lambda v: f"version {v}")
        shadow = cols[1].toggle("Shadow mode", key="mon_ab_shadow", help="The challenger scores every request; answers come from the "
                                                    "champion only.")
        weight = cols[2].slider("Challenger's share of keys", 1, 50, 10, format="%d%%", key="mon_ab_weight",
                                help="Sticky: a request key always reaches the same version. Ignored in shadow mode.")
        if st.form_submit_button("Start the A/B test", icon=":material/call_split:"):
            try:
                with st.spinner("Loading and verifying the challenger in the service…"):
                    abtest.start_ab(engine(), row.id, challenger=f"{row.model_name}@{challenger}",
                                    settings=settings(), weight=weight / 100, shadow=shadow)
                st.rerun()
            except BadInput as exc:
                show_error(exc)


# --------------------------------------------------------------------------- the page


st.title("Monitor")
rows = deploy.list_deployments(engine())
if not rows:
    st.info("No deployment yet. Deploy a model on the **Deploy** page, send it some traffic, and watch it here.",
            icon=":material/monitoring:")
    st.stop()
by_id = {r.id: r for r in rows}
running = [r.id for r in rows if r.status == deploy.RUNNING]
chosen = st.selectbox("Deployment", list(by_id), index=list(by_id).index(running[0]) if running else 0,
                      key="mon_deployment",
                      format_func=lambda i: f"#{i} {by_id[i].model_name} v{by_id[i].version} "
                                            f"({by_id[i].target}, {by_id[i].status})")
row = by_id[chosen]
window = st.radio("Window", list(WINDOWS), index=1, horizontal=True, key="mon_window")
periodic_collect(row)
health_section(row, window)
share = drift_section(row, window)
performance_section(row, window)
alerts_section(row, share)
retrain_section(row)
ab_section(row)
