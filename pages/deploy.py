"""Deploy: serve a READY model version locally, in Docker or on Kubernetes, and try it live.

All deploying is ``core.deploy``; this page only collects the options, runs ``deploy`` in a
background thread (a Docker build takes a minute, and a rerun or a page change must not cut it),
lists the deployments and talks to a live endpoint as any client would (GET /schema,
POST /predict).
"""
from __future__ import annotations

import json
import math
import re
import shlex
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from pprint import pformat
from typing import Any

import httpx
import pandas as pd
import streamlit as st

from core import deploy, registry
from core.errors import BadInput
from core.packaging import BuiltImage
from core.store.models import Deployment
from core.wording import plural
from pages.common import engine, md, settings, show_error

LOG_LINES = 2000  # build logs kept per task (a cold build writes a few hundred lines)
TASK_TTL_S = 3600  # finished tasks are forgotten after an hour
TARGET_TITLES = {"local": "Local process (no Docker needed)", "docker": "Docker container",
                 "kubernetes": "Kubernetes manifests"}
STATUS_ICON = {"STARTING": ":material/progress_activity:", "RUNNING": ":material/check_circle:",
               "STOPPED": ":material/stop_circle:", "FAILED": ":material/error:"}
_STEP = re.compile(r"^Step (\d+)/(\d+)")


def error(text: str) -> None:
    """Every error of this page, shown one way (show_error escapes it)."""
    show_error(BadInput(text))


# ---------------------------------------------------------------------------- background work


@dataclass
class Task:
    """One ``deploy`` or ``build_image`` call in a thread that outlives the script run that started it."""

    label: str
    target: str  # a deploy target, or "image" for a build only
    ref: str  # the model reference, e.g. "churn@champion"
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    deployment: Deployment | None = None
    image: BuiltImage | None = None  # a build-only task's result
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished is None


@st.cache_resource
def _tasks() -> dict[str, Task]:
    """Tasks of all sessions, keyed by a random id that only the starting session knows."""
    return {}


def _run(task: Task, store, config, options: dict[str, Any]) -> None:
    try:
        if task.target == "image":
            task.image = deploy.build_image(store, settings=config, on_log=task.log.append, **options)
        else:
            task.deployment = deploy.deploy(store, settings=config, on_log=task.log.append, **options)
    except BadInput as exc:
        task.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - the thread must always finish its task
        task.error = f"the deployment stopped on an internal error ({type(exc).__name__})"
    finally:
        task.finished = time.monotonic()


def start_task(options: dict[str, Any], label: str, *, target: str) -> str:
    """Start ``deploy(**options)`` (or ``build_image`` for target "image") in a daemon thread;
    the id goes into this session's list."""
    tasks = _tasks()
    for key in [k for k, t in tasks.items() if t.finished and time.monotonic() - t.finished > TASK_TTL_S]:
        tasks.pop(key, None)
    task_id = uuid.uuid4().hex
    task = tasks[task_id] = Task(label=label, target=target, ref=options["model"])
    threading.Thread(target=_run, args=(task, engine(), settings(), options), daemon=True,
                     name=f"deploy-{task_id[:8]}").start()
    st.session_state.setdefault("deploy_tasks", []).append(task_id)
    return task_id


def _on_deploy() -> None:
    """Button callback: runs before the script, so it may clear the token box (never shown again)."""
    s = st.session_state
    target = s["deploy_target"]
    token = (s.get("deploy_token") or "").strip() or None
    s["deploy_token"] = ""
    options: dict[str, Any] = {"model": s["deploy_ref"], "target": target, "token": token}
    if target in ("local", "docker") and s.get("deploy_port"):
        options["port"] = int(s["deploy_port"])
    if target == "docker":
        built = s.get("deploy_images", {}).get(s["deploy_ref"])
        if built is not None:
            options["image"] = built.tag  # built with the "Build image" button
        else:
            options |= _build_options()
        options["ready_timeout_s"] = 120.0  # a first container start on a busy machine
    if target == "kubernetes":
        options["namespace"] = (s.get("deploy_namespace") or "").strip() or None
        kubeconfig = (s.get("deploy_kubeconfig") or "").strip()
        options["kubeconfig"] = Path(kubeconfig).expanduser() if kubeconfig else None
    task_id = start_task(options, label=f"{s['deploy_ref']} → {target}", target=target)
    if token:  # kept in this session's server memory only, for the "Try it" form
        s.setdefault("deploy_task_tokens", {})[task_id] = token


def _build_options() -> dict[str, Any]:
    s = st.session_state
    return {"base_image": (s.get("deploy_base_image") or "").strip() or None,
            "trust_host_ca": bool(s.get("deploy_trust_ca"))}


