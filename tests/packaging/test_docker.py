"""The model image end to end on a real Docker engine: build, run, predict, metrics, stop.

The image is built once per session on the locally made base image (SHIPML_TEST_BASE_IMAGE), so
a cold run pays one pip install (~50 s) and later runs hit the layer cache (a few seconds).
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager

import pandas as pd
import pytest

from core.packaging import ImageBuildError, build_context, build_image, image_tag
from core.registry import load_exported
from core.serving_io import predict_frame, required_columns
from tests.packaging.conftest import ROOT, TEST_LABEL, host_has_extra_cas
from tests.packaging.test_context import EVIL, _evil_copy
from tests.services import free_port

pytestmark = [pytest.mark.xdist_group("docker-model"), pytest.mark.timeout(900)]


@contextmanager
def running(client, image: str, **kwargs):
    """A container of ``image`` on a fresh user bridge network, port 8080 published on loopback.

    Engines started with ``--bridge=none`` ignore ports published on the default network, while
    a user-created network's are honoured. Yields (container, base URL); removes both after.
    """
    network = client.networks.create(f"shipml-test-{uuid.uuid4().hex[:8]}", driver="bridge")
    port = free_port()
    container = client.containers.run(image, detach=True, network=network.name,
                                      ports={"8080/tcp": ("127.0.0.1", port)}, **kwargs)
    try:
        yield container, f"http://127.0.0.1:{port}"
    finally:
        container.remove(force=True)
        network.remove()


def wait_ready(container, url: str, path: str = "/health/ready", timeout: float = 90) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        container.reload()
        assert container.status not in ("exited", "dead"), container.logs().decode(errors="replace")[-2000:]
        try:
            with urllib.request.urlopen(url + path, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout} s: " + container.logs().decode(errors="replace")[-2000:])


def test_image_serves_the_model_like_offline_prediction(docker_client, model_image, exported_model) -> None:
    built, log = model_image
    assert any(line.startswith("Step ") for line in log) and "Successfully built" in log[-2]
    image = docker_client.images.get(built.id)
    assert built.size_bytes == image.attrs["Size"] > 100_000_000
    info = json.loads((exported_model / "model.json").read_text())
    labels = image.labels
    assert labels["io.shipml.model-name"] == "penguins" and labels["io.shipml.model-version"] == "1"
    assert labels["io.shipml.dataset-hash"] == info["dataset_hash"]
    assert labels["io.shipml.model-sha256"] == info["sha256"] and labels[TEST_LABEL] == "packaging"
    assert image.attrs["Config"]["User"] == "10001:10001"

    pipeline, _ = load_exported(exported_model)
    frame = pd.read_csv(ROOT / "data/samples/penguins.csv")[list(required_columns(pipeline))]
    rows = pd.concat([frame.dropna().head(15), frame[frame.isna().any(axis=1)].head(5)]).reset_index(drop=True)
    with running(docker_client, built.tag) as (container, url):
        wait_ready(container, url)
        body = json.dumps({"rows": json.loads(rows.to_json(orient="records"))}).encode()
        request = urllib.request.Request(url + "/predict", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            got = json.loads(resp.read())
        assert got["model"] == {"name": "penguins", "version": 1}
        offline = predict_frame(pipeline, rows, threshold=info["metrics"].get("decision_threshold"))
        assert [p["prediction"] for p in got["predictions"]] == offline["prediction"].tolist()
        for p, (_, row) in zip(got["predictions"], offline.iterrows(), strict=True):
            for cls, proba in p["probabilities"].items():
                assert proba == pytest.approx(row[f"proba_{cls}"], rel=1e-9, abs=1e-12)

        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert any(line.startswith("shipml_requests_total{") and "/predict" in line and '"200"' in line
                   for line in metrics.splitlines()), metrics[:2000]

        # The container runs as the image's non-root user, and its HEALTHCHECK turns healthy.
        assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
        assert container.exec_run(["touch", "/app/x"]).exit_code != 0  # code is not writable
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(0.5)
        assert container.attrs["State"]["Health"]["Status"] == "healthy"

        started = time.monotonic()
        container.stop(timeout=10)  # SIGTERM; SIGKILL only after 10 s
        took = time.monotonic() - started
        container.reload()
        assert took < 5, f"docker stop took {took:.1f} s"
        assert container.attrs["State"]["ExitCode"] == 0  # a clean exit after draining, not a kill


def test_model_name_with_shell_and_dockerfile_syntax_builds_safely(
    docker_client, base_image, model_image, exported_model, tmp_path
) -> None:
    """The registry refuses such names, so they come in through model.json and the labels."""
    evil = _evil_copy(exported_model, tmp_path / "evil")
    context = build_context(evil, tmp_path / "ctx", base_image=base_image, trust_host_ca=host_has_extra_cas())
    tag = image_tag(EVIL, 3)
    built = build_image(context, tag=tag, labels={"io.shipml.note": EVIL, TEST_LABEL: "packaging"},
                        client=docker_client)
    image = docker_client.images.get(built.id)
    assert built.tag == tag and tag in image.tags
    assert image.labels["io.shipml.model-name"] == EVIL and image.labels["io.shipml.note"] == EVIL
    # No build step ran the text: the only history entries that mention it are the label steps.
    steps = [h.get("CreatedBy", "") for h in image.history()]
    assert not [s for s in steps if "pwned" in s and "LABEL" not in s]
    out = docker_client.containers.run(
        built.id, entrypoint=["python", "-c", "import os; print(os.path.exists('/pwned'))"],
        remove=True, network_mode="none",
    )
    assert out.decode().strip() == "False"
    docker_client.images.remove(built.id, force=True, noprune=True)  # its layers stay for the cache


def test_a_failing_build_names_its_step(docker_client, base_image, exported_model, tmp_path) -> None:
    context = build_context(exported_model, tmp_path / "ctx", base_image=base_image,
                            trust_host_ca=host_has_extra_cas())
    (context / "requirements.txt").write_text("shipml-no-such-package-anywhere==0.0.1\n")
    log: list[str] = []
    with pytest.raises(ImageBuildError) as caught:
        build_image(context, tag="shipml-model/failing:v1", labels={TEST_LABEL: "packaging"},
                    on_log=log.append, client=docker_client)
    message = str(caught.value)
    assert "the image build failed at Step" in message and "pip install" in message
    assert "\n" not in message and len(message) < 700
    assert any("shipml-no-such-package-anywhere" in line for line in log)


def test_build_without_an_engine_says_so(exported_model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    context = build_context(exported_model, tmp_path / "ctx")
    with pytest.raises(ImageBuildError, match="no Docker engine answers"):
        build_image(context, tag="shipml-model/x:v1", labels={})
