"""The FastAPI application: routes, limits, authentication and metrics around one served model.

Start-up never blocks: the model is loaded and hash-verified in a background thread while
``/health/live`` already answers; ``/health/ready`` turns 200 only when the model and the
prediction log are both usable. A model that fails verification is never loaded and the
service stays alive and not ready, so an orchestrator can see and report why.

Limits on ``/predict``, checked in this order, each answering at once:

* authentication (when a token is configured): 401;
* readiness: 503 with ``Retry-After``;
* concurrency: more than ``serve_max_concurrency`` requests in progress gives 503 with
  ``Retry-After`` immediately; nothing queues beyond the limit;
* body size (``Content-Length`` first, then the bytes actually read) and row count: 413;
* the schema: 422 with a field-level list;
* the time the prediction takes: 504 after ``serve_timeout_s``. A prediction that overruns
  keeps its concurrency slot until it really ends, so stuck work cannot pile up unbounded.

Error bodies are JSON ``{"error", "detail", "request_id"}`` (plus ``errors`` for 422): no
traceback, file path, SQL or submitted value.

Two versions can serve one endpoint (``core.serving.routing``): an A/B split by sticky key
hashing, or shadow mode, where the challenger scores every request on a thread of its own after
the champion's answer is sent. Every response names the version that produced it
(``model.version``, ``X-Model-Version``, ``X-Model-Variant``). ``POST /admin/routing`` (or
SIGHUP) re-reads the routing file, loads and verifies the new models, then swaps the routing in
one assignment; requests in progress finish on the models they started with.
"""
from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import math
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from core.config import Settings
from core.errors import BadInput
from core.serving import metrics
from core.serving.model import LoadedModel, Predictions, load_model
from core.serving.predlog import LoggedRequest, PredictionLog
from core.serving.routing import SHADOW, Routing, RoutingSpec, read_spec
from core.serving.schema import FieldError, InputSchema, SchemaError, TooManyRows

log = logging.getLogger("shipml.serving")

_DECODE = msgspec.json.Decoder().decode
_ENCODE = msgspec.json.Encoder(enc_hook=lambda v: _jsonable(v)).encode
ENDPOINTS = frozenset({"/predict", "/feedback", "/health/live", "/health/ready", "/metrics", "/version",
                       "/schema", "/openapi.json", "/docs", "/admin/routing"})
INLINE_ROWS = 8  # fast-path requests this small run on the event loop: a thread hop costs more
MAX_KEY_CHARS = 200
MAX_FEEDBACK_ITEMS = 10_000
LOG_RETRY_S = 5.0
SHADOW_QUEUE = 1000  # shadow predictions waiting beyond this are skipped (and counted), never queued