def _on_build() -> None:
    """Button callback: build the chosen version's image now; "Deploy" then runs it."""
    ref = st.session_state["deploy_ref"]
    start_task({"model": ref, **_build_options()}, label=f"image of {ref}", target="image")


def _remember_images() -> dict[str, BuiltImage]:
    """Images built in this session, by model reference, for "Deploy" to run."""
    known = st.session_state.setdefault("deploy_images", {})
    for task_id in st.session_state.get("deploy_tasks", []):
        task = _tasks().get(task_id)
        if task is not None and task.image is not None:
            known[task.ref] = task.image
    return known


# ---------------------------------------------------------------------------- rendering helpers


def _build_progress(lines) -> tuple[float, str] | None:
    """(fraction, step line) from the last "Step N/M" line of a Docker build log."""
    for line in reversed(lines):
        if m := _STEP.match(line):
            done, total = int(m.group(1)), int(m.group(2))
            return min(1.0, done / max(total, 1)), line
    return None


def task_panel(task_id: str, task: Task) -> None:
    """One task: its progress while it runs, then its outcome and the whole log."""
    lines = list(task.log)
    elapsed = (task.finished or time.monotonic()) - task.started
    verb = ("Building", "Built") if task.target == "image" else ("Deploying", "Deployed")
    if task.running:
        with st.status(f"{verb[0]} {md(task.label)} · {elapsed:,.0f} s", state="running", expanded=True):
            progress = _build_progress(lines)
            if progress is not None and progress[0] >= 1.0 and any(line.startswith("Successfully") for line in lines):
                st.progress(1.0, text="Image built; starting the container and waiting until it is ready…")
            elif progress is not None:
                st.progress(progress[0], text=f"Building the image: {md(progress[1][:120])}")
            elif task.target in ("docker", "image"):
                st.caption("Preparing the image build…")
            else:
                st.caption("Starting the service and waiting until it is ready…")
            if lines:
                st.code("\n".join(lines[-25:]), language=None)
        return
    if task.error:
        state, title = "error", f"{verb[0]} {md(task.label)} failed after {elapsed:,.0f} s"
    else:
        state, title = "complete", f"{verb[1]} {md(task.label)} in {elapsed:,.0f} s"
    with st.status(title, state=state, expanded=bool(task.error) or task.image is not None):
        if task.error:
            error(task.error)
        if task.image is not None:
            st.markdown(f"Image `{md(task.image.tag)}` · **{task.image.size_bytes / 1e6:,.0f} MB**. "
                        "Press **Deploy** to run it.")
        row = task.deployment
        if row is not None:
            if row.endpoint:
                st.markdown(f"Deployment **#{row.id}** answers at")
                st.code(row.endpoint, language=None)
            if row.image:
                st.caption(f"Image: `{md(row.image)}`")
            if row.note:
                st.caption(md(row.note))
        if lines:
            st.caption(f"Build log ({len(lines)} lines)")
            st.code("\n".join(lines), language=None)
    if st.button("Dismiss", key=f"dismiss_{task_id}", icon=":material/close:"):
        st.session_state["deploy_tasks"].remove(task_id)
        st.rerun()


@st.fragment(run_every=1.0)
def live_task_panel(task_id: str) -> None:
    """While a task runs: its panel every second, and one full rerun when it ends."""
    task = _tasks().get(task_id)
    if task is None or not task.running:
        st.rerun()  # the whole page: the finished task and the new deployment in the list
    task_panel(task_id, task)


def _remember_tokens() -> dict[int, str]:
    """Tokens typed in this session, by deployment id (for "Try it"); never rendered."""
    by_task = st.session_state.get("deploy_task_tokens", {})
    known = st.session_state.setdefault("deploy_tokens", {})
    for task_id, token in list(by_task.items()):
        task = _tasks().get(task_id)
        if task is None or task.running:
            continue
        if task.deployment is not None:
            known[task.deployment.id] = token
        by_task.pop(task_id)
    return known


# ---------------------------------------------------------------------------- new deployment


