"""The local target: the prediction service as a detached process on 127.0.0.1.

The process is started like a training job (``core.jobs``): an argument list, never a shell,
its own session so an app restart does not take it down, output to a log file in the
deployment's folder. Its pid is checked against ``/proc/PID/cmdline`` before any signal, so a
pid reused by another program is never signalled.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.config import PROJECT_ROOT, Settings, child_environment
from core.errors import BadInput

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
LOG_FILE = "service.log"
TOKEN_FILE = "token"  # 0600, only when a token was set: needed to restart after a reboot
ROUTING_FILE = "routing.json"  # what the service serves (champion, challenger): core.deploy.abtest


@dataclass(frozen=True)
class Started:
    """A service process that answered /health/ready."""

    pid: int
    port: int
    endpoint: str


class StartFailed(Exception):
    """The service did not become ready; the message is fit to show a user."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether the service could listen on ``port``.

    SO_REUSEADDR, as uvicorn sets it: connections of a killed service linger in TIME_WAIT for
    a minute and must not make its own port look taken, while a listening program still does.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, *, timeout_s: float = 3.0) -> bool:
    """Whether ``port`` is free within ``timeout_s``.

    A process that just died has already lost its command line while the kernel is still
    closing its sockets, so its port frees a moment after it looks dead.
    """
    deadline = time.monotonic() + timeout_s
    while not port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def check_port(port: int) -> int:
    """Validate a port the user asked for.

    Raises:
        BadInput: Out of 1024-65535 or already in use.
    """
    if not isinstance(port, int) or not 1024 <= port <= 65535:
        raise BadInput("a port must be a number from 1024 to 65535")
    if not port_is_free(port):
        raise BadInput(f"port {port} is already in use")
    return port


def command(model_dir: Path, port: int, *, routing: Path | None = None) -> list[str]:
    """The service's command line (an argument list: no shell ever sees the path).

    With ``routing`` the service reads that routing file at start and again on
    ``POST /admin/routing``, so A/B tests start, promote and roll back without a restart.
    """
    args = [sys.executable, "-m", "core.serving", "--model", str(model_dir), "--host", HOST, "--port", str(port)]
    return args + ["--routing", str(routing)] if routing is not None else args


def spawn(model_dir: Path, port: int, *, folder: Path, settings: Settings, token: str | None) -> int:
    """Start the service detached and return its pid (without waiting for it to be ready)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = child_environment(settings)
    env.pop("SHIPML_SERVE_TOKEN", None)  # the app's own environment must not leak a token in
    if token:
        env["SHIPML_SERVE_TOKEN"] = token
    routing = folder / ROUTING_FILE
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            command(model_dir, port, routing=routing if routing.is_file() else None), cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return proc.pid


def wait_ready(pid: int, port: int, *, timeout_s: float = READY_TIMEOUT_S) -> Started:
    """Poll ``/health/ready`` until ``pid`` itself answers 200.

    Raises:
        StartFailed: The process ended, or was not ready within ``timeout_s`` (it is then stopped).
    """
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not alive(pid, port):
                raise StartFailed("the service stopped during start-up; see the deployment log")
            try:
                resp = client.get(f"{url}/health/ready")
                # Another service may have taken the port between free_port() and our bind.
                if resp.status_code == 200 and resp.json().get("pid") == pid:
                    return Started(pid=pid, port=port, endpoint=url)
            except (httpx.HTTPError, ValueError):
                pass  # not listening yet, or not a service of ours
            time.sleep(0.2)
    stop(pid, port)
    raise StartFailed(f"the service was not ready within {timeout_s:.0f} s (a model that fails its "
                      "hash check never becomes ready); see the deployment log")


def alive(pid: int | None, port: int | None) -> bool:
    """Whether ``pid`` is still our service on ``port`` (not a zombie, not a reused pid)."""
    if not pid:
        return False
    _reap(pid)
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"core.serving" in args and (port is None or str(port).encode() in args)


def stop(pid: int | None, port: int | None, *, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the service (it drains in-flight requests), SIGKILL it after ``grace_s``."""
    if not alive(pid, port):
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not alive(pid, port):
            if port:
                wait_port_free(port)
            return
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid, port) and time.monotonic() < deadline:
        time.sleep(0.05)
    if port:
        wait_port_free(port)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child, so it does not stay a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by another app process): its parent or init reaps it


def save_token(folder: Path, token: str | None) -> None:
    """Keep the token readable by this user only, for restarts; remove any old one otherwise."""
    path = folder / TOKEN_FILE
    path.unlink(missing_ok=True)
    if token:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)


def load_token(folder: Path) -> str | None:
    try:
        return (folder / TOKEN_FILE).read_text() or None
    except OSError:
        return None


def tail_log(folder: Path, *, lines: int = 200) -> str:
    """The last lines of the service's log."""
    try:
        with open(folder / LOG_FILE, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
