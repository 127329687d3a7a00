"""`python -m core retrain` and `rollback`, as a cron job or a person runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import registry
from tests.monitoring.test_retrain import MODEL, make_frame, train_champion

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIPML_WORKSPACE": str(settings.workspace), "OMP_NUM_THREADS": "1"}
    env.pop("SHIPML_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_retrain_promotes_prints_the_evidence_and_rollback_undoes_it(engine, settings, tmp_path) -> None:
    train_champion(engine, settings, make_frame(60, seed=1))
    make_frame(1500, seed=2).to_csv(tmp_path / "new.csv", index=False)
    out = run("retrain", "--model", MODEL, "--data", str(tmp_path / "new.csv"), "--trials", "1",
              "--margin", "0.02", "--bootstrap", "300", settings=settings)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "decision: promoted"
    assert "version 2 against champion version 1, 1500 new rows" in lines[0]
    holdout = next(line for line in lines if line.startswith("holdout (312 rows) ROC AUC: champion "))
    assert "challenger" in holdout and "95% CI +" in holdout
    assert "trial" in out.stderr and "Traceback" not in out.stderr
    assert registry.aliases(engine, name=MODEL) == {"champion": 2, "previous": 1}

    back = run("rollback", "--model", MODEL, "--to", "1", settings=settings)
    assert back.returncode == 0, back.stderr
    assert "Rolled back to version 1" in back.stdout
    assert registry.aliases(engine, name=MODEL) == {"champion": 1, "previous": 2}


def test_a_worse_retrain_exits_0_kept_as_challenger_with_json(engine, settings, tmp_path) -> None:
    train_champion(engine, settings, make_frame(400, seed=1))
    make_frame(600, seed=2, labels="flipped").to_csv(tmp_path / "bad.csv", index=False)
    make_frame(300, seed=9).to_parquet(tmp_path / "window.parquet", index=False)
    out = run("retrain", "--model", MODEL, "--data", str(tmp_path / "bad.csv"), "--window",
              str(tmp_path / "window.parquet"), "--trials", "1", "--bootstrap", "200", "--reason", "performance_alert",
              "--json", settings=settings)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["decision"] == "kept_as_challenger" and result["promoted"] is False
    assert result["reason"] == "performance_alert" and result["window"]["rows"] == 300
    assert result["window"]["diff"] < 0 and result["window"]["ci_high"] < 0
    assert registry.aliases(engine, name=MODEL) == {"challenger": 2, "champion": 1}


@pytest.mark.parametrize("args, message", [
    (["--model", "nobody", "--data", "{new}"], "nobody"),
    (["--model", MODEL, "--data", "{missing}"], "not found"),
    (["--model", MODEL, "--data", "{unlabelled}"], "'churned'"),
    (["--model", MODEL, "--data", "{new}", "--margin", "-1"], "margin"),
])
def test_bad_input_exits_2_with_one_line(engine, settings, tmp_path, args, message) -> None:
    train_champion(engine, settings, make_frame(120, seed=1))
    make_frame(50, seed=2).to_csv(tmp_path / "new.csv", index=False)
    make_frame(50, seed=2).drop(columns=["churned"]).to_csv(tmp_path / "unlabelled.csv", index=False)
    paths = {"new": tmp_path / "new.csv", "missing": tmp_path / "nope.csv", "unlabelled": tmp_path / "unlabelled.csv"}
    out = run("retrain", *[a.format(**paths) for a in args], "--trials", "1", settings=settings)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1  # one line, and no training started
    assert len(registry.list_versions(engine, name=MODEL)) == 1


def test_rollback_refuses_what_is_not_an_earlier_ready_version(engine, settings) -> None:
    train_champion(engine, settings, make_frame(120, seed=1))
    for to, message in (("9", "no version 9"), ("1", "already the champion")):
        out = run("rollback", "--model", MODEL, "--to", to, settings=settings)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert registry.aliases(engine, name=MODEL) == {"champion": 1}


# --------------------------------------------------------------------------- the CronJob

K8S_VERSION = "1.33.0"  # one of the schema sets kubernetes-validate ships
HOSTILE = ["churn", "$(rm -rf /)", "Churn Model.v2", "'; DROP TABLE x; --", "x" * 100, "a--b"]


@pytest.mark.parametrize("model_name", HOSTILE)
def test_cronjob_validates_strictly_and_runs_our_cli(tmp_path, model_name) -> None:
    import kubernetes_validate
    import yaml

    from core.cli import build_parser, cmd_retrain
    from core.deploy.names import DNS_LABEL
    from core.errors import BadInput
    from core.monitoring.cronjob import CronOptions, cronjob_manifest, write_cronjob

    if model_name in ("$(rm -rf /)", "'; DROP TABLE x; --"):  # not valid model names: refused outright
        with pytest.raises(BadInput, match="model name"):
            cronjob_manifest(model_name, CronOptions(image="registry.example/shipml:1"))
        return
    doc = cronjob_manifest(model_name, CronOptions(image="registry.example/shipml:1", namespace="ml",
                                                   budget_s=120, max_trials=20, margin=0.01))
    written = yaml.safe_load(write_cronjob(tmp_path, doc).read_text())
    kubernetes_validate.validate(written, K8S_VERSION, strict=True)  # raises on any unknown field
    name = written["metadata"]["name"]
    assert DNS_LABEL.fullmatch(name) and len(name) <= 52 and written["metadata"]["namespace"] == "ml"
    assert written["metadata"]["annotations"]["shipml.io/model-name"] == model_name
    assert written["spec"]["concurrencyPolicy"] == "Forbid" and written["spec"]["schedule"] == "0 3 * * *"
    pod = written["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "core"]
    args = container["args"]
    assert args[:3] == ["retrain", "--model", model_name]  # the raw name is one argument, no shell
    parsed = build_parser().parse_args(args)
    assert parsed.func is cmd_retrain and parsed.model == model_name and parsed.watch == "/data/incoming"
    assert (parsed.budget, parsed.trials, parsed.margin) == (120, 20, 0.01)
    database = next(e for e in container["env"] if e["name"] == "SHIPML_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"] == {"name": "shipml-database", "key": "url"}
    assert pod["restartPolicy"] == "Never" and container["securityContext"]["runAsNonRoot"]


def test_cronjob_variants_and_refusals(tmp_path) -> None:
    import kubernetes_validate

    from core.cli import build_parser
    from core.errors import BadInput
    from core.monitoring.cronjob import CronOptions, cronjob_manifest, cronjob_name

    doc = cronjob_manifest("churn", CronOptions(image="shipml:2", schedule="@daily", time_zone="Europe/Berlin",
                                                data_file="/data/latest.csv", workspace_claim="ws"))
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    args = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = build_parser().parse_args(args)
    assert (parsed.data, parsed.reason, parsed.watch) == ("/data/latest.csv", "schedule", None)
    assert doc["spec"]["timeZone"] == "Europe/Berlin"
    doc = cronjob_manifest("churn", CronOptions(image="shipml:2", incoming_claim="inbox"))
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert cronjob_name("Churn") != cronjob_name("churn")  # different models, different jobs
    for bad in (dict(schedule="every day"), dict(schedule="0 3 * *"), dict(schedule="0 3 * * *\nx"),
                dict(image="bad image"), dict(watch_dir="relative/dir"), dict(data_file="/data/../etc/passwd"),
                dict(namespace="Not_A_Name"), dict(time_zone="Europe/Berlin; rm")):
        with pytest.raises(BadInput):
            cronjob_manifest("churn", CronOptions(**{"image": "shipml:2", **bad}))
