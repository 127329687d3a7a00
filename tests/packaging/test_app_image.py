"""The app's own image: the top-level Dockerfile builds on the test base image and serves Streamlit.

Runs once per suite, in its own xdist group so it can overlap the model image tests. A cold build
installs the app's full requirements (~4 minutes here); reruns hit the layer cache.
"""
from __future__ import annotations

import tarfile
import time
import urllib.request
import uuid

import pytest
import yaml

from core.packaging.build import ImageBuildError, _short
from core.packaging.context import HOST_CA_DIR
from tests.packaging.conftest import ROOT, TEST_LABEL, host_has_extra_cas
from tests.services import free_port

APP_TAG = "shipml-app:test"


def _app_context():
    """The repository as ``docker build .`` sends it (.dockerignore applied), as a tar file.

    When the host trusts extra CAs, they are added under docker/certs/ inside the tar only, so
    the working tree is never written to.
    """
    from docker.utils import tar

    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    context = tar(str(ROOT), exclude=patterns)
    if host_has_extra_cas():
        context.seek(0)
        with tarfile.open(fileobj=context, mode="a") as archive:
            for i, cert in enumerate(sorted(HOST_CA_DIR.rglob("*.crt"))):
                archive.add(str(cert), arcname=f"docker/certs/host-{i:02d}.crt")
    context.seek(0)
    return context


@pytest.mark.xdist_group("docker-app")
@pytest.mark.timeout(1200)
def test_app_image_builds_and_answers_streamlit_health(docker_client, base_image) -> None:
    error, log = None, []
    for chunk in docker_client.api.build(
        fileobj=_app_context(), custom_context=True, tag=APP_TAG, buildargs={"BASE_IMAGE": base_image},
        labels={TEST_LABEL: "app"}, network_mode="host", rm=True, forcerm=True, decode=True,
    ):
        error = chunk.get("error") or error
        log.append(str(chunk.get("stream", "")))
    if error:
        raise ImageBuildError(_short(error) + " | " + _short("".join(log[-20:])))
    image = docker_client.images.get(APP_TAG)
    assert image.attrs["Config"]["User"] == "shipml"
    assert image.attrs["Config"]["Healthcheck"]["Test"][-1].endswith("/_stcore/health', timeout=2)\"")

    network = docker_client.networks.create(f"shipml-test-{uuid.uuid4().hex[:8]}", driver="bridge")
    port = free_port()
    container = docker_client.containers.run(APP_TAG, detach=True, network=network.name,
                                             ports={"8501/tcp": ("127.0.0.1", port)})
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and body is None:
            container.reload()
            assert container.status != "exited", container.logs().decode(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.5)
        assert body == "ok", container.logs().decode(errors="replace")[-2000:]
        assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    finally:
        container.remove(force=True)
        network.remove()


def test_compose_runs_the_app_prometheus_and_grafana() -> None:
    """compose.yaml and the files it mounts (no compose binary or registry needed to check them)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"app", "prometheus", "grafana"}
    assert services["app"]["build"]["context"] == "."
    assert "BASE_IMAGE" in services["app"]["build"]["args"]
    for service in services.values():
        assert service["networks"] == ["shipml"]
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:")  # nothing is exposed beyond the machine by default
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert compose["networks"]["shipml"] == {"name": "shipml", "external": True}
    prometheus = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["shipml-deployments"]["file_sd_configs"][0]["files"] == ["/etc/prometheus/targets/*.json"]
    datasource = yaml.safe_load((ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_prometheus_accepts_the_scrape_config(tmp_path) -> None:
    import shutil
    import subprocess

    from tests.services import missing

    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (apt-get install prometheus)")
    config = (ROOT / "docker/prometheus/prometheus.yml").read_text()
    # Point the file_sd glob at a real folder holding the documented example target.
    (tmp_path / "targets").mkdir()
    example = ROOT / "docker/prometheus/targets/example.json.disabled"
    (tmp_path / "targets" / "example.json").write_text(example.read_text())
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/targets", str(tmp_path / "targets")))
    out = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stdout + out.stderr
