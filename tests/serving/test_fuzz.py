"""Schemathesis against /openapi.json of a real server: generated requests, valid and invalid,
never get a 5xx.

The schemathesis CLI rather than its pytest plugin, which does not work with this pytest.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import Server

pytestmark = pytest.mark.xdist_group("serving-server")


@pytest.mark.parametrize("auth", [False, True])
def test_no_server_errors(models, tmp_path, auth) -> None:
    env = {"serve_max_rows": 50}
    if auth:
        env["serve_token"] = "fuzz-token-0123456789"
    server = Server(models["binary"].dir, tmp_path / "workspace", **env)
    try:
        server.wait_ready()
        args = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
                "--checks", "not_a_server_error", "--max-examples", "50", "--seed", "7", "--workers", "1",
                "--request-timeout", "30", "--no-color", "--suppress-health-check", "all"]
        if auth:
            args += ["--header", "Authorization: Bearer fuzz-token-0123456789"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
        assert "No issues found" in out.stdout, out.stdout[-4000:]
        assert re.search(r"Operations:\s+7 selected / 7 total", out.stdout)
        metrics = httpx.get(f"{server.url}/metrics").text
        # the generated rows really reached the model, not only the validation errors
        assert re.search(r'shipml_requests_total\{endpoint="/predict",status="200"\} [1-9]', metrics)
        assert re.search(r'shipml_requests_total\{endpoint="/predict",status="422"\} [1-9]', metrics)
        # No server error (503, not ready, aside); every status starts at 0, so count the answered ones.
        assert not re.search(r'status="5(?!03)\d\d"\} [1-9]', metrics)
    finally:
        server.kill()
    assert "Traceback" not in server.log.read_text()