def new_deployment_form() -> None:
    names = registry.list_model_names(engine())
    if not names:
        st.info("No model is registered yet: train one on the **Train** page.")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        return
    c = st.columns([2, 2, 3])
    name = c[0].selectbox("Model", names, key="deploy_model")
    ready = [v.version for v in registry.list_versions(engine(), name=name) if v.status == registry.READY]
    if not ready:
        c[1].selectbox("Version", ["no READY version"], disabled=True)
        st.info("This model has no READY version to deploy.")
        return
    alias_map = {a: v for a, v in registry.aliases(engine(), name=name).items() if v in ready}
    refs = [f"{name}@{alias}" for alias in sorted(alias_map)] + [f"{name}@{v}" for v in ready]

    def ref_title(ref: str) -> str:
        tag = ref.rpartition("@")[2]
        return f"{tag} (v{alias_map[tag]})" if tag in alias_map else f"v{tag}"

    c[1].selectbox("Version or alias", refs, format_func=ref_title, key="deploy_ref",
                   help="An alias (champion, challenger) is resolved to its version when deploying.")
    target = c[2].radio("Target", deploy.TARGETS, format_func=TARGET_TITLES.get, key="deploy_target")
    c = st.columns(3)
    if target != "kubernetes":
        c[0].number_input("Port (0: a free one)", min_value=0, max_value=65535, value=0, step=1, key="deploy_port")
    c[1].text_input("Bearer token (optional)", type="password", key="deploy_token", max_chars=512,
                    help="Callers of /predict and /feedback then need `Authorization: Bearer <token>`. "
                         "8-512 visible characters. It is never stored in the database nor shown again.")
    if target == "docker":
        c[2].text_input("Base image", key="deploy_base_image", placeholder="python:3.11-slim",
                        help="The image the model image builds on (empty: python:3.11-slim).")
        st.checkbox("Trust the host's extra CA certificates during the build", key="deploy_trust_ca",
                    help="For networks that intercept TLS (company proxies): the host's "
                         "/usr/local/share/ca-certificates are trusted by pip inside the build.")
    if target == "kubernetes":
        c[0].text_input("Namespace (optional)", key="deploy_namespace", max_chars=63)
        c[2].text_input("Kubeconfig file (optional)", key="deploy_kubeconfig",
                        help="With one, the manifests are applied with kubectl; without, they are only written.")
    busy = any(_tasks().get(t) is not None and _tasks()[t].running for t in st.session_state.get("deploy_tasks", []))
    built = _remember_images().get(st.session_state.get("deploy_ref", ""))
    label = {"local": "Deploy", "docker": "Deploy" if built else "Build image and deploy",
             "kubernetes": "Write manifests"}[target]
    c = st.columns([1, 1, 3])
    if target == "docker":
        c[0].button("Build image", icon=":material/construction:", on_click=_on_build, disabled=busy,
                    key="deploy_build", help="Builds the image only (runs in the background; you may leave the "
                                             "page meanwhile); Deploy then runs it.")
        if built is not None:
            c[2].caption(f"Built: `{md(built.tag)}` · {built.size_bytes / 1e6:,.0f} MB")
    c[1 if target == "docker" else 0].button(
        label, type="primary", icon=":material/rocket_launch:", on_click=_on_deploy, disabled=busy, key="deploy_go",
        help="Runs in the background: you may leave the page meanwhile." if target == "docker" else None)


# ---------------------------------------------------------------------------- deployments list


def deployments_list(rows: list[Deployment]) -> dict[int, str]:
    """The table of deployments with a live probe; returns the probe result by id."""
    live = {r.id: deploy.probe(r) for r in rows}
    table = pd.DataFrame({
        "id": [r.id for r in rows],
        "status": [r.status for r in rows],
        "live": [live[r.id] for r in rows],
        "target": [r.target for r in rows],
        "model": [f"{r.model_name}@v{r.version}" for r in rows],
        "endpoint": [r.endpoint or "" for r in rows],
        "token": ["yes" if r.auth else "no" for r in rows],
        "created": [r.created_at for r in rows],
        "note / error": [r.error or r.note or "" for r in rows],
    })
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"endpoint": st.column_config.LinkColumn("endpoint"),
                                "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")})
    return live


def deployment_panel(row: Deployment, live: str) -> None:
    """One active deployment (or Kubernetes manifests): endpoint, stop, logs, manifests."""
    with st.container(border=True):
        st.markdown(f"{STATUS_ICON.get(row.status, '')} **#{row.id} · {md(row.model_name)} v{row.version}** · "
                    f"{row.target} · {row.status.lower()}" + (f" · live: **{live}**" if live != "-" else ""))
        if row.endpoint:
            st.code(row.endpoint, language=None)
        folder = deploy.kubernetes_dir(row)
        if folder is not None:
            st.caption("Manifest folder (Deployment, Service, HorizontalPodAutoscaler, ConfigMap). Apply with:")
            st.code(f"kubectl apply -f {shlex.quote(str(folder))}", language="bash")
            if row.auth:
                st.caption("The pods read the token from a Secret; create it first if ShipML did not apply them.")
        if row.target != "kubernetes":
            with st.expander("Logs"):
                try:
                    text = deploy.deployment_logs(row, lines=200)
                except BadInput as exc:
                    error(str(exc))
                else:
                    st.code(text or "(no log lines yet)", language=None)
        if row.status in (deploy.RUNNING, deploy.STARTING):
            kubeconfig = None
            if row.target == "kubernetes":
                given = st.text_input("Kubeconfig to delete the objects with", key=f"stop_kubeconfig_{row.id}")
                kubeconfig = Path(given).expanduser() if given.strip() else None
            if st.button("Stop", key=f"stop_{row.id}", icon=":material/stop:"):
                try:
                    with st.spinner("Stopping…"):
                        deploy.stop_deployment(engine(), row.id, settings=settings(), kubeconfig=kubeconfig)
                except BadInput as exc:
                    error(str(exc))
                else:
                    st.rerun()