class ApiError(Exception):
    """An error answered as JSON with a status code; ``kind`` feeds ``shipml_errors_total``."""

    def __init__(self, status: int, kind: str, detail: str, *, errors: list[FieldError] | tuple = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail
        self.errors = tuple(errors)
        self.headers = headers or {}


@dataclass
class Service:
    """The mutable state of one running service (one per app)."""

    settings: Settings
    spec: RoutingSpec  # what to serve at start (the routing file, when given, replaces it)
    log_url: str
    routing_file: Path | None = None
    compile_trees: bool = True  # LightGBM: switch to compiled trees once ready (core.serving.accel)
    routing: Routing | None = None  # replaced whole on a reload, never changed in place
    predlog: PredictionLog | None = None
    failure: str | None = None  # why the service can never become ready
    waiting_for: str = "loading the model"
    active: int = 0  # /predict requests holding a concurrency slot
    executor: ThreadPoolExecutor | None = None
    shadow_executor: ThreadPoolExecutor | None = None
    shadow_pending: int = 0
    loop: asyncio.AbstractEventLoop | None = None  # predictions run here (small) or on the executor
    _ready: threading.Event = None  # type: ignore[assignment]
    _stop: threading.Event = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._ready, self._stop = threading.Event(), threading.Event()
        self._reload_lock = threading.Lock()
        self._shadow_lock = threading.Lock()

    @property
    def model(self) -> LoadedModel | None:
        """The champion: the model that answers unless a split sends a request elsewhere."""
        routing = self.routing
        return routing.champion if routing is not None else None

    @property
    def model_dir(self) -> Path:
        return self.spec.champion

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until ready (tests and the CLI); False on timeout or a permanent failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.failure is None:
            if self._ready.wait(0.05):
                return True
        return self._ready.is_set()

    def start(self) -> None:
        threading.Thread(target=self._load, name="shipml-load", daemon=True).start()

    def _load_one(self, folder: Path, cache: dict[tuple[str, str], LoadedModel]) -> LoadedModel:
        """A model folder loaded and hash-verified, reusing one already loaded from the same
        folder with the same sha256 (a promotion only re-labels the loaded challenger)."""
        try:
            sha = json.loads((Path(folder) / "model.json").read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            sha = None
        known = cache.get((str(folder), str(sha)))
        if known is not None:
            return known
        s = self.settings
        return load_model(folder, extra_columns=s.serve_extra_columns,
                          unseen_categories=s.serve_unseen_categories, fast_max_rows=s.serve_fastpath_max_rows)

    def _build(self, spec: RoutingSpec) -> Routing:
        """Load and verify every model of ``spec`` (raises BadInput when one cannot be served)."""
        cache: dict[tuple[str, str], LoadedModel] = {}
        current = self.routing
        if current is not None:
            for path, m in ((self.spec.champion, current.champion), (self.spec.challenger, current.challenger)):
                if path is not None and m is not None:
                    cache[(str(path), m.sha256)] = m
        champion = self._load_one(spec.champion, cache)
        challenger = self._load_one(spec.challenger, cache) if spec.challenger is not None else None
        if challenger is not None and challenger.is_classifier != champion.is_classifier:
            raise BadInput("the champion and the challenger must solve the same task")
        return Routing(champion=champion, challenger=challenger, weight_b=spec.weight_b, shadow=spec.shadow)

    def _install(self, spec: RoutingSpec, routing: Routing) -> None:
        """Swap in a verified routing: one assignment; requests in progress keep the old one."""
        self.spec, self.routing = spec, routing
        metrics.MODEL_INFO.clear()
        for m in (routing.champion, routing.challenger):
            if m is not None:
                metrics.MODEL_INFO.labels(m.name, str(m.version), m.task, m.sha256).set(1)
                if self.compile_trees:  # in the background: the booster answers meanwhile
                    m.accelerate(self.settings.workspace / "serving" / "compiled")
        if self.predlog is not None:  # feedback rows carry the champion's version
            self.predlog.model_name, self.predlog.model_version = routing.champion.name, routing.champion.version

    def reload(self) -> dict[str, Any]:
        """Re-read the routing file, load and verify its models, then swap (one at a time).

        Raises:
            BadInput: No routing file, or a model in it cannot be served; the old routing stays.
        """
        if self.routing_file is None:
            raise BadInput("this service was started without a routing file")
        if not self.ready:
            raise BadInput("the service is not ready yet")
        with self._reload_lock:
            spec = read_spec(self.routing_file)
            routing = self._build(spec)
            self._install(spec, routing)
        log.info("routing now %s: champion version %s%s", routing.mode, routing.champion.version,
                 f", challenger version {routing.challenger.version}" if routing.challenger else "")
        return routing.describe()

    def _load(self) -> None:
        try:
            if self.routing_file is not None:
                self.spec = read_spec(self.routing_file)
            routing = self._build(self.spec)
            model = routing.champion
        except BadInput as exc:
            self.failure = str(exc)
            log.error("the model cannot be served: %s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - stay alive and report, never crash-loop
            self.failure = f"the model could not be loaded ({type(exc).__name__})"
            log.error("the model cannot be served: %s", type(exc).__name__)
            return
        self._install(self.spec, routing)
        if self.loop is not None:  # the model's native libraries are loaded now: limit them
            self.loop.call_soon_threadsafe(one_thread)
        self.waiting_for = "opening the prediction log"
        while not self._stop.is_set():  # feedback needs the log database even if predictions skip it
            try:
                self.predlog = PredictionLog(self.log_url, model_name=model.name, model_version=model.version)
                break
            except Exception as exc:  # noqa: BLE001 - retried; the URL is never logged (it may hold a password)
                self.waiting_for = f"the prediction log database cannot be opened ({type(exc).__name__}); retrying"
                log.warning("prediction log unavailable (%s); retrying in %.0f s", type(exc).__name__, LOG_RETRY_S)
                self._stop.wait(LOG_RETRY_S)
        if not self._stop.is_set():
            _freeze_heap()
            self._ready.set()
            log.info("ready: %s version %s", model.name, model.version)

    def close(self) -> None:
        self._stop.set()
        routing = self.routing
        for m in (routing.champion, routing.challenger) if routing is not None else ():
            if m is not None:
                m.stop_accelerating()
        for executor in (self.executor, self.shadow_executor):
            if executor is not None:
                executor.shutdown(wait=True)
        if self.predlog is not None:
            self.predlog.close()


def _freeze_heap() -> None:
    """Exclude what is loaded by now (libraries, the model) from every later garbage collection.

    A full collection walks every tracked object; with the model and its libraries loaded that is
    a large heap, and requests whose objects outlive a few collections (the prediction log holds
    each request's values until its writer runs) trigger full collections regularly. Measured on
    single rows at concurrency 8 (churn model): with the log on the request thread spent 530-570
    µs of CPU per request against 495-505 µs with it off; frozen, both 485-565 µs, and the log
    costs only its own thread's ~30 µs. Objects loaded later (a reloaded model) are not frozen.
    """
    gc.collect()
    gc.freeze()


def one_thread() -> None:
    """One OpenMP/BLAS thread for the calling thread's predictions.

    Single-row latency suffers from waking a thread pool, and on a small machine several pools
    compete for the same cores. OpenMP's setting is per thread, so this runs on every thread
    that predicts: the event loop (once the model is loaded) and each worker as it starts
    (workers start only with the first large request, after loading).
    """
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # noqa: BLE001 - only a speed setting, never a reason to fail
        pass


def create_app(model_dir: Path, settings: Settings, *, log_url: str | None = None,
               challenger_dir: Path | None = None, weight_b: float = 0.0, shadow: bool = False,
               routing_file: Path | None = None, compile_trees: bool = True) -> FastAPI:
    """The prediction service for the exported model in ``model_dir`` (and an optional challenger).

    Args:
        model_dir: A folder written by ``core.registry.export_version``: the champion.
        settings: Limits, policies, token and log location (the ``serve_*`` fields).
        log_url: SQLAlchemy URL of the prediction log; default ``settings.serve_log_db_url``.
        challenger_dir: A second model folder: gets a share ``weight_b`` of the keys, or with
            ``shadow`` scores every request without answering.
        weight_b: The challenger's share of traffic (0-1) in a split.
        shadow: Shadow mode instead of a split.
        routing_file: A routing file (``core.serving.routing``); when given it decides what is
            served, at start and on every ``POST /admin/routing`` or SIGHUP.
        compile_trees: Compile LightGBM trees in the background (cached under the workspace)
            and switch to them once proven equal; the booster answers until then or if it fails.

    Raises:
        BadInput: Inconsistent routing arguments (e.g. a weight without a challenger).
    """
    spec = RoutingSpec(champion=Path(model_dir), challenger=Path(challenger_dir) if challenger_dir else None,
                       weight_b=weight_b if not shadow else 0.0, shadow=shadow)
    service = Service(settings=settings, spec=spec, log_url=log_url or settings.serve_log_db_url,
                      routing_file=Path(routing_file) if routing_file else None, compile_trees=compile_trees)
    token = settings.serve_token.get_secret_value().encode() if settings.serve_token else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.executor = ThreadPoolExecutor(max_workers=min(settings.serve_max_concurrency, 32),
                                              thread_name_prefix="shipml-predict", initializer=one_thread)
        service.shadow_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipml-shadow",
                                                     initializer=one_thread)
        service.loop = asyncio.get_running_loop()
        _on_sighup(service)
        service.start()
        try:
            yield
        finally:
            # uvicorn has already drained in-flight requests; write what the log still holds.
            await asyncio.get_running_loop().run_in_executor(None, service.close)

    app = FastAPI(title="ShipML prediction service", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.service = service

    def authorize(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        # compare_digest on bytes: constant time for equal lengths, and never logs or returns it.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
            raise ApiError(401, "unauthorized", "a valid bearer token is required",
                           headers={"WWW-Authenticate": "Bearer"})

    def ready_model() -> LoadedModel:
        if not service.ready or service.model is None:
            raise ApiError(503, "not_ready", "the model is not ready", headers={"Retry-After": "1"})
        return service.model

    # ------------------------------------------------------------------ health and info

    @app.get("/health/live", tags=["health"])
    def live() -> dict:
        """The process is up and answering."""
        return {"status": "live"}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready"}})
    def ready() -> Response:
        """200 once the model is loaded, hash-verified and the prediction log is open.

        The body names the process, so whoever started the service can tell its answer from
        that of another service which took the same port first.
        """
        if service.ready and service.model is not None:
            m = service.model
            return _json(200, {"status": "ready", "model": m.name, "version": m.version, "pid": os.getpid()})
        reason = service.failure or service.waiting_for
        return _json(503, {"status": "not ready", "reason": reason}, {"Retry-After": "5"})

    @app.get("/metrics", tags=["health"])
    def prometheus() -> Response:
        """Prometheus metrics (text format)."""
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    @app.get("/version", tags=["model"], responses={503: {"description": "Not ready"}})
    def version() -> Response:
        """The served model's name, version, task, hashes and, for a binary model, how it labels
        rows (its decision threshold on the positive class's probability)."""
        m = ready_model()
        keys = ("name", "version", "task", "target", "model_family", "sha256", "dataset_hash", "created_at", "format")
        body = {k: m.info.get(k) for k in keys}
        body |= {"decision_threshold": m.threshold, "positive_class": m.positive_class}
        body["predictor"] = m.predictor  # fast path or Pipeline; for LightGBM, booster or compiled trees
        return _json(200, body)

    @app.get("/schema", tags=["model"], responses={503: {"description": "Not ready"}})
    def schema() -> Response:
        """The request schema: columns, types, categories, policies and limits."""
        m = ready_model()
        body = {"model": {"name": m.name, "version": m.version, "task": m.task},
                "classes": [str(c) for c in m.classes] if m.is_classifier else None,
                **m.schema.describe(),
                "limits": {"max_rows": settings.serve_max_rows, "max_body_bytes": _max_body(settings),
                           "timeout_s": settings.serve_timeout_s}}
        return _json(200, body)

    # ------------------------------------------------------------------ predict

    @app.post("/predict", tags=["model"], openapi_extra={"x-shipml-body": "predict"},
              responses=_ERROR_RESPONSES)
    async def predict(request: Request) -> Response:
        """Predict one or many rows sent as JSON (``{"rows": [...]}`` or one object) or CSV."""
        request_id = request.state.request_id
        started = time.perf_counter()
        authorize(request)
        ready_model()
        routing = service.routing  # read once: a swap during this request does not affect it
        if service.active >= settings.serve_max_concurrency:
            raise ApiError(503, "overloaded", "too many requests in progress; retry shortly",
                           headers={"Retry-After": "1"})
        service.active += 1
        held = True
        try:
            body = await _read_body(request, _max_body(settings))
            kind = _content_kind(request)
            request_key = request.headers.get("x-request-key")
            if request_key is not None and len(request_key) > MAX_KEY_CHARS:
                raise ApiError(422, "schema", "the request key is too long",
                               errors=[FieldError("X-Request-Key", f"at most {MAX_KEY_CHARS} characters", "longer")])
            job = _Job(routing, body, kind, request_key, settings.serve_max_rows, request_id=request_id)
            inline = _inline_rows(routing)
            if inline and len(body) < 64 * 1024 and job.small(inline):
                outcome = job.run()
            else:
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(service.executor, job.run)
                try:
                    outcome = await asyncio.wait_for(asyncio.shield(future), settings.serve_timeout_s)
                except TimeoutError:
                    # The worker cannot be interrupted: it keeps the slot until it really ends.
                    held = False
                    future.add_done_callback(lambda f: _release(service, f))
                    raise ApiError(504, "timeout", f"the prediction took longer than {settings.serve_timeout_s:g} s")
        finally:
            if held:
                _release(service)
        variant, model, inputs, key, keys, result = outcome
        latency = time.perf_counter() - started
        payload = _prediction_body(request_id, model, result)
        _count_predictions(model, result)
        if service.predlog is not None and settings.serve_log_predictions:
            # Only references: the log's own thread turns them into JSON later.
            service.predlog.submit(LoggedRequest(
                request_id=request_id, created_at=datetime.now(timezone.utc), latency_ms=latency * 1000,
                key=key, keys=keys, inputs=inputs, predictions=result.values, proba=result.proba,
                classes=result.classes, model_name=model.name, model_version=model.version, variant=variant))
        if routing.shadow and routing.challenger is not None:
            _shadow(service, routing.challenger, body, kind, request_key, request_id)
        return Response(payload, media_type="application/json",
                        headers={"X-Model-Version": str(model.version), "X-Model-Variant": variant})

    # ------------------------------------------------------------------ routing (A/B, shadow)

    # Not in /openapi.json: an operator's endpoint, not part of the prediction API clients use.
    @app.get("/admin/routing", tags=["admin"], include_in_schema=False, responses={401: {"description": "A bearer token is required"},
                                                            503: {"description": "Not ready"}})
    def get_routing(request: Request) -> Response:
        """What is served: mode (single, split, shadow), weights and each variant's version."""
        authorize(request)
        ready_model()
        return _json(200, service.routing.describe())

    @app.post("/admin/routing", tags=["admin"], include_in_schema=False, responses={401: {"description": "A bearer token is required"},
                                                             409: {"description": "The routing was not changed"}})
    async def reload_routing(request: Request) -> Response:
        """Re-read the routing file, load and verify its models, then swap them in at once.

        Nothing is taken from the request but the token: the routing file (written by whoever
        deployed the service) names the model folders. Answers once the new routing serves.
        """
        authorize(request)
        try:
            described = await asyncio.get_running_loop().run_in_executor(None, service.reload)
        except BadInput as exc:
            raise ApiError(409, "routing", str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the old routing keeps serving
            log.error("routing reload failed (%s)", type(exc).__name__)
            raise ApiError(409, "routing", "a model in the routing file could not be loaded") from None
        return _json(200, described)

    # ------------------------------------------------------------------ feedback

    @app.post("/feedback", tags=["model"], openapi_extra={"x-shipml-body": "feedback"},
              responses=_ERROR_RESPONSES)
    async def feedback(request: Request) -> Response:
        """Ground-truth labels for earlier predictions, by request id (and row) or by key."""
        authorize(request)
        model = ready_model()
        body = await _read_body(request, _max_body(settings))
        if _content_kind(request) != "json":
            raise ApiError(415, "schema", "send feedback as application/json")
        items = _feedback_items(_parse_json(body), model)
        stored = 0
        if service.predlog is not None:
            loop = asyncio.get_running_loop()
            stored = await loop.run_in_executor(None, service.predlog.add_feedback, items)
        metrics.FEEDBACK.labels(str(model.version)).inc(len(items))
        return _json(200, {"stored": stored, "request_id": request.state.request_id})

    # ------------------------------------------------------------------ OpenAPI

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version="1", routes=app.routes,
                          description="Predictions from one ShipML model version.")
        model = service.model if service.ready else None
        _fill_bodies(doc, model, settings)
        if token is not None:
            doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path in ("/predict", "/feedback"):
                doc["paths"][path]["post"]["security"] = [{"bearer": []}]
        if model is not None:
            app.openapi_schema = doc  # the schema is final once the model is known
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_Observe)
    return app


# ---------------------------------------------------------------------- the work of one request


def _on_sighup(service: Service) -> None:
    """SIGHUP re-reads the routing file (where a signal handler can be installed: the main thread)."""
    loop = service.loop

    def reload() -> None:
        try:
            service.reload()
        except Exception as exc:  # noqa: BLE001 - the old routing keeps serving
            log.error("routing reload on SIGHUP failed: %s", exc if isinstance(exc, BadInput) else type(exc).__name__)

    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload))
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        pass  # not the main thread (in-process tests): POST /admin/routing still works


def _inline_rows(routing: Routing) -> int:
    """Requests up to this many JSON rows run on the event loop (0: never); every model a request
    may reach needs a fast path for that."""
    served = [routing.champion] if routing.challenger is None or routing.shadow else [routing.champion, routing.challenger]
    if any(m.fast is None for m in served):
        return 0
    return min(INLINE_ROWS, *(m.fast_max_rows for m in served))


def _shadow(service: Service, model: LoadedModel, body: bytes, kind: str, request_key: str | None,
            request_id: str) -> None:
    """Score the request with the shadow model on its own thread; the caller has its answer."""
    version = str(model.version)
    with service._shadow_lock:
        if service.shadow_pending >= SHADOW_QUEUE or service.shadow_executor is None:
            metrics.SHADOW_ERRORS.labels(version, "skipped").inc()
            return
        service.shadow_pending += 1

    def work() -> None:
        try:
            t0 = time.perf_counter()
            _, _, inputs, key, keys, result = _Job(Routing(champion=model), body, kind, request_key,
                                                   service.settings.serve_max_rows, request_id=request_id,
                                                   shadow=True).run()
            seconds = time.perf_counter() - t0
            metrics.MODEL_LATENCY.labels(version, SHADOW).observe(seconds)
            if service.predlog is not None and service.settings.serve_log_predictions:
                service.predlog.submit(LoggedRequest(
                    request_id=request_id, created_at=datetime.now(timezone.utc), latency_ms=seconds * 1000,
                    key=key, keys=keys, inputs=inputs, predictions=result.values, proba=result.proba,
                    classes=result.classes, model_name=model.name, model_version=model.version, variant=SHADOW))
        except ApiError as exc:  # the shadow's schema differs from the champion's
            metrics.SHADOW_ERRORS.labels(version, "schema" if exc.kind == "schema" else "error").inc()
        except Exception as exc:  # noqa: BLE001 - a shadow failure never reaches a caller
            metrics.SHADOW_ERRORS.labels(version, "error").inc()
            log.warning("shadow prediction failed (%s), request %s", type(exc).__name__, request_id)
        finally:
            with service._shadow_lock:
                service.shadow_pending -= 1

    try:
        service.shadow_executor.submit(work)
    except RuntimeError:  # shutting down
        with service._shadow_lock:
            service.shadow_pending -= 1


class _Job:
    """Parse, route, check and predict one request's body; runs on a worker thread (or inline if tiny).

    The request's key (body ``key``, else the ``X-Request-Key`` header, else the request id)
    picks the variant; the rows are then checked against that variant's schema.
    """

    def __init__(self, routing: Routing, body: bytes, kind: str, request_key: str | None, max_rows: int, *,
                 request_id: str, shadow: bool = False) -> None:
        self.routing, self.body, self.kind, self.request_key, self.max_rows = routing, body, kind, request_key, max_rows
        self.request_id, self.shadow = request_id, shadow
        self._parsed: Any = None

    def small(self, rows: int) -> bool:
        """Whether the body holds at most ``rows`` rows (parses JSON once, kept for ``run``)."""
        if self.kind != "json":
            return False
        self._parsed = _parse_json(self.body)
        doc = self._parsed
        if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
            return len(doc["rows"]) <= rows
        return not isinstance(doc, list) or len(doc) <= rows

    def run(self) -> tuple[str, LoadedModel, Any, str | None, list[str | None] | None, Predictions]:
        """``(variant, model, inputs for the log, request key, per-row keys or None, predictions)``."""
        if self.kind == "csv":
            variant, model = self._pick(self.request_key)
            try:
                frame = model.schema.frame_from_csv(self.body, max_rows=self.max_rows)
            except TooManyRows as exc:
                raise ApiError(413, "too_large", str(exc)) from None
            except SchemaError as exc:
                raise ApiError(422, "schema", "the rows do not match the model's schema", errors=exc.errors) from None
            return variant, model, frame, self.request_key, None, _timed(model, variant, model.predict, frame)
        doc = self._parsed
        if doc is None:
            schema = _shared_schema(self.routing)
            doc = schema.decode_batch(self.body) if schema is not None else None
        if doc is None:
            doc = _parse_json(self.body)
        rows, key, keys = _rows_and_keys(doc, self.request_key, self.max_rows)
        variant, model = self._pick(key)
        try:
            columns, received = model.schema.check_records(rows)
        except SchemaError as exc:
            raise ApiError(422, "schema", "the rows do not match the model's schema", errors=exc.errors) from None
        return variant, model, received, key, keys, _timed(model, variant, model.predict_columns, columns, len(rows))

    def _pick(self, key: str | None) -> tuple[str, LoadedModel]:
        if self.shadow:
            return SHADOW, self.routing.champion
        return self.routing.pick(key or self.request_id)


def _shared_schema(routing: Routing) -> InputSchema | None:
    """The schema every model of the routing takes, or None when the variants differ (a row type
    checked against one model's schema may then be served by the other)."""
    schema = routing.champion.schema
    other = routing.challenger
    return schema if other is None or other.schema == schema else None


def _timed(model: LoadedModel, variant: str, predict: Any, *args: Any) -> Predictions:
    """Call ``predict`` and record its time per version and variant (A/B latency comparisons)."""
    t0 = time.perf_counter()
    result = predict(*args)
    if variant != SHADOW:  # the shadow thread records its own, with its variant
        metrics.MODEL_LATENCY.labels(str(model.version), variant).observe(time.perf_counter() - t0)
    return result


def _rows_and_keys(doc: Any, request_key: str | None, max_rows: int) -> tuple[list, str | None, list[str | None] | None]:
    """The rows of a JSON body, the request's key, and one key per row if ``keys`` gives them
    (a row's null falls back to the request's key)."""
    keys_field = None
    if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
        rows = doc["rows"]
        body_key = doc.get("key")
        if body_key is not None:
            if not isinstance(body_key, str) or len(body_key) > MAX_KEY_CHARS:
                raise ApiError(422, "schema", "bad key", errors=[FieldError("key", f"string of at most {MAX_KEY_CHARS} characters", _type_name(body_key))])
            request_key = body_key
        keys_field = doc.get("keys")
        unknown = set(doc) - {"rows", "key", "keys"}
        if unknown:
            raise ApiError(422, "schema", "unknown fields in the request",
                           errors=[FieldError(str(k)[:100], "rows, key or keys", "present") for k in sorted(unknown, key=str)[:20]])
    elif isinstance(doc, list):
        rows = doc
    elif isinstance(doc, dict):
        rows = [doc]
    else:
        raise ApiError(422, "schema", "send an object with \"rows\" (a list of rows) or one row object",
                       errors=[FieldError(None, "object", _type_name(doc))])
    if len(rows) > max_rows:
        raise ApiError(413, "too_large", f"at most {max_rows} rows per request")
    if not rows:
        raise ApiError(422, "schema", "send at least one row", errors=[FieldError("rows", "at least one row", "empty list")])
    if keys_field is None:
        return rows, request_key, None
    if not isinstance(keys_field, list) or len(keys_field) != len(rows) or not all(
        k is None or (isinstance(k, str) and len(k) <= MAX_KEY_CHARS) for k in keys_field
    ):
        raise ApiError(422, "schema", "\"keys\" needs one string (or null) per row",
                       errors=[FieldError("keys", f"a list of {len(rows)} strings", _type_name(keys_field))])
    return rows, request_key, [k if k is not None else request_key for k in keys_field]


def _prediction_body(request_id: str, model: LoadedModel, result: Predictions) -> bytes:
    if result.proba is not None and result.classes is not None and len(result.classes) == 2:
        c0, c1 = result.classes  # a dict literal: 30 % faster than dict(zip()) on 10,000 rows
        predictions = [{"prediction": v, "probabilities": {c0: a, c1: b}}
                       for v, (a, b) in zip(result.values, result.proba.tolist())]
    elif result.proba is not None and result.classes is not None:
        classes = result.classes
        predictions = [{"prediction": v, "probabilities": dict(zip(classes, p))}
                       for v, p in zip(result.values, result.proba.tolist())]
    else:
        predictions = [{"prediction": v} for v in result.values]
    doc = {"request_id": request_id, "model": {"name": model.name, "version": model.version},
           "predictions": predictions}
    return _ENCODE(doc)  # NaN and infinities become null


def _count_predictions(model: LoadedModel, result: Predictions) -> None:
    version = str(model.version)
    metrics.PREDICTION_ROWS.labels(version).inc(len(result.values))
    if result.classes is not None:
        counts = Counter(map(str, result.values))  # counted in C: a 10,000-row batch costs ~1 ms
        for label, n in counts.items():
            metrics.PREDICTIONS.labels(version, label).inc(n)
    else:
        histogram = metrics.PREDICTION_VALUE.labels(version)
        for v in result.values[:1000]:  # a sample of big batches is enough for a distribution
            if isinstance(v, (int, float)) and math.isfinite(v):
                histogram.observe(v)


def _feedback_items(doc: Any, model: LoadedModel) -> list[dict]:
    """Checked feedback items: ``{"request_id", "row"}`` or ``{"key"}`` (and ``"row"``), with ``"label"``."""
    if isinstance(doc, dict) and "items" in doc:
        items = doc["items"]
        if not isinstance(items, list) or not items or len(items) > MAX_FEEDBACK_ITEMS:
            raise ApiError(422, "schema", "bad feedback", errors=[FieldError("items", f"1 to {MAX_FEEDBACK_ITEMS} items", _type_name(items))])
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise ApiError(422, "schema", "bad feedback", errors=[FieldError(None, "object", _type_name(doc))])
    classes = {str(c): _jsonable(c) for c in model.classes} if model.is_classifier else None
    out, errors = [], []
    for i, item in enumerate(items):
        where = f"items[{i}]" if "items" in doc else None
        if not isinstance(item, dict):
            errors.append(FieldError(where, "object", _type_name(item)))
            continue
        unknown = set(item) - {"request_id", "row", "key", "label"}
        if unknown:
            errors += [FieldError(_join(where, str(k)[:100]), "request_id, row, key or label", "present") for k in sorted(unknown, key=str)[:5]]
            continue
        request_id, key, row = item.get("request_id"), item.get("key"), item.get("row")
        if (request_id is None) == (key is None):
            errors.append(FieldError(_join(where, "request_id"), "request_id or key (one of them)",
                                     "both" if request_id is not None else "neither"))
            continue
        if request_id is not None and not (isinstance(request_id, str) and 0 < len(request_id) <= 64):
            errors.append(FieldError(_join(where, "request_id"), "string of at most 64 characters", _type_name(request_id)))
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY_CHARS):
            errors.append(FieldError(_join(where, "key"), f"string of at most {MAX_KEY_CHARS} characters", _type_name(key)))
        if row is not None and not (type(row) is int and 0 <= row < 10_000_000):
            errors.append(FieldError(_join(where, "row"), "non-negative integer", _type_name(row)))
        if "label" not in item:
            errors.append(FieldError(_join(where, "label"), "the true label", "missing"))
            continue
        label = item["label"]
        if classes is not None:
            if isinstance(label, (dict, list)) or label is None or str(label) not in classes:
                errors.append(FieldError(_join(where, "label"), f"one of the model's {len(classes)} classes",
                                         "unknown class" if isinstance(label, (str, int, float, bool)) else _type_name(label)))
                continue
            label = classes[str(label)]
        elif type(label) not in (int, float) or not math.isfinite(label):
            errors.append(FieldError(_join(where, "label"), "number", _type_name(label)))
            continue
        out.append({"request_id": request_id, "key": key,
                    "row_index": row if row is not None else (0 if request_id is not None else None), "label": label})
    if errors:
        raise ApiError(422, "schema", "the feedback does not match the expected form", errors=errors[:50])
    return out


