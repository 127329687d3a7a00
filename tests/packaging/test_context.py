"""The model image's build context, checked without Docker."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from core.errors import BadInput
from core.packaging import build_context, dockerfile, image_tag, runtime_requirements
from core.packaging.requirements import EXCLUDED, normalize, read_pins
from core.registry import load_exported
from core.serving_io import predict_frame, required_columns
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
EVIL = 'x"; rm -rf / #\nRUN echo pwned > /pwned\n$(touch /tmp/owned) `id` ${BASE_IMAGE}'
# A docker image reference with a tag, as the engine's grammar allows it.
_REFERENCE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
                        r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _evil_copy(model_dir: Path, dest: Path) -> Path:
    """The exported model with shell and Dockerfile syntax in every user-supplied field.

    The registry refuses such names, but model.json is only a file: the packaging must be safe
    whatever it holds. The model file itself is unchanged, so its sha256 still matches.
    """
    shutil.copytree(model_dir, dest)
    info = json.loads((dest / "model.json").read_text())
    info.update(name=EVIL, description=EVIL, target=EVIL)
    (dest / "model.json").chmod(0o644)
    (dest / "model.json").write_text(json.dumps(info))
    return dest


def test_context_holds_the_model_code_and_hashes(exported_model, tmp_path) -> None:
    ctx = build_context(exported_model, tmp_path / "ctx")
    names = {p.name for p in ctx.iterdir()}
    assert {"Dockerfile", ".dockerignore", "requirements.txt", "app", "model", "labels.json"} <= names
    assert "ca" not in names  # only with trust_host_ca
    assert (ctx / "app/core/serving/__main__.py").is_file()
    assert not list(ctx.rglob("__pycache__"))
    model = ctx / "model"
    assert {p.name for p in model.iterdir()} == {
        "model.joblib", "model.json", "reference.parquet", "MODEL_CARD.md", "SHA256SUMS"}
    info = json.loads((model / "model.json").read_text())
    sums = dict(line.split("  ")[::-1] for line in (model / "SHA256SUMS").read_text().splitlines())
    assert sums["model.joblib"] == info["sha256"]
    pipeline, _ = load_exported(model)  # the copy loads: its hash is verified on the way
    assert required_columns(pipeline)
    labels = json.loads((ctx / "labels.json").read_text())
    assert labels["io.shipml.model-name"] == "penguins"
    assert labels["io.shipml.model-version"] == "1"
    assert labels["io.shipml.dataset-hash"] == info["dataset_hash"]
    ignore = (ctx / ".dockerignore").read_text().splitlines()
    assert "labels.json" in ignore and "**/__pycache__" in ignore


def test_dockerfile_runs_the_service_as_non_root_with_a_healthcheck(exported_model, tmp_path) -> None:
    ctx = build_context(exported_model, tmp_path / "ctx", base_image="shipml/python-base:bookworm")
    text = (ctx / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=shipml/python-base:bookworm" and lines[1] == "FROM ${BASE_IMAGE}"
    assert "RUN python3 -m venv /opt/venv" in lines
    users = [line for line in lines if line.startswith("USER ")]
    assert users == ["USER 10001:10001"]  # the last USER wins: the service never runs as root
    assert text.index("USER 10001") > text.index("pip install")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert "/health/ready" in (ctx / "app/healthcheck.py").read_text()
    assert 'ENTRYPOINT ["python", "-m", "core.serving", "--model", "/model", "--host", "0.0.0.0"]' in lines
    assert 'CMD ["--port", "8080"]' in lines
    assert "libgomp1" in text
    assert "LABEL" not in text  # labels go through the SDK as data, never as Dockerfile text


def test_no_user_string_reaches_the_dockerfile(exported_model, tmp_path) -> None:
    evil = _evil_copy(exported_model, tmp_path / "evil-model")
    plain = build_context(exported_model, tmp_path / "plain")
    ctx = build_context(evil, tmp_path / "ctx")
    # The Dockerfile does not depend on the model at all, so nothing the user typed can be in it.
    assert (ctx / "Dockerfile").read_bytes() == (plain / "Dockerfile").read_bytes()
    assert "pwned" not in (ctx / "Dockerfile").read_text()
    # The strings travel as labels (data for the SDK) and in model.json, unchanged.
    assert json.loads((ctx / "labels.json").read_text())["io.shipml.model-name"] == EVIL
    assert json.loads((ctx / "model/model.json").read_text())["name"] == EVIL


@pytest.mark.parametrize("base", ["python:3.11\nRUN echo pwned", "python 3.11", "$(id)", "", "a;b"])
def test_base_image_must_be_a_plain_reference(exported_model, tmp_path, base) -> None:
    with pytest.raises(BadInput, match="base image"):
        build_context(exported_model, tmp_path / "ctx", base_image=base)
    assert not (tmp_path / "ctx").exists()


def test_a_tampered_model_is_never_packaged(exported_model, tmp_path) -> None:
    model = tmp_path / "model"
    shutil.copytree(exported_model, model)
    (model / "model.joblib").chmod(0o644)
    with (model / "model.joblib").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BadInput, match="sha256"):
        build_context(model, tmp_path / "ctx")
    assert not (tmp_path / "ctx").exists()
    (model / "model.json").unlink()
    with pytest.raises(BadInput, match="model.json"):
        build_context(model, tmp_path / "ctx")


def test_the_context_folder_must_be_empty(exported_model, tmp_path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        build_context(exported_model, tmp_path / "ctx")
    assert (tmp_path / "ctx" / "keep.txt").read_text() == "mine"


def test_host_ca_certificates_are_trusted_before_pip(exported_model, tmp_path) -> None:
    cas = tmp_path / "cas"
    (cas / "corp").mkdir(parents=True)
    (cas / "corp" / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    (cas / "notes.txt").write_text("not a certificate")
    ctx = build_context(exported_model, tmp_path / "ctx", trust_host_ca=True, ca_dir=cas)
    assert [p.name for p in (ctx / "ca").iterdir()] == ["host-00.crt"]
    assert (ctx / "ca/host-00.crt").read_text() == (cas / "corp/proxy.crt").read_text()
    text = (ctx / "Dockerfile").read_text()
    assert text.index("COPY ca/") < text.index("RUN update-ca-certificates") < text.index("pip install")
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in text
    with pytest.raises(BadInput, match="CA certificate"):
        build_context(exported_model, tmp_path / "ctx2", trust_host_ca=True, ca_dir=tmp_path / "none")
    assert "update-ca-certificates" not in dockerfile(base_image="python:3.11-slim", trust_host_ca=False)


def test_runtime_requirements_are_slim_and_pinned_like_the_app() -> None:
    lines = runtime_requirements()
    pins = read_pins()
    found = dict(line.split("==") for line in lines)
    assert not EXCLUDED & found.keys()
    assert not {"streamlit", "evidently", "optuna", "plotly", "pytest", "altair"} & found.keys()
    for name in ("fastapi", "uvicorn", "prometheus-client", "pandas", "numpy", "scipy", "scikit-learn",
                 "lightgbm", "joblib", "pydantic", "pydantic-settings", "sqlalchemy", "sqlmodel",
                 "threadpoolctl", "pyarrow"):
        assert name in found, name
    assert all(found[name] == pins[name] for name in found)  # the very versions the model used
    assert len(found) < len(pins) / 3


@pytest.mark.parametrize("model", ["exported_model", "exported_log_target_model", "exported_mlp_model"])
def test_the_service_runs_with_only_the_slim_requirements(model, tmp_path, request) -> None:
    """Start the real service with every installed package outside the slim set made unimportable.

    A new import of, say, httpx or plotly somewhere on the service's path would pass every other
    local test and break only inside the image; this catches it without Docker. A model that
    learnt the log of its target unpickles ShipML's inverse function from ``core.modeling``, a
    neural network ShipML's MLP classifier class.
    """
    exported_model = request.getfixturevalue(model)
    allowed = {line.split("==")[0] for line in runtime_requirements()}
    blocked = sorted(
        module for module, dists in metadata.packages_distributions().items()
        if module.isidentifier() and module != "core" and not {normalize(d) for d in dists} & allowed
    )
    assert "streamlit" in blocked and "httpx" in blocked
    guard = (
        "import json, os, runpy, sys\n"
        "blocked = set(json.loads(os.environ['PKG_BLOCKED']))\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in blocked:\n"
        "            raise ModuleNotFoundError(f'{name} is not in the slim runtime set', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['core.serving', *sys.argv[1:]]\n"
        "runpy.run_module('core.serving', run_name='__main__', alter_sys=True)\n"
    )
    port = free_port()
    env = {**os.environ, "PKG_BLOCKED": json.dumps(blocked), "SHIPML_WORKSPACE": str(tmp_path / "ws")}
    proc = subprocess.Popen(
        [sys.executable, "-c", guard, "--model", str(exported_model), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/health/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        pipeline, _ = load_exported(exported_model)
        rows = _rows(pipeline)
        got = _post(f"{url}/predict", {"rows": json.loads(rows.to_json(orient="records"))})
        offline = predict_frame(pipeline, rows)
        assert [p["prediction"] for p in got["predictions"]] == pytest.approx(offline["prediction"].tolist())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rows(pipeline, n: int = 12) -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "data/samples/penguins.csv")
    return frame[list(required_columns(pipeline))].dropna().head(n).reset_index(drop=True)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("name", ["penguins", "My Model v2", EVIL, "ÜBER-Modell 🚀", "___", "a" * 300, "..", "-x-"])
def test_image_tag_is_valid_for_any_name(name) -> None:
    tag = image_tag(name, 7)
    assert _REFERENCE.fullmatch(tag), tag
    assert tag.endswith(":v7") and len(tag) < 128
    assert "pwned" not in tag or name == EVIL


def test_image_tags_keep_distinct_names_distinct() -> None:
    names = ["My Model", "my-model", "my_model", "MY MODEL", EVIL]
    assert len({image_tag(n, 1) for n in names}) == len(names)
    assert image_tag("churn", 1) == image_tag("churn", 1) != image_tag("churn", 2)