# ---------------------------------------------------------------------------- try it


@st.cache_data(ttl=60, show_spinner=False)
def _schema(endpoint: str, deployment_id: int) -> dict:
    """The live service's request schema (GET /schema); errors are raised, so never cached."""
    answer = httpx.get(f"{endpoint}/schema", timeout=5)
    answer.raise_for_status()
    return answer.json()


@st.cache_data(ttl=600, show_spinner=False)
def _sample_row(model_dir: str | None) -> dict:
    """The first training row of the served model folder, to prefill the form (empty if none)."""
    if not model_dir:
        return {}
    try:
        frame = pd.read_parquet(Path(model_dir) / "reference.parquet").head(1)
    except (OSError, ValueError):
        return {}
    return json.loads(frame.to_json(orient="records", date_format="iso"))[0] if len(frame) else {}


def _example(column: dict, sample: dict, row_schema: dict) -> Any:
    """A column's prefill: the schema's example, else the sample row's value, else a neutral one."""
    examples = (row_schema.get("properties", {}).get(column["name"], {}) or {}).get("examples") or []
    value = examples[0] if examples else sample.get(column["name"])
    if isinstance(value, float) and math.isnan(value):
        value = None
    categories = column.get("categories")
    if categories and value not in categories:
        value = str(value) if value is not None and str(value) in categories else categories[0]
    return value


def _input(column: dict, value: Any, key: str) -> Any:
    """One widget for one column, chosen by its schema type."""
    label = md(column["name"])
    kind = column.get("type")
    if column.get("categories"):
        options = list(column["categories"])
        return st.selectbox(label, options, index=options.index(value) if value in options else 0, key=key)
    if kind == "boolean":
        return st.selectbox(label, [True, False], index=0 if value in (None, True) else 1, key=key)
    if kind == "integer":
        return st.number_input(label, value=None if value is None else int(value), step=1, key=key)
    if kind == "number":
        return st.number_input(label, value=None if value is None else float(value), format="%g", key=key)
    text = st.text_input(label, value="" if value is None else str(value), key=key,
                         placeholder="YYYY-MM-DD HH:MM:SS" if kind == "date-time" else None)
    return text if text != "" else None


def _show_answer(answer: httpx.Response) -> None:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code == 200 and isinstance(body, dict) and body.get("predictions"):
        first = body["predictions"][0]
        c = st.columns([1, 2])
        c[0].metric("Prediction", str(first.get("prediction")))
        model = body.get("model") or {}
        c[0].caption(f"Request id `{md(body.get('request_id', ''))}` · model {md(model.get('name', ''))} "
                     f"v{md(model.get('version', ''))}")
        if first.get("probabilities"):
            probabilities = pd.DataFrame({"class": [str(k) for k in first["probabilities"]],
                                          "probability": list(first["probabilities"].values())})
            c[1].bar_chart(probabilities, x="class", y="probability", horizontal=True, height=220)
        return
    detail = body.get("detail") if isinstance(body, dict) else None
    if answer.status_code == 401:
        error("The endpoint wants a bearer token: enter the token it was deployed with.")
    elif answer.status_code == 422:
        error(f"The service refused the row: {detail or 'it does not match the schema'}.")
    else:
        error(f"The service answered {answer.status_code}: {detail or 'no details'}.")
    if isinstance(body, dict) and body.get("errors"):
        errors = pd.DataFrame(body["errors"])
        st.dataframe(errors.astype(str), hide_index=True, width="stretch")
    if isinstance(body, dict) and body.get("request_id"):
        st.caption(f"Request id `{md(body['request_id'])}`")