# ---------------------------------------------------------------------- helpers


def _release(service: Service, future: Any = None) -> None:
    service.active -= 1
    if future is not None and not future.cancelled():
        future.exception()  # retrieved, so asyncio does not warn about an unread error


def _max_body(settings: Settings) -> int:
    return int(settings.serve_max_body_mb * 1024 * 1024)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "schema", "invalid Content-Length")
        if int(declared) > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _content_kind(request: Request) -> str:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media in ("application/json", "") or media.endswith("+json"):
        return "json"
    if media in ("text/csv", "application/csv"):
        return "csv"
    raise ApiError(415, "schema", "send application/json or text/csv")


def _parse_json(body: bytes) -> Any:
    # msgspec parses a row several times faster than the json module; it is strict JSON (no NaN).
    try:
        return _DECODE(body)
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "schema", "the body is not valid JSON (UTF-8)") from None


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), "unknown")


def _join(where: str | None, name: str) -> str:
    return f"{where}.{name}" if where else name


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _json(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=_jsonable), status_code=status, media_type="application/json",
                    headers=headers)


def _request_id() -> str:
    """A new request id: 32 hex characters, the time in nanoseconds then 64 random bits.

    Time first, so ids grow: the prediction log's index on ``request_id`` is appended to rather
    than written at random places. With random (uuid4) ids every batch of log inserts touched
    pages all over that index, and the writer's cost per request grew with the log's size:
    400 single-row requests cost 6.5 ms to insert into a fresh log and 11.4 ms after 100,000,
    against 4-5 ms throughout with time-ordered ids.
    """
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def _error_response(exc: ApiError, request_id: str) -> Response:
    body: dict[str, Any] = {"error": exc.kind, "detail": exc.detail, "request_id": request_id}
    if exc.errors:
        body["errors"] = [e.to_dict() for e in exc.errors]
    return _json(exc.status, body, exc.headers)


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON"},
    401: {"description": "A bearer token is required"},
    413: {"description": "Too large: body size or row count over the limit"},
    415: {"description": "Unsupported content type"},
    422: {"description": "The rows do not match the schema: a field-level list of errors"},
    503: {"description": "Not ready, or overloaded (see Retry-After)"},
    504: {"description": "The prediction took too long"},
}


