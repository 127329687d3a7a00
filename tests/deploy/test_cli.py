"""`python -m core deploy|deployments|undeploy` as a user runs them: exit codes and last lines."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import run_cli

pytestmark = pytest.mark.xdist_group("deploy-local")


def test_deploy_local_prints_the_url_last_then_lists_and_undeploys(tmp_path, trained) -> None:
    ws = tmp_path / "ws"
    out = run_cli("deploy", "--model", str(trained), "--target", "local", workspace=ws)
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:")
    try:
        assert httpx.get(f"{url}/health/ready", timeout=5).status_code == 200
        listing = run_cli("deployments", workspace=ws)
        assert listing.returncode == 0
        header, line = listing.stdout.splitlines()[:2]
        assert header.split()[:4] == ["ID", "TARGET", "STATUS", "LIVE"]
        assert line.split()[:4] == ["1", "local", "RUNNING", "up"] and line.endswith(url)
    finally:
        stop = run_cli("undeploy", "1", workspace=ws)
    assert stop.returncode == 0 and stop.stdout.strip() == "deployment 1 stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health/live", timeout=2)
    assert run_cli("deployments", workspace=ws).stdout.splitlines()[1].split()[:4] == ["1", "local", "STOPPED", "-"]


def test_deploy_kubernetes_prints_the_manifest_folder_last(tmp_path, trained) -> None:
    ws = tmp_path / "ws"
    out = run_cli("deploy", "--model", str(trained), "--target", "kubernetes", "--namespace", "ml", workspace=ws)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    folder = Path(lines[-1])
    assert folder.is_dir() and (folder / "deployment.yaml").is_file() and folder.is_relative_to(ws)
    assert any("no kubeconfig configured" in line for line in lines)
    listing = run_cli("deployments", "--json", workspace=ws)
    (row,) = json.loads(listing.stdout)
    assert (row["target"], row["status"], row["live"], row["model_name"]) == ("kubernetes", "STOPPED", "-", "pen guins")


@pytest.mark.parametrize("args, message", [
    (["deploy", "--model", "nosuch@1", "--target", "local"], "no version 1"),
    (["deploy", "--model", "/nonexistent/dir", "--target", "docker"], "no such model folder"),
    (["deploy", "--model", "x@1", "--port", "80"], "1024 to 65535"),
    (["deploy", "--model", "x@1", "--target", "kubernetes", "--namespace", "Not Valid"], "namespace"),
    (["deploy", "--model", "x@1", "--token-file", "/nonexistent/token"], "cannot read the token file"),
    (["undeploy", "42"], "deployment 42 does not exist"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message) -> None:
    out = run_cli(*args, workspace=tmp_path / "ws", timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_unknown_target_is_a_usage_error(tmp_path) -> None:
    out = run_cli("deploy", "--model", "x@1", "--target", "mainframe", workspace=tmp_path / "ws", timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_an_empty_listing(tmp_path) -> None:
    out = run_cli("deployments", workspace=tmp_path / "ws", timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "no deployments"