def code_examples(endpoint: str, row: dict, auth: bool) -> None:
    """Copyable curl and Python calls of the endpoint with one row; the token as a placeholder."""
    body = json.dumps({"rows": [row]})
    auth_header = ' \\\n  -H "Authorization: Bearer $SHIPML_TOKEN"' if auth else ""
    curl = (f"curl -s -X POST {shlex.quote(endpoint + '/predict')} \\\n  -H 'Content-Type: application/json'"
            f"{auth_header} \\\n  -d {shlex.quote(body)}")
    headers = ', headers={"Authorization": f"Bearer {os.environ[\'SHIPML_TOKEN\']}"}' if auth else ""
    python = (("import os\n\n" if auth else "") + "import httpx\n\n"
              f"row = {pformat(row, sort_dicts=False, width=96)}\n"
              f"answer = httpx.post({endpoint + '/predict'!r}, json={{\"rows\": [row]}}{headers}, timeout=10)\n"
              "answer.raise_for_status()\n"
              "print(answer.json()[\"predictions\"][0])\n")
    curl_tab, python_tab = st.tabs(["curl", "Python (httpx)"])
    curl_tab.code(curl, language="bash", wrap_lines=True)
    python_tab.code(python, language="python")
    if auth:
        st.caption("Set `SHIPML_TOKEN` to the token the deployment was given.")


def try_it(rows: list[Deployment], live: dict[int, str], tokens: dict[int, str]) -> None:
    running = [r for r in rows if r.status == deploy.RUNNING and r.endpoint and live.get(r.id) == "up"]
    if not running:
        st.caption("Deploy a model (or wait until one is up) to try it here.")
        return
    chosen = st.selectbox("Deployment", [r.id for r in running], key="try_deployment",
                          format_func=lambda i: next(f"#{r.id} · {r.model_name} v{r.version} · {r.endpoint}"
                                                     for r in running if r.id == i))
    row = next(r for r in running if r.id == chosen)
    try:
        schema = _schema(row.endpoint, row.id)
    except (httpx.HTTPError, ValueError):
        error(f"The endpoint {row.endpoint} did not give its schema (GET /schema); is it still up?")
        return
    columns = [c for c in schema.get("columns", []) if isinstance(c, dict) and "name" in c]
    sample = _sample_row(row.model_dir)
    row_schema = schema.get("row") or {}
    with st.form(f"try_{row.id}"):
        st.caption(f"One row for {md(row.model_name)} v{row.version}: {plural(len(columns), 'column')}, "
                   "prefilled from a training row.")
        values: dict[str, Any] = {}
        grid = st.columns(3)
        for i, column in enumerate(columns):
            with grid[i % 3]:
                values[column["name"]] = _input(column, _example(column, sample, row_schema), key=f"try_{row.id}_{i}")
        typed = None
        if row.auth:
            typed = st.text_input("Bearer token", type="password", key=f"try_token_{row.id}",
                                  help="Empty: the token given when deploying in this session, if any.")
        submitted = st.form_submit_button("Predict", type="primary", icon=":material/send:")
    if submitted:
        token = (typed or "").strip() or tokens.get(row.id)
        headers = {"Authorization": f"Bearer {token}"} if row.auth and token else {}
        try:
            answer = httpx.post(f"{row.endpoint}/predict", json={"rows": [values]}, headers=headers, timeout=15)
        except httpx.HTTPError as exc:
            error(f"The endpoint {row.endpoint} did not answer ({type(exc).__name__}).")
        else:
            _show_answer(answer)
    st.markdown("**Call it from your code**")
    code_examples(row.endpoint, values, row.auth)


# ---------------------------------------------------------------------------- the page

st.title("Deploy")
st.caption("A READY model version becomes a live REST endpoint: a local process (the default, no Docker needed), "
           "a Docker container, or Kubernetes manifests. The same works headless with `python -m core deploy`.")
new_deployment_form()
for task_id in list(st.session_state.get("deploy_tasks", [])):
    task = _tasks().get(task_id)
    if task is None:
        st.session_state["deploy_tasks"].remove(task_id)
    elif task.running:
        live_task_panel(task_id)
    else:
        task_panel(task_id, task)
tokens = _remember_tokens()

all_rows = deploy.list_deployments(engine())
st.subheader("Deployments")
if not all_rows:
    st.caption("No deployment yet.")
    st.stop()
probes = deployments_list(all_rows)
active = [r for r in all_rows if r.status in (deploy.STARTING, deploy.RUNNING)]
manifests = [r for r in all_rows if r.target == "kubernetes" and r.status == deploy.STOPPED and r.note][:3]
for r in active + manifests:
    deployment_panel(r, probes[r.id])
st.subheader("Try it")
try_it(all_rows, probes, tokens)
