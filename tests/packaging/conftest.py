"""Fixtures for the packaging tests: one small real model, trained and exported once per session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> Path:
    """A LightGBM Pipeline on the penguins sample: trained, registered and exported by the CLI.

    One trial on two folds keeps it to a few seconds, while it is still the real thing: the
    project's cleaning and feature Pipeline with a LightGBM classifier, as the app ships it.
    """
    return _export(tmp_path_factory, "--target", "species", "--models", "lightgbm")


@pytest.fixture(scope="session")
def exported_log_target_model(tmp_path_factory) -> Path:
    """A regression on the penguins sample that learnt the log of its target: the Pipeline then
    holds ShipML's own inverse function, which the service must be able to load."""
    return _export(tmp_path_factory, "--target", "body_mass_g", "--models", "ridge", "--log-target")


@pytest.fixture(scope="session")
def exported_mlp_model(tmp_path_factory) -> Path:
    """A neural network on the penguins sample: its Pipeline holds ShipML's own MLP classifier
    class (``core.modeling.neural``), which the service must be able to load."""
    return _export(tmp_path_factory, "--target", "species", "--models", "mlp")


def _export(tmp_path_factory, *args: str) -> Path:
    base = tmp_path_factory.mktemp("packaging-model")
    env = {**os.environ, "SHIPML_WORKSPACE": str(base / "workspace"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(ROOT / "data/samples/penguins.csv"), *args,
         "--trials", "1", "--folds", "2", "--budget", "20", "--out", str(base / "model")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return base / "model"


# --------------------------------------------------------------------------- Docker

DEFAULT_BASE_IMAGE = "shipml/python-base:bookworm"  # what .ci/run builds with debootstrap
TEST_LABEL = "io.shipml.test"


@pytest.fixture(scope="session")
def docker_client():
    """A docker SDK client for a running engine; skip (fail under CI) without one."""
    try:
        import docker

        client = docker.from_env(timeout=1800)
        client.ping()
    except Exception:  # noqa: BLE001 - any failure means the same thing here
        from tests.services import missing

        missing("docker engine (dockerd; .ci/run starts one)")
    yield client
    # Earlier runs' images whose tags moved on: drop their top layers, keep the shared cache.
    try:
        client.images.prune(filters={"dangling": True, "label": TEST_LABEL})
    except Exception:  # noqa: BLE001 - tidying only
        pass
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """The Python base image to build on: SHIPML_TEST_BASE_IMAGE, else the one .ci/run builds."""
    import docker

    name = os.environ.get("SHIPML_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    try:
        docker_client.images.get(name)
    except docker.errors.ImageNotFound:
        from tests.services import missing

        missing(f"the base image {name} (set SHIPML_TEST_BASE_IMAGE; .ci/run builds one)")
    return name


def host_has_extra_cas() -> bool:
    """Whether this host trusts extra CAs (a TLS-intercepting proxy): builds must trust them too."""
    from core.packaging.context import HOST_CA_DIR

    return HOST_CA_DIR.is_dir() and any(HOST_CA_DIR.rglob("*.crt"))


@pytest.fixture(scope="session")
def model_image(docker_client, base_image, exported_model, tmp_path_factory):
    """The exported model built into an image once per session (the layer cache makes reruns fast)."""
    from core.packaging import build_context, build_image, image_tag

    context = build_context(exported_model, tmp_path_factory.mktemp("ctx") / "ctx", base_image=base_image,
                            trust_host_ca=host_has_extra_cas())
    log: list[str] = []
    built = build_image(context, tag=image_tag("penguins", 1), labels={TEST_LABEL: "packaging"},
                        on_log=log.append, client=docker_client)
    return built, log