def _fill_bodies(doc: dict, model: LoadedModel | None, settings: Settings) -> None:
    """Put the request-body schemas (generated from the model) into the OpenAPI document."""
    row = model.schema.row_json_schema() if model is not None else {"type": "object"}
    max_rows = settings.serve_max_rows
    key = {"type": "string", "maxLength": MAX_KEY_CHARS}
    batch = {"type": "object", "required": ["rows"], "additionalProperties": False, "properties": {
        "rows": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}, "minItems": 1, "maxItems": max_rows},
        "key": key, "keys": {"type": "array", "items": {"anyOf": [key, {"type": "null"}]}}}}
    label: dict[str, Any] = {"type": "number"}
    if model is not None and model.is_classifier:
        label = {"enum": [_jsonable(c) for c in model.classes]}
    item = {"type": "object", "required": ["label"], "additionalProperties": False, "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "row": {"type": "integer", "minimum": 0, "maximum": 9_999_999},
        "key": {**key, "minLength": 1}, "label": label},
        "oneOf": [{"required": ["request_id"], "not": {"required": ["key"]}},
                  {"required": ["key"], "not": {"required": ["request_id"]}}]}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update({"Row": row, "PredictBatch": batch, "FeedbackItem": item, "FeedbackBatch": {
        "type": "object", "required": ["items"], "additionalProperties": False, "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackItem"},
                      "minItems": 1, "maxItems": MAX_FEEDBACK_ITEMS}}}})
    csv_columns = ",".join(model.schema.names) if model is not None else ""
    bodies = {
        "/predict": {"required": True, "content": {
            "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/PredictBatch"},
                                                      {"$ref": "#/components/schemas/Row"}]}},
            "text/csv": {"schema": {"type": "string", "description": f"A header row ({csv_columns}) then rows"}}}},
        "/feedback": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/FeedbackBatch"}, {"$ref": "#/components/schemas/FeedbackItem"}]}}}},
    }
    for path, body in bodies.items():
        operation = doc["paths"][path]["post"]
        operation["requestBody"] = body
        operation.pop("x-shipml-body", None)
    doc["paths"]["/predict"]["post"]["parameters"] = [{
        "name": "X-Request-Key", "in": "header", "required": False, "schema": key,
        "description": "A key of your own for these rows, to send feedback by later"}]


class _Observe:
    """ASGI middleware: request id, metrics, in-flight gauge, and JSON for every error.

    Plain ASGI rather than ``BaseHTTPMiddleware``, which costs far more per request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        request_id = _request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status_box = [500]
        started = False

        async def send_wrapper(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                status_box[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        metrics.IN_FLIGHT.inc()
        t0 = time.perf_counter()
        try:
            try:
                await self.app(scope, receive, send_wrapper)
            except ApiError as exc:
                metrics.ERRORS.labels(endpoint, exc.kind).inc()
                await _error_response(exc, request_id)(scope, receive, send_wrapper)
            except Exception as exc:  # noqa: BLE001 - never a traceback in a response
                log.error("internal error on %s (%s), request %s", endpoint, type(exc).__name__, request_id,
                          exc_info=True)
                metrics.ERRORS.labels(endpoint, "internal").inc()
                if not started:
                    await _error_response(ApiError(500, "internal", "internal error"), request_id)(
                        scope, receive, send_wrapper)
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.REQUESTS.labels(endpoint, str(status_box[0])).inc()
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
