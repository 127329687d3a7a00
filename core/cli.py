"""The headless interface: `python -m core profile|clean|import ...`.

Exit codes: 0 on success, 2 on bad input with a one-line reason on stderr.
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.config import Settings, get_settings
from core.errors import BadInput
from core.files import replaced_atomically
from core.wording import STOP_REASONS, plural, trial_state

EXIT_BAD_INPUT = 2


def _jsonable(value):
    """Frozen results (dataclasses, pydantic models, enums) as plain JSON values."""
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def _load(path: str, settings: Settings):
    from core.data.ingest import read_path

    return read_path(Path(path), settings=settings)


def _print_trial(trial) -> None:
    """One line per finished trial on stderr: a trial stopped early says why and after how many
    folds, since its score covers only those (one above the best is no contradiction)."""
    state = trial_state(trial.state, trial.stop, trial.folds)
    if trial.state == "failed" and trial.error:
        state = f"failed: {trial.error}"
    score = "" if trial.score is None else f" {trial.score:.4f}"
    print(f"trial {trial.number:>3} {trial.model:<24} {state}{score}", file=sys.stderr)


def cmd_profile(args: argparse.Namespace, settings: Settings) -> int:
    from core.data.issues import detect_issues
    from core.data.profile import profile_table

    frame = _load(args.data, settings).frame
    if args.target is not None and args.target not in frame.columns:
        raise BadInput(f"target column {args.target!r} is not in the table")
    profile = profile_table(frame, target=args.target)
    issues = detect_issues(frame, profile, target=args.target, seed=settings.random_seed)
    if args.json:
        print(json.dumps({"profile": _jsonable(profile), "issues": _jsonable(issues)}, indent=2))
        return 0
    task = f", task {profile.task.value}" if profile.task else ""
    print(f"{profile.rows} rows x {profile.columns} columns, {profile.duplicate_rows} duplicate rows{task}")
    for col in profile.column_profiles:
        print(f"  {col.name:<30} {col.kind.value:<12} missing {col.missing_share:6.1%}  unique {col.unique}")
    print(f"{len(issues)} issue(s)")
    for issue in issues:
        fix = f" [fix: {issue.fix.kind}]" if issue.fix is not None else ""
        print(f"  {issue.severity.value.upper():<6} {issue.title}{fix}")
    return 0


def cmd_clean(args: argparse.Namespace, settings: Settings) -> int:
    from core.prep.recipe import apply_recipe, recipe_from_json

    frame = _load(args.data, settings).frame
    cleaned = apply_recipe(frame, recipe_from_json(_read_text(args.recipe, "recipe")), target=args.target)
    out = Path(args.out)
    with replaced_atomically(out) as fh:
        cleaned.to_csv(fh, index=False)
    print(f"wrote {len(cleaned)} rows x {cleaned.shape[1]} columns to {out}")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from core.data.ingest import read_http, read_sql
    from core.datasets import import_table
    from core.store.db import make_engine

    if args.data:
        loaded, name = _load(args.data, settings), Path(args.data).name
    elif args.url:
        loaded, name = read_http(args.url, settings=settings), args.url.rsplit("/", 1)[-1] or "download"
    else:
        loaded, name = read_sql(args.sql_url, args.query, settings=settings), "query"
    engine = make_engine(settings.db_url)
    dataset, created = import_table(engine, loaded, project=args.project, name=args.name or name, settings=settings)
    state = "stored" if created else "already stored"
    print(f"dataset {dataset.id} ({dataset.rows} rows x {dataset.columns} columns) {state} in project {args.project!r}")
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from core.data.issues import text_type_issues, unfixed_type_issues
    from core.data.profile import Task
    from core.datasets import import_table
    from core.modeling.evaluation import threshold_note
    from core.modeling.splits import time_ordered_column
    from core.modeling.metrics import format_score
    from core.modeling.tuning import TuningConfig
    from core.prep.plan import FeaturePlan
    from core.prep.recipe import prepare_training_table, recipe_from_json
    from core.prep.steps import Recipe
    from core.registry import export_version
    from core.store.db import make_engine
    from core.training import TrainRequest, train_model

    loaded = _load(args.data, settings)
    recipe = recipe_from_json(_read_text(args.recipe, "recipe")) if args.recipe else Recipe()
    for issue in unfixed_type_issues(text_type_issues(loaded.frame, target=args.target, seed=settings.random_seed),
                                     recipe):
        if args.fix_types:  # as the Train page's button: the step joins the recipe the version records
            recipe = recipe.with_step(issue.fix)
            print(f"note: {issue.title}: converted ({issue.fix.model_dump_json()})", file=sys.stderr)
        else:
            print(f"note: {issue.title}: the model sees text until a recipe converts it; pass --fix-types, or add "
                  f"this step to the \"steps\" of a --recipe file: {issue.fix.model_dump_json()}", file=sys.stderr)
    models = tuple(m.strip() for m in (args.models or "").split(",") if m.strip())
    config = TuningConfig(models=models, search=args.search, budget_s=args.budget, max_trials=args.trials,
                          per_model_s=args.per_model, metric=args.metric or "", class_weight=args.class_weight,
                          log_target=args.log_target,
                          positive_class=args.positive_class,
                          seed=settings.random_seed)
    name = args.name or Path(args.data).stem
    time_column = args.time_column
    if time_column is None and args.cv is None and args.group_column is None:
        # As on the Train page: rows ordered by a date are split by time unless --cv says otherwise.
        X, _ = prepare_training_table(loaded.frame, recipe, target=args.target)
        if (time_column := time_ordered_column(X)) is not None:
            print(f"note: the rows are ordered by '{time_column}', so the folds split by time (--cv kfold or "
                  "stratified shuffles them)", file=sys.stderr)
    request = TrainRequest(model_name=name, target=args.target, config=config,
                           task=Task(args.task) if args.task else None, cv_kind=args.cv, n_folds=args.folds,
                           time_column=time_column, group_column=args.group_column)
    engine = make_engine(settings.db_url)
    # The training table is stored like an upload, so the version's data hash points at real data.
    import_table(engine, loaded, project=name, name=Path(args.data).name, settings=settings)

    outcome = train_model(loaded.frame, dataset_hash=loaded.content_hash, recipe=recipe, plan=FeaturePlan(),
                          request=request, engine=engine, settings=settings, on_trial=_print_trial,
                          on_stage=lambda stage: print(f"stage: {stage}", file=sys.stderr))
    out = export_version(outcome.version, settings=settings, out_dir=Path(args.out))
    report = outcome.report
    primary = next(m for m in report.metrics if m.name == report.primary_metric)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"best model: {outcome.tuning.best.model} ({plural(len(outcome.tuning.trials), 'trial')}; "
          f"{STOP_REASONS[outcome.tuning.stopped]})")
    print(f"{primary.label}: {format_score(primary.mean)} ± {format_score(primary.std, like=primary.mean)} "
          f"(baseline {format_score(primary.baseline_mean)})")
    if report.holdout:
        print(f"holdout {primary.label}: {format_score(report.holdout.get(primary.name, float('nan')))}")
    if report.threshold_metric:
        print(threshold_note(report.threshold, report.threshold_metric, report.cv.classes[1],
                             time_ordered=report.scheme.kind == "time"))
    for row in json.loads(outcome.version.metrics_json).get("per_class", []):  # as the model card lists them
        scores = ", ".join(f"{name} {format_score(row[name])}"
                           for name in ("precision", "recall", "F1"))
        print(f"class {row['class']!r}: {row['rows']:,} rows, {scores}")
    print(f"registered {outcome.version.model_name} version {outcome.version.version}; model written to {out}")
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from core.modeling.metrics import format_score, in_display_order, task_label
    from core.registry import load_exported
    from core.scoring import predict_with_refusals, target_scores
    from core.serving_io import labelling_of

    pipeline, meta = load_exported(Path(args.model))
    loaded = _load(args.data, settings)
    frame = loaded.frame
    labelling = labelling_of(meta.get("metrics"))
    predictions, refused = predict_with_refusals(pipeline, Path(args.model) / "reference.parquet", frame, labelling)
    out = Path(args.out)
    with replaced_atomically(out) as fh:
        predictions.to_csv(fh, index=False)
    print(f"wrote {len(predictions)} predictions to {out}")
    # As Score a file does: the model scored these rows, but its service would refuse them.
    for line in refused:
        print(f"note: the prediction service would refuse {line}", file=sys.stderr)
    found = target_scores(predictions, frame, target=meta["target"], task=meta["task"],
                          positive=labelling.positive,
                          trained_on=loaded.content_hash == meta.get("dataset_hash"))
    if found is not None:  # as Score a file shows them
        scores = ", ".join(f"{task_label(n, meta['task'], labelling.positive)} {format_score(found.scores[n])}"
                           for n in in_display_order(found.scores))
        print(f"against the file's '{found.target}' ({found.rows:,} rows with a value): {scores}")
        if found.trained_on:
            print("note: this file is the data the model was trained on, so these scores flatter it", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from core.modeling.worker import run_worker

    done = run_worker(args.study, args.storage, max_trials=args.trials, budget_s=args.budget)
    print(f"worker ran {done} trial(s) of study {args.study!r}")
    return 0


def cmd_job_run(args: argparse.Namespace, settings: Settings) -> int:
    from core.jobs import run_job
    from core.store.db import make_engine

    status = run_job(make_engine(settings.db_url), args.job, settings=settings)
    return 0 if status in ("DONE", "CANCELLED") else 1


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from core import deploy
    from core.store.db import make_engine

    token = None
    if args.token_file:
        token = _read_text(args.token_file, "token").strip()
    elif settings.serve_token is not None:
        token = settings.serve_token.get_secret_value()
    engine = make_engine(settings.db_url)
    row = deploy.deploy(engine, model=args.model, target=args.target, settings=settings, port=args.port,
                        token=token, base_image=args.base_image, trust_host_ca=args.trust_host_ca,
                        image=args.image, namespace=args.namespace,
                        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
                        on_log=lambda line: print(line, file=sys.stderr))
    print(f"deployment {row.id}: {row.model_name} version {row.version} on {row.target}, {row.status}")
    if row.note:
        print(row.note)
    # The last line is what scripts read: the endpoint, or for Kubernetes the manifest folder.
    print(deploy.kubernetes_dir(row) if row.target == "kubernetes" else row.endpoint)
    return 0


def cmd_deployments(args: argparse.Namespace, settings: Settings) -> int:
    from core import deploy
    from core.store.db import make_engine

    rows = deploy.list_deployments(make_engine(settings.db_url))
    if args.json:
        print(json.dumps([r.model_dump(mode="json") | {"live": deploy.probe(r)} for r in rows], indent=2))
        return 0
    if not rows:
        print("no deployments")
        return 0
    header = f"{'ID':>4}  {'TARGET':<10}  {'STATUS':<8}  {'LIVE':<4}  {'MODEL':<30}  {'VER':>4}  ENDPOINT"
    print(header)
    for r in rows:
        where = r.endpoint or (str(deploy.kubernetes_dir(r)) if r.target == "kubernetes" else "")
        name = r.model_name if len(r.model_name) <= 30 else r.model_name[:29] + "…"
        print(f"{r.id:>4}  {r.target:<10}  {r.status:<8}  {deploy.probe(r):<4}  {name:<30}  {r.version:>4}  {where}")
        if r.status == deploy.FAILED and r.error:
            print(f"      error: {r.error}")
    return 0


def cmd_undeploy(args: argparse.Namespace, settings: Settings) -> int:
    from core import deploy
    from core.store.db import make_engine

    row = deploy.stop_deployment(make_engine(settings.db_url), args.id, settings=settings,
                                 kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None)
    print(f"deployment {row.id} {row.status.lower()}")
    return 0


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    from core.monitoring.drift import detect_drift

    reference, current = _load(args.reference, settings).frame, _load(args.current, settings).frame
    result = detect_drift(reference, current)
    if not result.columns:
        raise BadInput("no shared column can be compared (only dates, free text or empty columns)")
    if args.json:
        print(json.dumps(_jsonable(result), indent=2))
        return 0
    print(f"{result.n_current} current rows against {result.n_reference} reference rows")
    print(f"{'COLUMN':<30}  {'KIND':<11}  {'METHOD':<30}  {'SCORE':>10}  {'THRESHOLD':>9}  DRIFTED")
    for c in result.columns:
        name = c.column if len(c.column) <= 30 else c.column[:29] + "…"
        print(f"{name:<30}  {c.kind:<11}  {c.method:<30}  {c.score:>10.4g}  {c.threshold:>9g}  {'yes' if c.drifted else 'no'}")
    for c in result.columns:
        if c.note:
            print(f"note {c.column}: {c.note}")
    for s in result.skipped:
        print(f"skipped {s.column}: {s.reason}")
    verdict = "dataset drift" if result.dataset_drifted else "no dataset drift"
    print(f"drifted columns: {len(result.drifted_columns)} of {len(result.columns)} "
          f"(share {result.share_drifted:.2f}, threshold {result.drift_share:g}): {verdict}")
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from core.monitoring.policy import PromotionPolicy
    from core.monitoring.retrain import retrain
    from core.store.db import make_engine

    policy = PromotionPolicy(metric=args.metric, margin=args.margin, confidence=args.confidence,
                             n_bootstrap=args.bootstrap, require_window=args.require_window)
    policy.validate()
    engine = make_engine(settings.db_url)
    if args.watch:
        from core.monitoring.watch import scan_watched_folder

        results = scan_watched_folder(engine, Path(args.watch), model_name=args.model, settings=settings,
                                      policy=policy, budget_s=args.budget, max_trials=args.trials,
                                      settle_s=args.settle)
        if args.json:
            print(json.dumps(_jsonable(results), indent=2))
        for r in results if not args.json else ():
            print(f"{r.file}: {r.status}{f' ({r.decision})' if r.decision else ''} {r.message}".rstrip())
        if not results and not args.json:
            print("no new complete files")
        return EXIT_BAD_INPUT if any(r.status == "failed" for r in results) else 0
    new_data, name = None, "new rows"
    if args.data:
        new_data, name = _load(args.data, settings).frame, Path(args.data).name
    window = _load(args.window, settings).frame if args.window else None

    out = retrain(engine, model_name=args.model, new_data=new_data, settings=settings, reason=args.reason,
                  policy=policy, budget_s=args.budget, max_trials=args.trials, window=window, new_data_name=name,
                  on_trial=_print_trial)
    if args.json:
        print(json.dumps(_jsonable(out) | {"promoted": out.promoted}, indent=2))
        return 0
    from core.modeling.metrics import METRICS

    label = METRICS[out.metric].label
    print(f"retrained {out.model_name!r} ({out.reason}): version {out.challenger_version} against champion "
          f"version {out.champion_version}, {out.new_rows} new rows")
    for c in (out.holdout, out.window):
        if c is not None:
            print(f"{c.name} ({c.rows} rows) {label}: champion {c.champion_score:.4f}, challenger "
                  f"{c.challenger_score:.4f}, difference {c.diff:+.4f} ({c.confidence:.0%} CI {c.ci_low:+.4f} "
                  f"to {c.ci_high:+.4f})")
    print(out.message)
    print(f"decision: {out.decision}")  # the last line is what scripts read
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from core.monitoring.retrain import rollback
    from core.store.db import make_engine

    change = rollback(make_engine(settings.db_url), model_name=args.model, to_version=args.to, settings=settings,
                      reason=args.reason)
    print(change.message)
    return 0


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta

    from core import deploy
    from core.monitoring import alerts, health, performance
    from core.store.db import make_engine
    from core.store.models import utcnow

    if not 0 < args.window_hours <= 24 * 90:
        raise BadInput("--window-hours must be between 0 and 2160")
    engine = make_engine(settings.db_url)
    row = deploy.get_deployment(engine, args.deployment)
    now = utcnow()
    since = now - timedelta(hours=args.window_hours)
    log_engine = health.log_engine_for(settings, deployment=row)
    try:
        now_health = health.current_health(engine, row, settings)  # a fresh scrape, stored as a snapshot
        try:
            report = performance.deployment_performance(engine, log_engine, row, since=since, freq="1D")
        except BadInput:  # neither the model folder nor the registry knows the version any more
            report = None
        drift = _monitor_drift(engine, row, settings, log_engine, since)
        evaluations = alerts.evaluate(engine, row, settings, log_engine=log_engine,
                                      drift_share=drift.get("share_drifted") if isinstance(drift, dict) else None)
    finally:
        log_engine.dispose()
    rules = {r.id: r for r in alerts.list_rules(engine, deployment_id=row.id)}
    alert_rows = [{"rule_id": e.rule_id, "kind": e.kind, "rule": alerts.describe(rules[e.rule_id]), "state": e.state,
                   "value": e.value, "changed": e.changed} for e in evaluations]
    latest = report.latest if report is not None else None
    perf = None if latest is None else {
        "window_start": str(latest["window_start"]), "window_end": str(latest["window_end"]),
        "labelled_rows": int(latest["labelled_rows"]), "primary_metric": report.model.primary_metric,
        "scores": {m: latest[m] for m in report.metrics}, "training_cv": report.model.training}
    if args.json:
        print(json.dumps(_jsonable({"deployment": {"id": row.id, "model": row.model_name, "version": row.version,
                                                   "target": row.target, "status": row.status,
                                                   "endpoint": row.endpoint},
                                    "health": now_health, "performance": perf, "drift": drift,
                                    "alerts": alert_rows}), indent=2, default=str))
        return 0
    print(f"deployment {row.id}: {row.model_name} version {row.version} ({row.target}, {row.status})")
    h = now_health
    if not h.up:
        print(f"health: down ({h.error})")
    else:
        ms = lambda v: "-" if v is None else f"{v * 1000:.1f} ms"  # noqa: E731
        rate = "-" if h.requests_per_s is None else f"{h.requests_per_s:.3g}/s"
        errors = "-" if h.error_rate is None else f"{h.error_rate:.2%}"
        refused = "-" if h.refused_rate is None else f"{h.refused_rate:.2%}"
        span = "since start" if h.window_s is None else f"over {h.window_s:.0f} s"
        print(f"health: up; {h.requests:.0f} requests {span} ({rate}), error rate {errors}, refused {refused}, "
              f"p50 {ms(h.p50_s)}, p95 {ms(h.p95_s)}, p99 {ms(h.p99_s)}, in flight {h.in_flight:.0f}")
    if perf is None:
        print("performance: no labelled predictions in the window")
    else:
        scores = ", ".join(f"{m} {v:.4g}" + (f" (training {report.model.training[m]:.4g})" if m in report.model.training
                                             else "") for m, v in perf["scores"].items() if v == v)
        print(f"performance ({perf['window_start']}, {perf['labelled_rows']} labelled rows): {scores}")
    if isinstance(drift, dict):
        print(f"drift ({drift['n_current']} rows against {drift['n_reference']} reference rows): "
              f"{len(drift['drifted_columns'])} of {drift['columns']} features drifted "
              f"(share {drift['share_drifted']:.2f})" + (f": {', '.join(drift['drifted_columns'])}"
                                                         if drift["drifted_columns"] else "")
              + {True: "; the predictions drifted", False: "; the predictions did not drift", None: ""}[
                  drift["prediction_drifted"]])
    else:
        print(f"drift: {drift}")
    if not alert_rows:
        print("alerts: no rules")
    for a in alert_rows:
        value = "no data" if a["value"] is None else f"value {a['value']:.4g}"
        print(f"alert {a['rule_id']} {a['rule']}: {a['state'].upper()} ({value})")
    return 0


def _monitor_drift(engine, row, settings: Settings, log_engine, since) -> dict | str:
    """Drift of the window's logged inputs against the version's reference sample, as the Monitor
    page computes it (without the importance ranking), or why not."""
    from core.monitoring.window import window_drift

    try:
        window = window_drift(engine, row, settings, log_engine, since=since, importance=False)
    except BadInput as exc:
        return f"not computed ({exc})"
    result, prediction = window.result, window.prediction
    return {"share_drifted": result.share_drifted, "drift_share": result.drift_share,
            "dataset_drifted": result.dataset_drifted, "columns": len(result.columns),
            "drifted_columns": list(result.drifted_columns), "n_reference": result.n_reference,
            "n_current": result.n_current,
            "prediction_drifted": None if prediction is None else prediction.drifted}


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read the {what} file: {exc.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="ShipML, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="profile a table and list its issues")
    p.add_argument("--data", required=True, help="CSV, TSV, Excel, Parquet or JSON lines file")
    p.add_argument("--target", help="the column to predict")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("clean", help="apply a cleaning recipe to a table")
    p.add_argument("--data", required=True)
    p.add_argument("--recipe", required=True, help="recipe JSON, as exported by the Clean page")
    p.add_argument("--target", help="the target column, if the recipe has target steps")
    p.add_argument("--out", required=True, help="where to write the cleaned CSV")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("import", help="store a table as a dataset of a project")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a local file")
    src.add_argument("--url", help="an http(s) URL returning CSV, JSON or Parquet")
    src.add_argument("--sql-url", help="a SQLAlchemy database URL (use with --query)")
    p.add_argument("--query", help="a SELECT statement, with --sql-url")
    p.add_argument("--project", default="default")
    p.add_argument("--name", help="the dataset's display name")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", help="train, tune and register a model")
    p.add_argument("--data", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--task", choices=["binary", "multiclass", "regression"], help="default: inferred from the target")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds for the whole training, evaluation and refit included (default 60)")
    p.add_argument("--trials", type=int, help="stop after this many trials")
    p.add_argument("--per-model", type=float, metavar="SECONDS",
                   help="cap on the time one model family's trials take together (default: the budget is shared)")
    p.add_argument("--models", help="comma-separated model names (default: every model for the task)")
    p.add_argument("--search", choices=["bayes", "random", "grid"], default="bayes")
    p.add_argument("--metric", help="the metric to optimise (default: ROC AUC, balanced accuracy or R²)")
    p.add_argument("--class-weight", action="store_true", help="weight classes by their inverse frequency")
    p.add_argument("--log-target", action="store_true",
                   help="regression: learn log(1 + target), predict in the target's units (a long-tailed target)")
    p.add_argument("--positive-class", help="binary: the class precision, recall and F1 describe and the "
                                            "threshold cuts the probability of (default: the rarer class)")
    p.add_argument("--cv", choices=["kfold", "stratified", "group", "time"], help="default: chosen from the task")
    p.add_argument("--folds", type=int, default=5,
                   help="the report's cross-validation folds (default 5); on small tables tuning uses more "
                        "(see the README)")
    p.add_argument("--time-column", help="a datetime column: use a time-series split (default: the date column "
                                          "the rows are ordered by, if any, unless --cv or --group-column is given)")
    p.add_argument("--group-column", help="rows sharing a value stay in one fold")
    p.add_argument("--recipe", help="cleaning recipe JSON")
    p.add_argument("--fix-types", action="store_true",
                   help="convert columns of dates or numbers stored as text (adds their steps to the recipe)")
    p.add_argument("--name", help="model name in the registry (default: the data file's name)")
    p.add_argument("--out", required=True, help="folder for the model, its card and metadata")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict with an exported model")
    p.add_argument("--model", required=True, help="a folder written by `train --out`")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("worker", help="join a tuning study from another process or machine")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument("--storage", required=True, help="the Optuna storage URL (SQLite file or PostgreSQL)")
    p.add_argument("--trials", type=int, help="stop after this many trials")
    p.add_argument("--budget", type=float, help="stop after this many seconds")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("deploy", help="serve a model: a local process, a Docker container or Kubernetes")
    p.add_argument("--model", required=True, help="an exported model folder, or NAME@VERSION / NAME@ALIAS")
    p.add_argument("--target", choices=["local", "docker", "kubernetes"], default="local")
    p.add_argument("--port", type=int, help="host port (local, docker; default: a free one)")
    p.add_argument("--token-file", help="a file holding the bearer token for /predict and /feedback "
                   "(default: SHIPML_SERVE_TOKEN if set)")
    p.add_argument("--base-image", help="docker: base image of the build")
    p.add_argument("--trust-host-ca", action="store_true",
                   help="docker: trust this machine's extra CA certificates in the build (TLS-intercepting proxies)")
    p.add_argument("--image", help="docker: run this image instead of building; kubernetes: the pods' image")
    p.add_argument("--namespace", help="kubernetes: the namespace")
    p.add_argument("--kubeconfig", help="kubernetes: apply the manifests with kubectl and this kubeconfig")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("deployments", help="list deployments")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_deployments)

    p = sub.add_parser("undeploy", help="stop a deployment")
    p.add_argument("id", type=int, help="the deployment id (see `deployments`)")
    p.add_argument("--kubeconfig", help="kubernetes: delete the applied objects with this kubeconfig")
    p.set_defaults(func=cmd_undeploy)

    p = sub.add_parser("drift", help="compare a current table with a reference table, column by column")
    p.add_argument("--reference", required=True, help="the baseline table (e.g. reference.parquet of a model)")
    p.add_argument("--current", required=True, help="the table to check")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_drift)

    p = sub.add_parser("retrain", help="retrain a model with new rows; promote it only if it is better")
    p.add_argument("--model", required=True, help="the registered model name")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="new labelled rows (CSV, Parquet, ...); without it: the champion's own data")
    src.add_argument("--watch", help="a folder: retrain once on each complete new CSV/Parquet file in it")
    p.add_argument("--window", help="a labelled recent window to compare the models on as well")
    p.add_argument("--budget", type=float, help="tuning seconds (default: the champion's)")
    p.add_argument("--trials", type=int, help="trial cap (default: the champion's)")
    p.add_argument("--metric", help="the metric compared (default: the one the model was tuned on)")
    p.add_argument("--margin", type=float, default=0.0, help="smallest improvement that promotes (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the interval (default 0.95)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--require-window", action="store_true", help="never promote without --window")
    p.add_argument("--reason", default="cli",
                   choices=["button", "cli", "drift_alert", "performance_alert", "new_data", "schedule"])
    p.add_argument("--settle", type=float, default=5.0, help="--watch: seconds a file must be unchanged")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("rollback", help="make an earlier version of a model the champion again")
    p.add_argument("--model", required=True)
    p.add_argument("--to", type=int, required=True, help="the version number")
    p.add_argument("--reason", default="cli", choices=["button", "cli", "performance_alert", "drift_alert"])
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("monitor", help="a deployment's health now, latest performance, drift and alert state")
    p.add_argument("--deployment", type=int, required=True, help="the deployment id (see `deployments`)")
    p.add_argument("--window-hours", type=float, default=24.0,
                   help="performance and drift look at predictions of this many hours (default 24)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("job-run", help=argparse.SUPPRESS)  # started by the app for a training job
    p.add_argument("--job", type=int, required=True)
    p.set_defaults(func=cmd_job_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input ends with exit code 2 and one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "sql_url", None) and not args.query:
        parser.error("--sql-url needs --query")
    if args.command in ("train", "worker", "job-run", "retrain"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own progress lines say enough
    try:
        return args.func(args, get_settings())
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
