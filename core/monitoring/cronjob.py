"""A Kubernetes CronJob that retrains a model on a schedule with the CLI.

The job runs ``python -m core retrain --model NAME --watch DIR`` (every complete new file in the
watched folder retrains the model once) or, with ``data_file``, ``--data FILE --reason schedule``.
It needs what the app uses: the store (``SHIPML_DATABASE_URL``, read from a Secret, so that the
app, the job and the Monitor page share one PostgreSQL) and the workspace with its datasets and
models (a PersistentVolumeClaim). The image is a ShipML *app* image (this repository and its
requirements), not a model image.

The model name only ever appears as one element of the container's argument list (no shell runs
it) and as an annotation value; the object's name is a DNS label derived from it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.errors import BadInput
from core.files import write_text_atomically
from core.registry import validate_model_name

__all__ = ["CronOptions", "cronjob_manifest", "cronjob_name", "write_cronjob"]

MAX_NAME = 52  # the CronJob controller appends an 11-character suffix to name its Jobs (63 max)
RUN_AS_USER = 10001
FILE = "retrain-cronjob.yaml"
_SHORTCUTS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_FIELD = re.compile(r"[0-9A-Za-z*/,?-]{1,40}")
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_PATH = re.compile(r"/[A-Za-z0-9._/-]{0,250}")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class CronOptions:
    """Where and how the retraining job runs.

    Attributes:
        image: A ShipML app image (with this repository and its requirements).
        schedule: Cron syntax (five fields, or ``@daily`` and friends).
        namespace: The namespace; None: the kubeconfig context's.
        time_zone: An IANA zone for the schedule (e.g. ``Europe/Berlin``); None: the cluster's.
        watch_dir: The watched folder inside the pod.
        data_file: Retrain on this file (inside the pod) instead of watching a folder.
        workspace_claim: The PersistentVolumeClaim holding the workspace (datasets, models).
        incoming_claim: The claim holding the watched folder; None: a sub-folder of the workspace's.
        database_secret: A Secret whose key ``url`` is the store's SQLAlchemy URL.
        budget_s: Tuning seconds per retrain; None: the champion's.
        max_trials: Trial cap per retrain; None: the champion's.
        margin: The promotion margin.
        deadline_s: The job is stopped after this long.
    """

    image: str
    schedule: str = "0 3 * * *"
    namespace: str | None = None
    time_zone: str | None = None
    watch_dir: str = "/data/incoming"
    data_file: str | None = None
    workspace_claim: str = "shipml-workspace"
    incoming_claim: str | None = None
    database_secret: str = "shipml-database"
    budget_s: float | None = None
    max_trials: int | None = None
    margin: float = 0.0
    deadline_s: int = 3600
    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"

    def validate(self) -> None:
        """Raise BadInput for any value that would not make a valid, safe manifest."""
        check_schedule(self.schedule)
        if not _IMAGE.fullmatch(self.image or ""):
            raise BadInput("the image must be a container image reference, e.g. registry.example/shipml:1.4")
        if self.time_zone is not None and not _TIME_ZONE.fullmatch(self.time_zone):
            raise BadInput("the time zone must be an IANA name such as Europe/Berlin")
        for what, value in (("namespace", self.namespace), ("workspace claim", self.workspace_claim),
                            ("incoming claim", self.incoming_claim), ("database secret", self.database_secret)):
            if value is not None and not _DNS.fullmatch(value):
                raise BadInput(f"the {what} must be a Kubernetes name (lowercase letters, digits, '-')")
        for what, value in (("watched folder", self.watch_dir), ("data file", self.data_file)):
            if value is not None and (not _PATH.fullmatch(value) or ".." in value.split("/")):
                raise BadInput(f"the {what} must be an absolute path inside the pod without '..'")
        if self.deadline_s <= 0 or (self.budget_s is not None and self.budget_s <= 0) or \
                (self.max_trials is not None and self.max_trials <= 0) or self.margin < 0:
            raise BadInput("the deadline, budget and trial cap must be positive and the margin not negative")


def check_schedule(schedule: str) -> str:
    """Return ``schedule`` if it is cron syntax (five fields, or a shortcut), else raise BadInput."""
    text = schedule.strip() if isinstance(schedule, str) else ""
    fields = text.split(" ")
    if text in _SHORTCUTS or (len(fields) == 5 and all(_FIELD.fullmatch(f) for f in fields)):
        return text
    raise BadInput("the schedule must be cron syntax with five fields, e.g. '0 3 * * *', or @daily, @hourly ...")


def cronjob_name(model_name: str) -> str:
    """A DNS-1123 label for the model's retraining CronJob, e.g. ``shipml-retrain-churn``.

    When lowering and dashing changed the name, six hex digits of its hash keep names apart.
    """
    slug = _NOT_ALNUM.sub("-", str(model_name).lower()).strip("-")
    tail = "" if slug == model_name else f"-{hashlib.sha256(str(model_name).encode()).hexdigest()[:6]}"
    prefix = "shipml-retrain"
    room = MAX_NAME - len(prefix) - 1 - len(tail)
    slug = slug[:room].strip("-")
    return f"{prefix}-{slug}{tail}" if slug else f"{prefix}{tail}"


def cronjob_manifest(model_name: str, options: CronOptions) -> dict:
    """The CronJob as a dict, ready for ``yaml.safe_dump``.

    Raises:
        BadInput: An invalid model name or option (see ``CronOptions.validate``).
    """
    model_name = validate_model_name(model_name)
    options.validate()
    name = cronjob_name(model_name)
    labels = {"app.kubernetes.io/name": "shipml-retrain", "app.kubernetes.io/instance": name,
              "app.kubernetes.io/managed-by": "shipml"}
    meta = {"name": name, "labels": labels, "annotations": {"shipml.io/model-name": model_name}}
    if options.namespace:
        meta["namespace"] = options.namespace
    args = ["retrain", "--model", model_name]
    if options.data_file:
        args += ["--data", options.data_file, "--reason", "schedule"]
    else:
        args += ["--watch", options.watch_dir, "--settle", "60"]
    if options.budget_s is not None:
        args += ["--budget", f"{options.budget_s:g}"]
    if options.max_trials is not None:
        args += ["--trials", str(int(options.max_trials))]
    if options.margin:
        args += ["--margin", f"{options.margin:g}"]
    mounts = [{"name": "workspace", "mountPath": "/workspace"}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes = [{"name": "workspace", "persistentVolumeClaim": {"claimName": options.workspace_claim}},
               {"name": "tmp", "emptyDir": {}}]
    if not options.data_file:
        if options.incoming_claim:
            mounts.append({"name": "incoming", "mountPath": options.watch_dir, "readOnly": True})
            volumes.append({"name": "incoming", "persistentVolumeClaim": {"claimName": options.incoming_claim,
                                                                         "readOnly": True}})
        else:
            mounts.append({"name": "workspace", "mountPath": options.watch_dir, "subPath": "incoming",
                           "readOnly": True})
    container = {
        "name": "retrain",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "core"],
        "args": args,
        "env": [
            {"name": "SHIPML_WORKSPACE", "value": "/workspace"},
            {"name": "SHIPML_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": options.database_secret,
                                                                           "key": "url"}}},
            {"name": "OMP_NUM_THREADS", "value": "1"},
        ],
        "resources": {"requests": {"cpu": options.cpu_request, "memory": options.memory_request},
                      "limits": {"cpu": options.cpu_limit, "memory": options.memory_limit}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    spec = {
        "schedule": check_schedule(options.schedule),
        "concurrencyPolicy": "Forbid",  # two retrains of one model at once only waste the cluster
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                # Exit 2 is bad input: retrying cannot help; the next schedule tries again.
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(options.deadline_s),
                "ttlSecondsAfterFinished": 7 * 24 * 3600,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "fsGroup": RUN_AS_USER,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        },
    }
    if options.time_zone:
        spec["timeZone"] = options.time_zone
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": spec}


def write_cronjob(folder: Path, doc: dict) -> Path:
    """Write the manifest to ``folder/retrain-cronjob.yaml`` (folder created); returns the file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    return write_text_atomically(path, yaml.safe_dump(doc, sort_keys=False))
